"""Bad CRM data: missing close dates, missing or inactive owners, deleted contacts, the biggest
text the CRM holds, unicode and quotes everywhere (values the CRMs refuse to store, such as
unparseable dates or unknown stages, are covered in tests/unit/test_bad_crm_values.py).
Each bad deal is skipped (or given the fallback owner) with a logged reason; the tick
completes and the good deals get their tasks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.reliability.expectation import uniform_owners
from tests.reliability.harness import Stack, events

# HubSpot refuses text values over 65,536 characters (Salesforce's fields here hold 255), so
# "100 KB" text is as big as the CRM lets it be.
QUOTES = "O'Brien \"Big\" \\ Deal 🚀 ñ ü 中文 -- ' OR 1=1; DROP TABLE task; {{ 7*7 }}"
BIG = "x" * 65_000


def _hubspot_world(stack: Stack) -> dict[str, str]:
    today = datetime.now(UTC).replace(hour=15, minute=0, second=0, microsecond=0)
    closed = (today - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def deal(ref: str, **props: str) -> dict[str, object]:
        base = {"dealname": ref, "dealstage": "closedlost", "pipeline": "default",
                "closedate": closed, "hubspot_owner_id": "@active",
                "closed_lost_reason": "Lost to competitor"}
        base.update(props)
        return {"ref": ref, "properties": {k: v for k, v in base.items() if v != "-"},
                "associations": {"companies": ["@acme"], "contacts": ["@ann", "@gone"]}}

    objects = {
        "owners": [{"ref": "active", "email": "ann@seller.example", "firstName": "Ann",
                    "lastName": QUOTES},
                   {"ref": "left", "email": "left@seller.example", "archived": True}],
        "companies": [{"ref": "acme", "properties": {"name": QUOTES}}],
        "contacts": [{"ref": "ann", "properties": {"firstname": QUOTES, "lastname": BIG,
                                                   "email": "ann@acme.example"}},
                     {"ref": "gone", "properties": {"firstname": "Gone"}}],
        "deals": [
            deal("good", dealname=QUOTES, closed_lost_reason=QUOTES, competitor=QUOTES),
            deal("no-close-date", closedate="-"),
            deal("no-owner", hubspot_owner_id="-"),
            deal("owner-left", hubspot_owner_id="@left"),
            deal("huge", dealname=BIG, closed_lost_reason=BIG),
        ],
    }
    ids = dict(stack.box.admin("hubspot", "POST", "seed", {"objects": objects})["ids"])
    stack.box.admin("hubspot", "DELETE", f"objects/contacts/{ids['gone']}")  # deleted later
    return ids


def _salesforce_world(stack: Stack) -> dict[str, str]:
    closed = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    records = {
        "User": [{"ref": "u1", "FirstName": QUOTES[:40], "LastName": "Rep",
                  "Email": "a@x.example", "Username": "winback@sandbox.example",
                  "IsActive": True},
                 {"ref": "u2", "FirstName": "Gone", "LastName": "Rep", "Email": "g@x.example",
                  "Username": "g@x.example", "IsActive": False}],
        "Account": [{"ref": "a1", "Name": QUOTES}],
        "Contact": [{"ref": "c1", "LastName": QUOTES, "AccountId": "@a1",
                     "Email": "c1@x.example"},
                    {"ref": "c2", "LastName": "Deleted", "AccountId": "@a1"}],
        "Opportunity": [
            {"ref": "o1", "Name": QUOTES[:120], "StageName": "Closed Lost", "CloseDate": closed,
             "AccountId": "@a1", "OwnerId": "@u1", "Loss_Reason__c": QUOTES,
             "Competitor__c": QUOTES},
            {"ref": "o2", "Name": "Owner left", "StageName": "Closed Lost", "CloseDate": closed,
             "OwnerId": "@u2", "Loss_Reason__c": "Price"},
            {"ref": "o3", "Name": "No account", "StageName": "Closed - No Budget",
             "CloseDate": closed, "OwnerId": "@u1", "Loss_Reason__c": "No budget"},
        ],
        "OpportunityContactRole": [
            {"OpportunityId": "@o1", "ContactId": "@c1", "Role": "Decision Maker"},
            {"OpportunityId": "@o1", "ContactId": "@c2", "Role": "Evaluator"}],
    }
    refs = stack.box.admin("salesforce", "POST", "seed", {"records": records})["refs"]
    stack.box.admin("salesforce", "DELETE", f"records/Contact/{refs['c2']}")
    return dict(refs)


def test_bad_crm_data_is_skipped_or_repaired_and_the_tick_completes(sqlite_stack: Stack
                                                                    ) -> None:
    stack = sqlite_stack
    stack.start(seed_data=False)
    hs = _hubspot_world(stack)
    sf = _salesforce_world(stack)
    uniform_owners(stack.box)  # the users above, in the one zone the expectation plans in
    stack.set_fallbacks(salesforce=sf["u1"], hubspot=hs["active"])
    run = stack.run_once(stack.command("sync", str(stack.config_path)))
    assert run.returncode == 0, run.log[-3000:]
    done = {e["connection"]: e for e in events(run.log, "sync.done")}
    assert set(done) == {"sf0", "hs0"}
    skipped = {e["deal_id"]: e["reason"] for e in events(run.log, "deal.skipped")}
    assert skipped[hs["no-close-date"]] == "no close date"
    hs_tasks = {str(t["properties"].get("hs_task_subject")): t
                for t in stack.box.tasks("hubspot")}
    owners = {t["properties"]["hubspot_owner_id"] for t in hs_tasks.values()}
    assert hs["left"] not in owners  # the archived owner's deal went to the fallback owner
    assert any(QUOTES in subject for subject in hs_tasks)  # rendered verbatim, not evaluated
    assert not any("49" in s and "7*7" not in s for s in hs_tasks)
    by_deal: dict[str, int] = {}
    for task in stack.box.tasks("hubspot"):
        for deal_id in task.get("associations", {}).get("deals", []):
            by_deal[str(deal_id)] = by_deal.get(str(deal_id), 0) + 1
    assert set(by_deal) == {hs[ref] for ref in ("good", "no-owner", "owner-left", "huge")}
    sf_tasks = stack.box.tasks("salesforce")
    assert {t["WhatId"] for t in sf_tasks} == {sf["o1"], sf["o2"], sf["o3"]}
    assert done["sf0"]["enrolled"] == 3  # o3 (no account, no contacts) too
    assert sf["c2"] not in {t.get("WhoId") for t in sf_tasks}  # the deleted contact
    assert sf["u2"] not in {t["OwnerId"] for t in sf_tasks}
    assert all(len(t["Subject"]) <= 255 for t in sf_tasks)
    assert stack.duplicates() == {"salesforce": 0, "hubspot": 0}
    # Exactly the planned tasks, both ways: none missed, none extra, fields as planned.
    stack.assert_tasks_as_planned()
    stack.assert_secrets_absent()
    stack.record("bad CRM data", skipped=len(skipped))
