"""The prospect simulator of the HubSpot emulator (`/__sandbox/prospects`), over HTTP: lost
deals reborn (reopened or a new deal on the company) with a known probability that depends
on the winback tasks reps completed, simulated reps, determinism, validation."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from hubspot.crm.deals import PublicObjectSearchRequest

from .conftest import HS

LOST_ON = "2024-05-01"
KEY = "winback_key"


def _clock(hs: HS, now: str) -> None:
    hs.admin("POST", "clock", {"now": now})


def _crm(hs: HS, deals: dict[str, str], tasks: list[dict[str, Any]] | None = None, *,
         company: bool = True, pipeline: str = "default",
         stage: str = "closedlost") -> dict[str, str]:
    """Lost deals {ref: closedate} of one company (or none), and tasks linked by "@ref"."""
    if KEY not in hs.emulator.store.props["tasks"]:
        hs.key_property(KEY)
    objects: dict[str, Any] = {
        "owners": [{"ref": "ann", "email": "ann@seller.example", "firstName": "Ann"}],
        "deals": [{"ref": ref, "dealname": f"Acme - {ref}", "pipeline": pipeline,
                   "dealstage": stage, "closedate": f"{lost_on}T00:00:00Z", "amount": "1000",
                   "hubspot_owner_id": "@ann",
                   **({"associations": {"companies": ["@acme"]}} if company else {})}
                  for ref, lost_on in deals.items()],
        "tasks": tasks or []}
    if company:
        objects["companies"] = [{"ref": "acme", "name": "Acme"}]
    ids: dict[str, str] = hs.admin("POST", "seed", {"objects": objects, "append": True})["ids"]
    return ids


def _task(ref: str, deal: str, subject: str, due: str, *, key: bool = True) -> dict[str, Any]:
    return {"ref": ref, "properties": {"hs_task_subject": subject,
                                       "hs_timestamp": f"{due}T10:00:00Z",
                                       "hs_task_status": "NOT_STARTED",
                                       **({KEY: f"key-{ref}"} if key else {})},
            "associations": {"deals": [f"@{deal}"]}}


def _deal(hs: HS, deal_id: str) -> dict[str, Any]:
    found = hs.client().crm.deals.basic_api.get_by_id(
        deal_id, properties=["dealstage", "pipeline", "hs_lastmodifieddate", "hs_is_closed",
                             "closedate", "amount", "hubspot_owner_id", "createdate"])
    props: dict[str, Any] = found.properties
    return props


def _task_props(hs: HS, task_id: str) -> dict[str, Any]:
    found = hs.client().crm.objects.tasks.basic_api.get_by_id(
        task_id, properties=["hs_task_status", "hs_task_completion_date"])
    props: dict[str, Any] = found.properties
    return props


def _configure(hs: HS, **body: Any) -> dict[str, Any]:
    stored: dict[str, Any] = hs.admin("POST", "prospects", body)
    return stored


def _decisions(hs: HS) -> dict[str, dict[str, Any]]:
    return {d["deal"]: d for d in hs.admin("GET", "prospects")["decided"]}


def test_a_completed_post_mortem_reopens_its_deal_and_only_its_deal(hs: HS) -> None:
    _clock(hs, "2024-05-02T10:00:00Z")
    ids = _crm(hs, {"done": LOST_ON, "open": LOST_ON, "late": LOST_ON}, [
        _task("t_done", "done", "Post-mortem call with Cy", "2024-05-03"),
        _task("t_open", "open", "Post-mortem call with Di", "2024-05-03"),
        _task("t_late", "late", "Post-mortem call with Ed", "2024-05-03")])
    _configure(hs, base=0.0, completed={"post-mortem": 1.0}, days=[10, 10],
               reps={"complete": 0.0})
    hs.admin("POST", "activities/complete", {"id": ids["t_done"], "at": "2024-05-05T15:00:00Z"})
    hs.admin("POST", "activities/complete", {"id": ids["t_late"], "at": "2024-05-20T15:00:00Z"})
    before = _deal(hs, ids["done"])
    _clock(hs, "2024-05-10T12:00:00Z")
    assert hs.admin("GET", "prospects")["decided"] == []
    assert _deal(hs, ids["done"])["dealstage"] == "closedlost"

    _clock(hs, "2024-05-11T08:00:00Z")
    reopened = _deal(hs, ids["done"])
    assert reopened["dealstage"] == "appointmentscheduled"
    assert reopened["hs_is_closed"] == "false"
    assert reopened["hs_lastmodifieddate"] > before["hs_lastmodifieddate"]
    assert reopened["hs_lastmodifieddate"].startswith("2024-05-11T08:00")
    for ref in ("open", "late"):
        assert _deal(hs, ids[ref])["dealstage"] == "closedlost"
    decided = _decisions(hs)
    assert decided[ids["done"]] == {
        "deal": ids["done"], "lost_on": LOST_ON, "decided_on": "2024-05-11",
        "probability": 1.0, "completed": ["Post-mortem call with Cy"], "reborn": True,
        "how": "reopen", "new_deal": None}
    assert decided[ids["open"]]["probability"] == 0.0
    assert decided[ids["late"]]["completed"] == [] and not decided[ids["late"]]["reborn"]
    # the change is what an incremental sync (a search on hs_lastmodifieddate) sees
    search = hs.client().crm.deals.search_api.do_search(PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                                     "value": "2024-05-11T00:00:00.000Z"}]}]))
    assert [r.id for r in search.results] == [ids["done"]]


def test_base_one_reopens_every_lost_deal_in_its_own_pipeline(hs: HS) -> None:
    seeded = hs.seed(80)
    assert seeded["closed_lost"] > 0
    _configure(hs, base=1.0, days=[0, 0])
    hs.admin("POST", "clock", {"advance_seconds": 86400})
    body = hs.admin("GET", "prospects")
    assert body["reborn"] == len(body["decided"]) == seeded["closed_lost"]
    deals = hs.admin("GET", "objects/deals")["results"]
    assert not [d for d in deals if d["properties"]["hs_is_closed_lost"] == "true"]
    stages = {deals_by["properties"]["dealstage"] for deals_by in deals
              if deals_by["id"] in {d["deal"] for d in body["decided"]}}
    assert stages == {"appointmentscheduled", "1307720550"}  # each pipeline's first open stage


def test_new_deal_share_one_creates_an_open_deal_on_the_company(hs: HS) -> None:
    _clock(hs, "2024-05-02T10:00:00Z")
    ids = _crm(hs, {"lost": LOST_ON}, pipeline="1307720549", stage="1307720556")
    alone = _crm(hs, {"alone": LOST_ON}, company=False)
    _configure(hs, base=1.0, new_deal_share=1.0, days=[3, 3])
    _clock(hs, "2024-05-04T09:00:00Z")
    decided = {d["deal"]: d for d in hs.admin("POST", "prospects/run")["decided"]}
    made = decided[ids["lost"]]
    assert made["how"] == "new_deal" and made["new_deal"]
    assert decided[alone["alone"]]["how"] == "reopen"  # no company: reopened instead
    new = _deal(hs, made["new_deal"])
    assert new["pipeline"] == "1307720549" and new["dealstage"] == "1307720550"
    assert new["hs_is_closed"] == "false" and new["amount"] == "1000"
    assert new["hubspot_owner_id"] == ids["ann"]
    assert new["createdate"].startswith("2024-05-04T09:00")
    assert new["closedate"].startswith("2024-06-03")
    record = hs.admin("GET", f"objects/deals/{made['new_deal']}")
    assert record["associations"]["companies"] == [ids["acme"]]
    links = hs.emulator.store.linked("deals", int(made["new_deal"]), "companies")
    assert 5 in links[int(ids["acme"])]  # deal_to_company, as seeding links them
    assert _deal(hs, ids["lost"])["dealstage"] == "1307720556"


def test_reps_complete_due_winback_tasks_after_after_days_and_not_before(hs: HS) -> None:
    _clock(hs, "2024-05-02T10:00:00Z")
    ids = _crm(hs, {"lost": LOST_ON}, [_task("wb", "lost", "Check in", "2024-05-10"),
                                       _task("plain", "lost", "Not ours", "2024-05-01",
                                             key=False)])
    _configure(hs, base=0.0, days=[100, 100], reps={"complete": 1.0, "after_days": 2})
    _clock(hs, "2024-05-11T23:00:00Z")
    assert hs.admin("GET", "prospects")["completed_tasks"] == 0
    assert _task_props(hs, ids["wb"])["hs_task_status"] == "NOT_STARTED"
    _clock(hs, "2024-05-12T00:30:00Z")
    assert hs.admin("GET", "prospects")["completed_tasks"] == 1
    task = _task_props(hs, ids["wb"])
    assert task["hs_task_status"] == "COMPLETED"
    assert task["hs_task_completion_date"] == "2024-05-12T09:00:00.000Z"
    assert _task_props(hs, ids["plain"])["hs_task_status"] == "NOT_STARTED"


def _scenario(hs: HS, steps: list[str]) -> tuple[dict[str, Any], set[str]]:
    hs.admin("POST", "reset")
    _clock(hs, "2024-04-30T12:00:00Z")
    deals = {f"d{i}": (date(2024, 5, 1) + timedelta(days=i % 7)).isoformat() for i in range(30)}
    tasks = [_task(f"t{i}", f"d{i}", f"Post-mortem #{i}", deals[f"d{i}"]) for i in range(30)]
    ids = _crm(hs, deals, tasks)
    names = {v: k for k, v in ids.items()}
    _configure(hs, seed=11, base=0.2, completed={"POST-MORTEM": 0.8}, days=[2, 15],
               new_deal_share=0.3, reps={"complete": 0.5, "after_days": 3})
    for step in steps:
        _clock(hs, step)
    body = hs.admin("GET", "prospects")
    decided = {names[d["deal"]]: {**d, "deal": names[d["deal"]],
                                  "new_deal": d["new_deal"] is not None}
               for d in body["decided"]}
    done = {names[t["id"]] for t in hs.admin("GET", "tasks")["results"]
            if t["properties"]["hs_task_status"] == "COMPLETED"}
    assert body["completed_tasks"] == len(done)
    return decided, done


def test_same_seed_same_decisions_however_the_clock_is_stepped(hs: HS) -> None:
    big = _scenario(hs, ["2024-06-30T12:00:00Z"])
    daily = _scenario(hs, [f"{date(2024, 5, 1) + timedelta(days=n)}T06:00:00Z"
                           for n in range(61)])
    assert big == daily
    decided, done = big
    assert len(decided) == 30 and 5 <= len(done) <= 25
    assert {d["how"] for d in decided.values()} == {None, "reopen", "new_deal"}
    for ref, d in decided.items():
        assert d["probability"] == (0.8 if d["completed"] else 0.2)
        assert bool(d["completed"]) <= (f"t{ref[1:]}" in done)


@pytest.mark.parametrize(("body", "field"), [
    ({"seed": 1.5}, "seed"), ({"base": -0.1}, "base"),
    ({"completed": {"post-mortem": "high"}}, "completed.post-mortem"),
    ({"days": "30-80"}, "days"), ({"new_deal_share": 2}, "new_deal_share"),
    ({"reps": {"after_days": "1"}}, "reps.after_days"), ({"extra": 0}, "extra"),
])
def test_bad_input_is_a_400_naming_the_field(hs: HS, body: Any, field: str) -> None:
    answer = hs.admin("POST", "prospects", body, status=400)
    assert answer["field"] == field and field in answer["message"]
    assert hs.admin("GET", "prospects")["config"] is None


def test_off_keeps_the_log_and_reset_forgets_it(hs: HS) -> None:
    _clock(hs, "2024-05-02T10:00:00Z")
    ids = _crm(hs, {"first": LOST_ON})
    _configure(hs, base=1.0, days=[1, 1])
    _clock(hs, "2024-05-03T10:00:00Z")
    assert list(_decisions(hs)) == [ids["first"]]
    assert hs.admin("DELETE", "prospects")["config"] is None
    hs.admin("PATCH", f"objects/deals/{ids['first']}", {"dealstage": "closedlost"})
    _clock(hs, "2024-05-10T10:00:00Z")
    assert _deal(hs, ids["first"])["dealstage"] == "closedlost"
    assert hs.admin("GET", "prospects")["reborn"] == 1
    hs.admin("POST", "reset")
    assert hs.admin("GET", "prospects") == {"config": None, "decided": [], "reborn": 0,
                                            "completed_tasks": 0}


def test_a_seed_that_replaces_the_data_starts_a_fresh_log(hs: HS) -> None:
    """A seed without "append" replaces the portal (ids start over): what was decided about
    the old deals says nothing about the new ones."""
    first = hs.seed(40)
    _configure(hs, base=1.0, days=[0, 0])
    assert hs.admin("POST", "prospects/run")["reborn"] == first["closed_lost"]
    second = hs.seed(40, seed=99)
    body = hs.admin("POST", "prospects/run")
    assert body["config"]["base"] == 1.0
    assert body["reborn"] == len(body["decided"]) == second["closed_lost"]
    deals = hs.admin("GET", "objects/deals")["results"]
    assert not [d for d in deals if d["properties"]["hs_is_closed_lost"] == "true"]
