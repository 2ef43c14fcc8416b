"""The outcome report against the CRMs' own records (issue 14): a small run over both CRM
emulators where reps complete tasks (some on time, some late), one deal per CRM is reopened
and one is won, all through the sandbox admin API. Every figure of the report (per step
written, completed on time / late, open, overdue; why cadences ended; win-back counts and n;
the last touch before each rebirth) equals the count computed here from the emulators' task
lists and deal records, with no look at the ledger (on SQLite and PostgreSQL). Completion
reaches the ledger by the daily task status read (no rule here reads task activity)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import CONFIG, Year
from tests.acceptance.test_year import EPOCH, due_of, key_of
from worker.cadence.engine import Planner
from worker.cadence.outcome import skip_reason
from worker.service.wiring import build_service
from worker.settings import load_config
from worker.views.reports import cadence_shapes, outcome_report

REBORN_SUBJECT = "Opportunity reborn"


def _completion(crm: str, t: dict[str, Any]) -> datetime | None:
    """When the CRM says the task was completed (None: open)."""
    if crm == "salesforce":
        if not t.get("IsClosed"):
            return None
        return datetime.fromisoformat(str(t["CompletedDateTime"]).replace("Z", "+00:00"))
    props = t["properties"]
    if props.get("hs_task_status") != "COMPLETED":
        return None
    raw = str(props["hs_task_completion_date"])
    if raw.isdigit():
        return datetime.fromtimestamp(int(raw) / 1000, UTC)
    return datetime.fromisoformat(raw.replace("Z", "+00:00"))


def _subject(crm: str, t: dict[str, Any]) -> str:
    return str(t.get("Subject") if crm == "salesforce"
               else t["properties"].get("hs_task_subject", ""))


def _deal_of(crm: str, t: dict[str, Any]) -> str:
    if crm == "salesforce":
        return str(t["WhatId"])
    return str(t["associations"]["deals"][0])


@pytest.fixture
def run(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    year = Year(tmp_path, database_url, monkeypatch, deals=14)
    # Tasks stay open on a stop, so every completed task in a CRM was completed by a rep.
    text = year.path.read_text().replace(CONFIG, CONFIG.replace("close_open_tasks",
                                                                "keep_open_tasks"))
    year.path.write_text(text)
    year.service.close()
    year.service = build_service(load_config(year.path), year.path, clock=year.now)
    yield year
    year.close()


def test_the_report_equals_the_counts_of_the_crms_own_records(run: Year) -> None:
    year = run
    start = year.now()
    planned: dict[str, tuple[str, str, str]] = {}  # key -> (deal id, cadence, step)
    lost: dict[str, dict[str, str]] = {}  # crm -> deal id -> cadence
    skipped: Counter[tuple[str, str, str]] = Counter()  # the plans' skips, by reason
    for name, ctx in year.service.contexts.items():
        planner = Planner(year.service.config, name)
        crm = ctx.settings.kind
        lost[crm] = {}
        for page in ctx.connector.changed_deals(EPOCH):
            deals = [d for d in page.deals if d.is_lost]
            contacts = ctx.connector.stakeholders([d.id for d in deals]) if deals else {}
            for deal in deals:
                deal = deal.model_copy(update={"contacts": tuple(contacts.get(deal.id, ()))})
                plan = planner.plan(deal, start)
                if plan.cadence is None:
                    continue
                lost[crm][deal.id] = plan.cadence
                planned.update({t.key: (deal.id, plan.cadence, t.step) for t in plan.tasks})
                skipped.update((plan.cadence, k.step, skip_reason(k)) for k in plan.skipped)
    year.tick()
    year.advance(days=8)
    year.tick()  # the first tasks are written; the status read's day starts
    changed: dict[str, dict[str, str]] = {"salesforce": {}, "hubspot": {}}
    for crm in ("salesforce", "hubspot"):
        with_tasks = sorted({planned[key_of(crm, t)][0] for t in year.tasks(crm)})
        assert len(with_tasks) >= 4, crm
        reopen, win = with_tasks[0], with_tasks[1]
        changed[crm] = {reopen: "open", win: "won"}
        for index, t in enumerate(sorted(year.tasks(crm), key=lambda t: key_of(crm, t))):
            if planned[key_of(crm, t)][0] in changed[crm] or index % 2 == 0:
                at = year.now() - timedelta(minutes=5 * index + 5)  # distinct moments
                year.box.admin(crm, "POST", "activities/complete",
                               {"id": _id(crm, t), "at": at.isoformat()})
        year.advance(hours=2)
        for deal_id, to in changed[crm].items():
            if crm == "salesforce":
                year.box.admin(crm, "PATCH", f"records/Opportunity/{deal_id}",
                               {"StageName": "Closed Won" if to == "won"
                                else "Negotiation/Review"})
            else:
                year.box.admin(crm, "PATCH", f"objects/deals/{deal_id}", {"properties": {
                    "dealstage": "closedwon" if to == "won" else "appointmentscheduled"}})
    year.advance(days=1, hours=1)
    results = year.tick()  # the stops, and the daily status read
    assert sum(r.counts.stopped for r in results.values()) >= 4
    today = year.now().date()
    settings = year.service.config
    report = outcome_report(year.service.ledger, list(year.service.contexts), date(2000, 1, 1),
                            today, cadence_shapes(settings, today))

    # -- per step, from the CRMs' task lists ---------------------------------------------
    want: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    completions: dict[tuple[str, str], list[tuple[datetime, str]]] = defaultdict(list)
    for crm in ("salesforce", "hubspot"):
        for t in year.tasks(crm):
            if _subject(crm, t).startswith(REBORN_SUBJECT):
                deal_id, cadence, step = _deal_of(crm, t), "reborn", "notify"
            else:
                deal_id, cadence, step = planned[key_of(crm, t)]
            row = want[(cadence, step)]
            row["written"] += 1
            done, due = _completion(crm, t), due_of(crm, t)
            if done is None:
                row["open"] += 1
                row["overdue"] += due < today
            else:
                row["on_time" if done.astimezone(UTC).date() <= due else "late"] += 1
                completions[(crm, deal_id)].append((done, step))
    got = {(r["cadence"], r["step"]): Counter({k: r[k] for k in
                                               ("written", "on_time", "late", "open",
                                                "overdue") if r[k]})
           for r in report["by_step_outcome"] if r["written"]}
    assert got == {k: +v for k, v in want.items()}
    assert sum(r["late"] for r in report["by_step_outcome"]) > 0
    assert Counter({(r["cadence"], r["step"], reason): n for r in report["by_step_outcome"]
                    for reason, n in r["skipped_by"].items()}) == skipped
    assert skipped, "the sample skips no step"
    assert sum(r["on_time"] for r in report["by_step_outcome"]) > 0

    # -- why cadences ended, from the deal records ---------------------------------------
    exits: dict[str, Counter[str]] = defaultdict(Counter)
    shapes = cadence_shapes(settings, today)
    for ctx in year.service.contexts.values():
        crm = ctx.settings.kind
        now_in_crm = {d.id: d for d in ctx.connector.deals_by_id(sorted(lost[crm]))}
        for deal_id, cadence in lost[crm].items():
            deal = now_in_crm[deal_id]
            exits[cadence]["won" if deal.is_won else "still running" if deal.is_lost
                           and shapes[cadence].has_steps else "disqualified" if deal.is_lost
                           else "reborn: reopened"] += 1
    assert {r["cadence"]: Counter({k: v for k, v in r.items()
                                   if k not in ("cadence", "total") and v})
            for r in report["exits"]} == exits

    # -- win-back counts (n and won back) by cadence -------------------------------------
    for row in report["winback_rates"]["cadence"]:
        cell = row["365d"]
        assert cell["n"] == sum(exits[row["value"]].values())
        assert cell["won_back"] == exits[row["value"]]["won"]
        assert cell["rate"] == round(cell["won_back"] / cell["n"], 4)

    # -- the last touch completed before each rebirth -------------------------------------
    reborn = {d["deal_id"]: d["last_touch"] for d in report["reborn"]["deals"]}
    assert set(reborn) == {d for kind in changed for d in changed[kind]}
    for kind, moved in changed.items():
        for deal_id in moved:
            touches = sorted(completions[(kind, deal_id)])
            assert touches, (kind, deal_id)
            assert reborn[deal_id] == touches[-1][1], (kind, deal_id)
    assert sum(b["count"] for b in report["reborn"]["days_to_rebirth"]) == len(reborn)


def _id(crm: str, t: dict[str, Any]) -> str:
    return str(t["Id"] if crm == "salesforce" else t["id"])
