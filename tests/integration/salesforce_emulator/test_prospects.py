"""The prospect simulator of the Salesforce emulator (`/__sandbox/prospects`), over HTTP: lost
Opportunities reborn (reopened or a new deal on the account) with a known probability that
depends on the winback Tasks reps completed, simulated reps, determinism, validation."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from .conftest import SfEnv

LOST_ON = "2024-05-01"


def _clock(sf: SfEnv, now: str) -> None:
    sf.admin("POST", "clock", {"now": now})


def _org(sf: SfEnv, deals: dict[str, str], tasks: list[dict[str, Any]] | None = None,
         *, account: bool = True) -> dict[str, str]:
    """Lost deals {ref: CloseDate} on one account (or none), and Tasks linked by "@ref"."""
    records: dict[str, list[dict[str, Any]]] = {
        "Opportunity": [{"ref": ref, "Name": f"Acme - {ref}", "StageName": "Closed Lost",
                         "CloseDate": lost_on, "Amount": 1000,
                         **({"AccountId": "@acme"} if account else {})}
                        for ref, lost_on in deals.items()],
        "Task": tasks or []}
    if account:
        records["Account"] = [{"ref": "acme", "Name": "Acme Corp"}]
    return sf.seed(records)


def _task(ref: str, deal: str, subject: str, due: str, *, key: bool = True) -> dict[str, Any]:
    return {"ref": ref, "Subject": subject, "WhatId": f"@{deal}", "ActivityDate": due,
            "Status": "Not Started", **({"Winback_Key__c": f"key-{ref}"} if key else {})}


def _opp(sf: SfEnv, record_id: str) -> dict[str, Any]:
    opp: dict[str, Any] = sf.login().Opportunity.get(record_id)
    return opp


def _configure(sf: SfEnv, **body: Any) -> dict[str, Any]:
    stored: dict[str, Any] = sf.admin("POST", "prospects", body)
    return stored


def _decisions(sf: SfEnv) -> dict[str, dict[str, Any]]:
    return {d["deal"]: d for d in sf.admin("GET", "prospects")["decided"]}


def test_a_completed_post_mortem_reopens_its_deal_and_only_its_deal(sf: SfEnv) -> None:
    """base 0, post-mortem 1.0: the deal whose post-mortem Task was completed by its decision
    day reopens when the clock passes that day; one whose task is open, or was completed
    after the decision day, stays lost."""
    _clock(sf, "2024-05-02T10:00:00Z")
    refs = _org(sf, {"done": LOST_ON, "open": LOST_ON, "late": LOST_ON}, [
        _task("t_done", "done", "Post-mortem call with Cy", "2024-05-03"),
        _task("t_open", "open", "Post-mortem call with Di", "2024-05-03"),
        _task("t_late", "late", "Post-mortem call with Ed", "2024-05-03")])
    config = _configure(sf, base=0.0, completed={"post-mortem": 1.0}, days=[10, 10],
                        reps={"complete": 0.0})
    assert config["completed"] == {"post-mortem": 1.0} and config["days"] == [10, 10]
    sf.admin("POST", "activities/complete", {"id": refs["t_done"], "at": "2024-05-05T15:00:00Z"})
    sf.admin("POST", "activities/complete", {"id": refs["t_late"], "at": "2024-05-20T15:00:00Z"})
    before = _opp(sf, refs["done"])
    _clock(sf, "2024-05-10T12:00:00Z")  # the decision day is 2024-05-11
    assert sf.admin("GET", "prospects")["decided"] == []
    assert _opp(sf, refs["done"])["StageName"] == "Closed Lost"

    _clock(sf, "2024-05-11T08:00:00Z")
    reopened = _opp(sf, refs["done"])
    assert reopened["StageName"] == "Prospecting" and reopened["IsClosed"] is False
    assert reopened["LastModifiedDate"] > before["LastModifiedDate"]
    assert reopened["LastModifiedDate"].startswith("2024-05-11T08:00")
    for ref in ("open", "late"):
        assert _opp(sf, refs[ref])["StageName"] == "Closed Lost"
    decided = _decisions(sf)
    assert decided[refs["done"]] == {
        "deal": refs["done"], "lost_on": LOST_ON, "decided_on": "2024-05-11",
        "probability": 1.0, "completed": ["Post-mortem call with Cy"], "reborn": True,
        "how": "reopen", "new_deal": None}
    assert decided[refs["open"]]["probability"] == 0.0
    assert decided[refs["late"]]["completed"] == [] and not decided[refs["late"]]["reborn"]
    assert sf.admin("GET", "prospects")["reborn"] == 1
    # the change is what an incremental sync sees
    changed = sf.login().query("SELECT Id FROM Opportunity WHERE IsClosed = false AND "
                               "LastModifiedDate >= 2024-05-11T00:00:00Z")
    assert [r["Id"] for r in changed["records"]] == [refs["done"]]


def test_base_one_reopens_every_lost_deal(sf: SfEnv) -> None:
    seeded = sf.admin("POST", "seed", {"generate": {"deals": 60, "seed": 3}})
    lost = seeded["deals"]["lost"]
    assert lost > 0
    _configure(sf, base=1.0, days=[0, 0])
    sf.admin("POST", "clock", {"advance_seconds": 86400})  # the run follows the clock change
    body = sf.admin("GET", "prospects")
    assert body["reborn"] == len(body["decided"]) == lost
    assert {d["how"] for d in body["decided"]} == {"reopen"}
    client = sf.login()
    assert client.query("SELECT COUNT() FROM Opportunity WHERE IsClosed = true "
                        "AND IsWon = false")["totalSize"] == 0
    assert sf.admin("POST", "prospects/run")["reborn"] == lost  # decided once


def test_new_deal_share_one_creates_an_open_deal_on_the_account(sf: SfEnv) -> None:
    _clock(sf, "2024-05-02T10:00:00Z")
    refs = _org(sf, {"lost": LOST_ON})
    alone = _org(sf, {"alone": LOST_ON}, account=False)
    _configure(sf, base=1.0, new_deal_share=1.0, days=[3, 3])
    _clock(sf, "2024-05-04T09:00:00Z")
    run = sf.admin("POST", "prospects/run")
    decided = {d["deal"]: d for d in run["decided"]}
    made = decided[refs["lost"]]
    assert made["how"] == "new_deal" and made["new_deal"].startswith("006")
    assert decided[alone["alone"]]["how"] == "reopen"  # no account: reopened instead
    new = _opp(sf, made["new_deal"])
    assert new["AccountId"] == refs["acme"] and new["IsClosed"] is False
    assert new["StageName"] == "Prospecting" and new["CloseDate"] == "2024-06-03"
    assert new["CreatedDate"].startswith("2024-05-04T09:00")
    assert new["Amount"] == 1000
    assert _opp(sf, refs["lost"])["StageName"] == "Closed Lost"  # the lost deal stays lost
    assert _opp(sf, alone["alone"])["IsClosed"] is False


def test_reps_complete_due_winback_tasks_after_after_days_and_not_before(sf: SfEnv) -> None:
    _clock(sf, "2024-05-02T10:00:00Z")
    refs = _org(sf, {"lost": LOST_ON}, [
        _task("wb", "lost", "Check in", "2024-05-10"),
        _task("plain", "lost", "Not ours", "2024-05-01", key=False)])
    _configure(sf, base=0.0, days=[100, 100], reps={"complete": 1.0, "after_days": 2})
    _clock(sf, "2024-05-11T23:00:00Z")
    assert sf.admin("GET", "prospects")["completed_tasks"] == 0
    task = sf.login().Task.get(refs["wb"])
    assert task["IsClosed"] is False and task["CompletedDateTime"] is None
    _clock(sf, "2024-05-12T00:30:00Z")
    assert sf.admin("GET", "prospects")["completed_tasks"] == 1
    client = sf.login()
    task = client.Task.get(refs["wb"])
    assert task["Status"] == "Completed" and task["IsClosed"] is True
    assert task["CompletedDateTime"] == "2024-05-12T09:00:00.000+0000"
    assert client.Task.get(refs["plain"])["IsClosed"] is False  # no Winback_Key__c
    _clock(sf, "2024-06-30T00:00:00Z")
    assert sf.admin("GET", "prospects")["completed_tasks"] == 1  # drawn once


def test_reps_who_never_complete_leave_tasks_open(sf: SfEnv) -> None:
    _clock(sf, "2024-05-02T10:00:00Z")
    refs = _org(sf, {"lost": LOST_ON}, [_task("wb", "lost", "Post-mortem", "2024-05-03")])
    _configure(sf, base=0.0, completed={"post-mortem": 1.0}, days=[20, 20],
               reps={"complete": 0.0})
    _clock(sf, "2024-06-01T00:00:00Z")
    assert sf.login().Task.get(refs["wb"])["IsClosed"] is False
    assert _decisions(sf)[refs["lost"]]["reborn"] is False


def _scenario(sf: SfEnv, steps: list[str]) -> tuple[dict[str, Any], set[str]]:
    """30 lost deals, each with a post-mortem task; the decisions and completed tasks (by
    ref) after the clock went through `steps`."""
    sf.admin("POST", "reset")
    _clock(sf, "2024-04-30T12:00:00Z")
    deals = {f"d{i}": (date(2024, 5, 1) + timedelta(days=i % 7)).isoformat() for i in range(30)}
    tasks = [_task(f"t{i}", f"d{i}", f"Post-mortem #{i}", deals[f"d{i}"]) for i in range(30)]
    refs = _org(sf, deals, tasks)
    names = {v: k for k, v in refs.items()}
    _configure(sf, seed=11, base=0.2, completed={"POST-MORTEM": 0.8}, days=[2, 15],
               new_deal_share=0.3, reps={"complete": 0.5, "after_days": 3})
    for step in steps:
        _clock(sf, step)
    body = sf.admin("GET", "prospects")
    decided = {names[d["deal"]]: {**d, "deal": names[d["deal"]],
                                  "new_deal": d["new_deal"] is not None}
               for d in body["decided"]}
    done = {names[t["Id"]] for t in sf.admin("GET", "tasks")["records"] if t["IsClosed"]}
    assert body["completed_tasks"] == len(done)
    return decided, done


def test_same_seed_same_decisions_however_the_clock_is_stepped(sf: SfEnv) -> None:
    big = _scenario(sf, ["2024-06-30T12:00:00Z"])
    daily = _scenario(sf, [f"{date(2024, 5, 1) + timedelta(days=n)}T06:00:00Z"
                           for n in range(61)])
    assert big == daily
    decided, done = big
    assert len(decided) == 30 and 5 <= len(done) <= 25
    assert any(d["reborn"] for d in decided.values())
    assert any(not d["reborn"] for d in decided.values())
    assert any(d["how"] == "new_deal" for d in decided.values())
    # the probability follows the completed task, if done by the decision day
    for ref, d in decided.items():
        assert d["probability"] == (0.8 if d["completed"] else 0.2)
        assert bool(d["completed"]) <= (f"t{ref[1:]}" in done)
    assert _scenario(sf, ["2024-06-30T12:00:00Z"]) == big


@pytest.mark.parametrize(("body", "field"), [
    ({"seed": "x"}, "seed"), ({"base": 1.5}, "base"), ({"base": True}, "base"),
    ({"completed": ["post-mortem"]}, "completed"),
    ({"completed": {"post-mortem": -0.1}}, "completed.post-mortem"),
    ({"days": [80, 30]}, "days"), ({"days": [1]}, "days"), ({"days": [0, 1.5]}, "days"),
    ({"new_deal_share": "all"}, "new_deal_share"), ({"reps": 1}, "reps"),
    ({"reps": {"complete": 2}}, "reps.complete"), ({"reps": {"after_days": -1}},
                                                   "reps.after_days"),
    ({"reps": {"later": 1}}, "reps.later"), ({"bogus": 1}, "bogus"), ([1, 2], "body"),
])
def test_bad_input_is_a_400_naming_the_field(sf: SfEnv, body: Any, field: str) -> None:
    _configure(sf, base=0.5)
    answer = sf.admin("POST", "prospects", body, expect=400)
    assert answer["field"] == field and field in answer["message"]
    assert sf.admin("GET", "prospects")["config"]["base"] == 0.5  # the old one stays


def test_off_keeps_the_log_and_reset_forgets_it(sf: SfEnv) -> None:
    _clock(sf, "2024-05-02T10:00:00Z")
    refs = _org(sf, {"first": LOST_ON})
    defaults = _configure(sf)
    assert defaults == {"seed": 0, "base": 0.1, "completed": {"post-mortem": 0.2},
                        "days": [30, 80], "new_deal_share": 0.0,
                        "reps": {"complete": 1.0, "after_days": 1}}
    _configure(sf, base=1.0, days=[1, 1])
    _clock(sf, "2024-05-03T10:00:00Z")
    assert list(_decisions(sf)) == [refs["first"]]
    off = sf.admin("DELETE", "prospects")
    assert off["config"] is None and off["reborn"] == 1
    later = _org(sf, {"later": "2024-05-02"})
    _clock(sf, "2024-05-10T10:00:00Z")
    assert list(_decisions(sf)) == [refs["first"]]  # off: nothing more decided
    assert _opp(sf, later["later"])["StageName"] == "Closed Lost"
    _configure(sf, base=1.0, days=[1, 1])  # a new configuration keeps the log
    assert sf.admin("POST", "prospects/run")["reborn"] == 2
    assert list(_decisions(sf)) == [refs["first"], later["later"]]
    sf.admin("POST", "reset")
    assert sf.admin("GET", "prospects") == {"config": None, "decided": [], "reborn": 0,
                                            "completed_tasks": 0}
