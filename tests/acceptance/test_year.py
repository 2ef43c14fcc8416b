"""The worker through a simulated year, over both CRM emulators, on SQLite and PostgreSQL:
the tasks in each CRM equal the plan, exactly once, on the right dates; reopened deals and new
deals on an account stop their cadences; inactive owners' tasks go to the fallback owner."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tests.acceptance.conftest import Year
from worker.cadence.engine import Planner

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
NEW_YORK = ZoneInfo("America/New_York")


def key_of(crm: str, task: dict[str, Any]) -> str:
    if crm == "salesforce":
        return str(task["Winback_Key__c"])
    return str(task["properties"]["winback_key"])


def due_of(crm: str, task: dict[str, Any]) -> date:
    if crm == "salesforce":
        return date.fromisoformat(task["ActivityDate"])
    stamp = task["properties"]["hs_timestamp"]
    # HubSpot shows a task at its timestamp: the reminder moment, 09:00 in the owner's zone
    # (the default zone here: HubSpot owners carry none).
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(NEW_YORK).date()


def owner_of(crm: str, task: dict[str, Any]) -> str:
    if crm == "salesforce":
        return str(task["OwnerId"])
    return str(task["properties"]["hubspot_owner_id"])


def expected(year: Year, planned_at: datetime, until: datetime) -> dict[str, dict[str, date]]:
    """Plan every lost deal read back from each CRM (independently of the worker's ledger)."""
    out: dict[str, dict[str, date]] = {}
    for name, ctx in year.service.contexts.items():
        planner = Planner(year.service.config, name)
        keys: dict[str, date] = {}
        for page in ctx.connector.changed_deals(EPOCH):
            lost = [d for d in page.deals if d.is_lost]
            contacts = ctx.connector.stakeholders([d.id for d in lost]) if lost else {}
            for deal in lost:
                deal = deal.model_copy(update={"contacts": tuple(contacts.get(deal.id, ()))})
                keys.update({t.key: t.due_date for t in planner.plan(deal, planned_at).tasks
                             if planner.create_after(deal, t) <= until})
        out[ctx.settings.kind] = keys
    return out


def test_a_simulated_year_writes_the_plan_exactly_once_on_the_right_dates(year: Year) -> None:
    """53 weekly ticks: every planned task due to be written is in its CRM once, with the
    planned due date; nothing else is."""
    start = year.now()
    for _ in range(52):
        year.tick()
        year.advance(days=7)
    year.tick()
    want = expected(year, start, year.last_tick)  # what the last tick saw as due
    for crm in ("salesforce", "hubspot"):
        tasks = year.tasks(crm)
        keys = Counter(key_of(crm, t) for t in tasks)
        assert [k for k, n in keys.items() if n > 1] == [], f"{crm}: duplicate tasks"
        assert set(keys) == set(want[crm]), (crm, len(keys), len(want[crm]))
        wrong = {key_of(crm, t): (due_of(crm, t), want[crm][key_of(crm, t)]) for t in tasks
                 if due_of(crm, t) != want[crm][key_of(crm, t)]}
        assert wrong == {}, f"{crm}: due dates differ"
        assert len(tasks) > 200


def test_reopened_deal_and_new_deal_on_account_stop_their_cadences(year: Year) -> None:
    """Reopen one Salesforce deal, open a new HubSpot deal on a lost deal's company: both
    cadences stop, open future tasks are closed, each owner gets one "reborn" task, and no
    further follow-ups are written for them."""
    year.tick()
    year.advance(days=8)
    year.tick()
    sf_lost = next(r for r in _records(year, "salesforce", "Opportunity")
                   if r.get("StageName") == "Closed Lost")
    year.box.admin("salesforce", "PATCH", f"records/Opportunity/{sf_lost['Id']}",
                   {"StageName": "Negotiation/Review"})
    hs_ctx = year.service.contexts["acme-hs"]
    hs_lost = next(d for p in hs_ctx.connector.changed_deals(EPOCH) for d in p.deals
                   if d.is_lost and d.account_id)
    year.box.admin("hubspot", "POST", "objects/deals", {
        "properties": {"dealname": "Second chance", "dealstage": "appointmentscheduled",
                       "pipeline": "default"},
        "associations": {"companies": [hs_lost.account_id]}})
    year.advance(hours=1)
    results = year.tick()
    assert results["acme-sf"].counts.reborn == 1
    assert results["acme-hs"].counts.reborn >= 1  # every lost deal of that company
    sf_tasks = [t for t in year.tasks("salesforce") if t.get("WhatId") == sf_lost["Id"]]
    reborn = [t for t in sf_tasks if t["Subject"].startswith("Opportunity reborn")]
    assert len(reborn) == 1
    assert any(t["Status"] == "Completed" for t in sf_tasks)  # the post-mortem, closed
    hs_reborn = [t for t in year.tasks("hubspot") if str(
        t["properties"].get("hs_task_subject", "")).startswith("Opportunity reborn")]
    assert len(hs_reborn) == results["acme-hs"].counts.reborn
    before = {crm: len(year.tasks(crm)) for crm in ("salesforce", "hubspot")}
    for _ in range(8):
        year.advance(days=7)
        year.tick()
    later_sf = [t for t in year.tasks("salesforce") if t.get("WhatId") == sf_lost["Id"]]
    assert len(later_sf) == len(sf_tasks)
    assert all(len(year.tasks(crm)) >= before[crm] for crm in before)


def test_inactive_owners_tasks_go_to_the_fallback_owner(year: Year) -> None:
    """Deals whose owner was deactivated get their tasks assigned to the fallback owner."""
    year.tick()
    inactive = {u["Id"] for u in _records(year, "salesforce", "User") if not u.get("IsActive")}
    sf_deals = {r["Id"]: r for r in _records(year, "salesforce", "Opportunity")}
    orphaned = [t for t in year.tasks("salesforce")
                if sf_deals.get(t.get("WhatId"), {}).get("OwnerId") in inactive]
    assert orphaned, "the sample has no lost deal of an inactive owner"
    assert {owner_of("salesforce", t) for t in orphaned} == {year.sf_fallback}
    assert not any(owner_of("salesforce", t) in inactive for t in year.tasks("salesforce"))
    archived = {str(o["id"]) for o in _records(year, "hubspot", "owners") if o.get("archived")}
    assert not any(owner_of("hubspot", t) in archived for t in year.tasks("hubspot"))


def _records(year: Year, crm: str, kind: str) -> list[dict[str, Any]]:
    path = f"records/{kind}" if crm == "salesforce" else f"objects/{kind}"
    found = year.box.admin(crm, "GET", path)
    if isinstance(found, dict):
        found = found.get("records", found.get("results", []))
    return list(found)
