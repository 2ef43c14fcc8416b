"""Activity-aware cadences through a simulated year on both CRM emulators (issue 13).

Simulated reps, driven through the emulators' admin API with a seeded RNG, complete the
post-mortem task early, on time, late, after max_wait or never, log calls and meetings (some on
the account, some deleted again), pause deals and opt deals out, while one owner per CRM is
away two weeks. The clock moves a week per tick through a year, the real worker syncs at each
step. At the end the winback tasks in each CRM (deal, step, due date) equal what an oracle in
this file computes from the pinned rules (tests/fixtures/plan-vectors/activity/README.md) and
the recorded rep actions, without calling the planner; no task key was created twice (the
emulators' write log); the ledger's written tasks are the CRM's.

The oracle keeps the rules to the cases simulated: one cadence, per-deal steps, owners with a
time zone and country override (their calendar is weekends + the country's public holidays
from the `holidays` package + days away), reps that leave paused and opted-out deals alone,
meetings only where the notice they cause cannot fall in a skip_if window of its own.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
from sqlalchemy import select

from connectors.models import Deal
from sandbox.runner import Sandbox, hubspot_connection, salesforce_connection, start_sandbox
from worker.ledger import migrate
from worker.ledger.db import make_engine
from worker.ledger.schema import task as task_table
from worker.service.wiring import Service, build_service
from worker.settings import load_config
from worker.sync.tick import run_tick

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
CRMS = ("salesforce", "hubspot")
NAMES = {"salesforce": "year-sf", "hubspot": "year-hs"}
ZONES = (("America/New_York", "US"), ("Europe/Berlin", "DE"), ("America/Los_Angeles", "US"))
GRACE, LEAD, WITHIN, MAX_WAIT = 7, 7, 14, 21
WEEKS = 53

CONFIG = """\
version: 1
defaults:
  timezone: America/New_York
  calendar: {country: US}
  reminder_time: "09:00"
  lead_time: 7d
  grace: 7d
  horizon: 3y
stop: {on_reopen: close_open_tasks, on_new_deal_for_account: false, notify_owner: false,
       on_meeting: notify}
cadences:
  - id: reactive
    steps:
      - {id: post-mortem, at: 14d, channel: call, subject: "PM {{ deal.name }}"}
      - {id: check-in, every: 4w, from: 4w, until: 12w, after: post-mortem, max_wait: 21d,
         channel: email, subject: "CI {{ deal.name }}"}
      - {id: ninety-day, at: 90d, channel: call, subject: "N90 {{ deal.name }}",
         skip_if: {activity: [call, meeting], within: 14d}}
      - {id: anniversary, at: 1y, channel: email, subject: "A1Y {{ deal.name }}"}
connections:
"""
PREFIXES = {"PM": "post-mortem", "CI": "check-in", "N90": "ninety-day", "A1Y": "anniversary"}
NOTICE = "Meeting booked with"


# -- the oracle: the pinned rules, for the cases simulated -------------------------------------
@dataclass
class Owner:
    zone: str
    country: str
    away: tuple[date, date] | None = None

    def __post_init__(self) -> None:
        self.holidays = holidays.country_holidays(self.country)

    def working(self, day: date, *, away: bool = True) -> bool:
        gone = away and self.away is not None and self.away[0] <= day <= self.away[1]
        return day.weekday() < 5 and day not in self.holidays and not gone

    def shift(self, day: date, *, away: bool = True) -> date:
        while not self.working(day, away=away):
            day += timedelta(days=1)
        return day

    def local(self, moment: datetime) -> date:
        return moment.astimezone(ZoneInfo(self.zone)).date()

    def day_start(self, day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=ZoneInfo(self.zone)).astimezone(UTC)


@dataclass
class Logged:
    """A rep's activity: kind, when it happened, when it reached the CRM, when it was
    deleted (None: never), and what it is linked to (deal or account)."""

    kind: str
    at: datetime
    logged: datetime
    deleted: datetime | None = None
    crm_id: str = ""
    deal: str | None = None
    account: str | None = None  # Salesforce links every activity on a deal to its account

    def live(self, now: datetime) -> bool:
        return self.at <= now and self.logged <= now and (self.deleted is None
                                                          or self.deleted > now)


@dataclass
class Script:
    """What the reps do to one deal, and (filled in as it happens) when."""

    deal: Deal
    owner: Owner
    day0: date
    completion_target: datetime | None = None
    completed: tuple[datetime, datetime] | None = None  # (completion time, logged)
    activities: list[Logged] = field(default_factory=list)
    planned: list[Logged] = field(default_factory=list)  # not yet logged
    delete_again: bool = False
    pause: date | None = None
    pause_set_at: datetime | None = None
    pause_logged: datetime | None = None
    opt_out_at: datetime | None = None
    opt_out_logged: datetime | None = None


def fixed_due(script: Script, step: str, *, away: bool = True) -> date:
    offsets = {"post-mortem": timedelta(days=14), "ninety-day": timedelta(days=90)}
    if step == "anniversary":
        raw = script.day0.replace(year=script.day0.year + 1)
    else:
        raw = script.day0 + offsets[step]
    return script.owner.shift(raw, away=away)


def expect(script: Script, ticks: list[datetime], activities: list[Logged],
           cases: Counter[str]) -> tuple[list[tuple[str, date]], date | None]:
    """The winback tasks one deal has in its CRM after the ticks: (step, due) in write order,
    and the local day its cadence was stopped (opted out), if it was. `activities`: those
    linked to the deal or its account. `cases` counts the rules that applied."""
    o = script.owner
    ci_planned = False
    pending: dict[tuple[str, int], date] = {}
    written: list[tuple[str, date]] = []
    pm_due: date | None = None
    ci_base: date | None = None
    notice_done = False
    held: set[tuple[str, int]] = set()  # kept by a pause (within grace as of its end)
    for n, now in enumerate(ticks):
        today = o.local(now)
        if script.opt_out_logged is not None and script.opt_out_logged <= now:
            cases["opted out"] += 1
            return written, today
        if n == 0:  # first plan: the fixed-offset steps, late ones by the grace rule
            for step in ("post-mortem", "ninety-day", "anniversary"):
                due = fixed_due(script, step)
                if due != fixed_due(script, step, away=False):
                    cases["after days away"] += 1
                if due < today:
                    if due + timedelta(days=GRACE) < today:
                        if step == "post-mortem":
                            ci_base = due  # STEP skipped: count from its due date
                        continue
                    due = o.shift(today)
                pending[(step, 0)] = due
            pm_due = pending.get(("post-mortem", 0))
        if ci_base is None and pm_due is not None:
            deadline = pm_due + timedelta(days=MAX_WAIT)
            if script.completed is not None and script.completed[1] <= now:
                ci_base = min(o.local(script.completed[0]), deadline)
                done = o.local(script.completed[0])
                cases["completed early" if done < pm_due else "completed late"
                      if done <= deadline else "completed after max_wait"] += 1
            elif today >= deadline:
                ci_base = deadline
                cases["max_wait reached"] += 1
        if ci_base is not None and not ci_planned:
            ci_planned = True
            for k in (1, 2, 3):
                raw = ci_base + timedelta(weeks=4 * k)
                due = o.shift(raw)
                if due != o.shift(raw, away=False):
                    cases["after days away"] += 1
                if due < today:
                    if due + timedelta(days=GRACE) < today:
                        continue
                    due = o.shift(today)
                pending[("check-in", k)] = due
        paused = (script.pause is not None and script.pause_logged is not None
                  and script.pause_logged <= now and script.pause > today)
        if paused:
            assert script.pause is not None
            for key, due in list(pending.items()):
                if due < script.pause:
                    if due + timedelta(days=GRACE) < script.pause:
                        del pending[key]
                        cases["skipped: due in the pause, past grace"] += 1
                    elif pending[key] != o.shift(script.pause):
                        pending[key] = o.shift(script.pause)
                        held.add(key)
                        cases["moved to the pause's end"] += 1
            continue
        if not notice_done:
            meetings = sorted((a for a in activities if a.kind == "meeting"
                               and a.live(now) and o.local(a.at) > script.day0),
                              key=lambda a: a.at)
            if meetings:
                notice_done = True
                written.append(("notice", o.shift(max(o.local(meetings[0].at), today))))
                cases["meeting notice"] += 1
        for key, due in sorted(pending.items(), key=lambda i: i[1]):
            if now < o.day_start(due - timedelta(days=LEAD)):
                continue
            del pending[key]
            if due < today:  # held by a pause that ended between two ticks
                if key not in held and due + timedelta(days=GRACE) < today:
                    continue  # due after the pause's end, past grace by this tick
                due = o.shift(today)  # never a day already past
                cases["due the first working day from the tick after the pause"] += 1
            if key[0] == "ninety-day" and any(
                    a.kind in ("call", "meeting") and a.live(now)
                    and due - timedelta(days=WITHIN) <= o.local(a.at) <= due
                    for a in activities):
                cases["skip_if"] += 1
                continue  # skip_if: someone spoke with them in the 14 days before
            written.append((key[0], due))
    return written, None


# -- the simulated year ------------------------------------------------------------------------
START = datetime(2026, 12, 2, 20, 0, tzinfo=UTC)


class ActivityYear:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deals: int,
                 seed: int, weeks: int = WEEKS, pause_gap: int = 0) -> None:
        self.weeks, self.pause_gap = weeks, pause_gap
        self.box: Sandbox = start_sandbox(
            seed=seed, ca_dir=tmp_path / "ca",
            hubspot_options={"burst": 100_000, "search_per_second": 1000})
        # The year starts on a fixed day, whatever today is: which rules a seed's year covers
        # depends on the weekdays and holidays its dates fall on (a short year started on
        # 2026-12-03 had no post-mortem completed after its max_wait).
        self.offset = timedelta(0)
        self.frozen: datetime | None = None
        self.advance_to(START)
        self.box.seed(deals, seed, days_back=6, owners=4, inactive_owners=0)
        self.rng = random.Random(seed)
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
        for key, value in {**self.box.environment(), "WINBACK_DATABASE_URL": url}.items():
            monkeypatch.setenv(key, value)
        engine = make_engine(url, pool_size=1)
        migrate.upgrade(engine)
        engine.dispose()
        self.start = self.now()
        self.ticks: list[datetime] = []
        self.owners = {crm: self._owners(crm, n) for n, crm in enumerate(CRMS)}
        sf_fallback, hs_fallback = self.box.active_owners()
        self.path = tmp_path / "winback.yaml"
        self.path.write_text(
            CONFIG
            + salesforce_connection(NAMES["salesforce"], fallback=sf_fallback,
                                    activity_fields=True,
                                    extra=_overrides(self.owners["salesforce"]))
            + hubspot_connection(NAMES["hubspot"], fallback=hs_fallback, activity_fields=True,
                                 # the emulator allows more searches than HubSpot (5/s)
                                 extra="    search_per_second: 100\n"
                                 + _overrides(self.owners["hubspot"])))
        self.service: Service = build_service(load_config(self.path), self.path,
                                              clock=self.now)
        self.opt_out: dict[str, Script] = {}
        self.scripts = {crm: self._scripts(crm) for crm in CRMS}
        self.pm_written: dict[str, datetime] = {}

    # clock and ticks
    def now(self) -> datetime:
        return self.frozen or datetime.now(UTC) + self.offset

    def advance_to(self, moment: datetime) -> None:
        self.offset = moment - datetime.now(UTC)
        self.advance(0)

    def advance(self, days: int) -> None:
        self.offset += timedelta(days=days)
        for crm in CRMS:
            self.box.admin(crm, "POST", "clock", {"offset_seconds": self.offset.total_seconds()})

    def tick(self) -> None:
        self.frozen = datetime.now(UTC) + self.offset
        self.ticks.append(self.frozen)
        try:
            for name, ctx in self.service.contexts.items():
                result = run_tick(ctx, ignore_schedule=True)
                assert result.result == "ok", (name, result)
        finally:
            self.frozen = None

    def close(self) -> None:
        self.service.close()
        self.box.stop()

    # the reps
    def _owners(self, crm: str, n: int) -> dict[str, Owner]:
        if crm == "salesforce":
            rows = _rows(self.box.admin(crm, "GET", "records/User"))
            ids = [str(u["Id"]) for u in rows if u.get("IsActive")]
            deals = Counter(str(d["OwnerId"])
                            for d in _rows(self.box.admin(crm, "GET", "records/Opportunity")))
        else:
            rows = _rows(self.box.admin(crm, "GET", "objects/owners"))
            ids = [str(o["id"]) for o in rows if not o.get("archived")]
            deals = Counter(str(d["properties"].get("hubspot_owner_id"))
                            for d in _rows(self.box.admin(crm, "GET", "objects/deals")))
        owners = {i: Owner(*ZONES[(k + n) % len(ZONES)]) for k, i in enumerate(sorted(ids))}
        away_from = self.start.date() + timedelta(days=80)  # two weeks over the ninety-days
        busiest = max(sorted(ids), key=lambda i: deals[i])
        owners[busiest].away = (away_from, away_from + timedelta(days=13))
        return owners

    def _scripts(self, crm: str) -> dict[str, Script]:
        ctx = self.service.contexts[NAMES[crm]]
        deals = [d for page in ctx.connector.changed_deals(EPOCH) for d in page.deals
                 if d.is_lost and d.owner is not None]
        deals.sort(key=lambda d: d.id)
        self.rng.shuffle(deals)
        scripts: dict[str, Script] = {}
        quiet = {d.account_id for d in deals[:3]}  # no activity near paused/opted-out deals
        for n, deal in enumerate(deals):
            assert deal.owner is not None
            owner = self.owners[crm][deal.owner.id]
            closed = deal.closed_at
            day0 = owner.local(closed) if isinstance(closed, datetime) else closed
            assert isinstance(day0, date)
            s = scripts[deal.id] = Script(deal, owner, day0)
            pm = fixed_due(s, "post-mortem")
            hour = self.rng.choice((time(15), time(23, 30), time(3, 30)))
            if n == 0:  # opted out in the CRM once it has an open task due later (run())
                self.opt_out[crm] = s
                continue
            if n in (1, 2):  # paused over the ninety-day: within grace, then past it
                s.pause_set_at = self._moment(day0 + timedelta(days=55), time(16))
                s.pause = self._tick_date(owner, fixed_due(s, "ninety-day"),
                                          (1, 7) if n == 1 else (15, 21))
                s.completion_target = self._moment(pm, hour)
                continue
            mode = self.rng.choice(("early", "on time", "late", "after max_wait", "never"))
            days = {"early": -self.rng.randint(1, 3), "on time": 0,
                    "late": self.rng.randint(3, 15),
                    "after max_wait": self.rng.randint(24, 30)}.get(mode)
            if days is not None:
                s.completion_target = self._moment(pm + timedelta(days=days), hour)
            if deal.account_id in quiet:
                continue
            if self.rng.random() < 0.6:  # a call around the ninety-day
                at = self._moment(day0 + timedelta(days=self.rng.randint(70, 92)),
                                  self.rng.choice((time(14), time(23, 30))))
                s.planned.append(Logged("call", at, at))
            if self.rng.random() < 0.2:  # a call in the window, deleted again
                at = self._moment(day0 + timedelta(days=self.rng.randint(80, 88)), time(17))
                s.planned.append(Logged("call", at, at, deleted=at))
            if self.rng.random() < 0.3:  # a meeting: early on, or in the ninety-day window
                offset = self.rng.choice((self.rng.randint(20, 45), self.rng.randint(86, 89)))
                at = self._moment(day0 + timedelta(days=offset), time(18))
                s.planned.append(Logged("meeting", at, at))
        return scripts

    def _moment(self, day: date, at: time) -> datetime:
        return datetime.combine(day, at, tzinfo=UTC)

    def _tick_date(self, owner: Owner, due: date, window: tuple[int, int]) -> date:
        """A pause end `window` days after `due`: a tick's local date, or `pause_gap` days
        before one (the tasks due in the pause are late as of its end, not as of the tick
        that follows)."""
        for week in range(WEEKS):
            day = owner.local(self.start + timedelta(weeks=week)) - timedelta(self.pause_gap)
            if window[0] <= (day - due).days <= window[1]:
                return day
        raise AssertionError(f"no pause end {window} days after {due}")

    def act(self) -> None:
        """Everything the reps do up to now: log (and delete) calls and meetings, complete
        post-mortem tasks, pause and opt out deals."""
        now = self.now()
        for crm in CRMS:
            tasks = None
            for s in self.scripts[crm].values():
                for a in [a for a in s.planned if a.at <= now]:
                    s.planned.remove(a)
                    a.logged = now
                    self._log(crm, s, a)
                    if a.deleted is not None:
                        self._delete(crm, a)
                        a.deleted = self.now()
                    s.activities.append(a)
                if s.opt_out_at is not None and s.opt_out_logged is None and s.opt_out_at <= now:
                    self._set(crm, s.deal.id, opt_out=True)
                    s.opt_out_logged = now
                if s.pause_set_at is not None and s.pause_logged is None \
                        and s.pause_set_at <= now:
                    assert s.pause is not None
                    self._set(crm, s.deal.id, pause=s.pause)
                    s.pause_logged = now
                target = s.completion_target
                if target is not None and s.completed is None and target <= now:
                    tasks = tasks if tasks is not None else self._winback_tasks(crm)
                    pm = next((t for t in tasks if t["deal"] == s.deal.id
                               and t["step"] == "post-mortem"), None)
                    if pm is None:
                        continue  # not written yet: the rep completes it once it is there
                    at = max(target, self.pm_written[pm["key"]] + timedelta(minutes=5))
                    self.box.admin(crm, "POST", "activities/complete",
                                   {"id": pm["id"], "at": at.isoformat()})
                    s.completed = (at, now)

    def _log(self, crm: str, s: Script, a: Logged) -> None:
        """Log on the deal, or (some calls) on its account; Salesforce derives the account of
        an activity on a deal (Task/Event AccountId), HubSpot links only what it is given."""
        on_account = bool(a.kind == "call" and s.deal.account_id and self.rng.random() < 0.4)
        a.deal = None if on_account else s.deal.id
        a.account = s.deal.account_id if on_account or crm == "salesforce" else None
        body: dict[str, Any] = {"kind": a.kind, "at": a.at.isoformat()}
        if crm == "salesforce":
            body["what"] = s.deal.account_id if on_account else s.deal.id
        else:
            body["company" if on_account else "deal"] = (s.deal.account_id if on_account
                                                         else s.deal.id)
        a.crm_id = str(self.box.admin(crm, "POST", "activities", body)["id"])

    def linked(self, crm: str, s: Script) -> list[Logged]:
        """Every activity the reps logged on this deal or its account, in this CRM."""
        return [a for other in self.scripts[crm].values() for a in other.activities
                if a.deal == s.deal.id or (a.account is not None
                                           and a.account == s.deal.account_id)]

    def _delete(self, crm: str, a: Logged) -> None:
        if crm == "salesforce":
            kind = "Event" if a.kind == "meeting" else "Task"
            self.box.admin(crm, "DELETE", f"records/{kind}/{a.crm_id}")
        else:
            kind = "meetings" if a.kind == "meeting" else "calls"
            self.box.admin(crm, "DELETE", f"objects/{kind}/{a.crm_id}")

    def _set(self, crm: str, deal_id: str, *, opt_out: bool = False,
             pause: date | None = None) -> None:
        if crm == "salesforce":
            body: dict[str, Any] = ({"Winback_Opt_Out__c": True} if opt_out
                                    else {"Winback_Pause_Until__c": str(pause)})
            self.box.admin(crm, "PATCH", f"records/Opportunity/{deal_id}", body)
        else:
            props = ({"winback_opt_out": "true"} if opt_out
                     else {"winback_pause_until": str(pause)})
            self.box.admin(crm, "PATCH", f"objects/deals/{deal_id}", {"properties": props})

    def _winback_tasks(self, crm: str) -> list[dict[str, Any]]:
        """Winback's tasks in one CRM: key, id, deal, step, due date (owner's zone), open."""
        owners = self.owners[crm]
        out = []
        for t in self.box.tasks(crm):
            if crm == "salesforce":
                key, subject, deal = t.get("Winback_Key__c"), str(t.get("Subject")), t["WhatId"]
                due = date.fromisoformat(t["ActivityDate"])
                done = t.get("Status") == "Completed"
            else:
                p = t["properties"]
                key, subject = p.get("winback_key"), str(p.get("hs_task_subject"))
                deal = (t["associations"].get("deals") or [""])[0]
                stamp = datetime.fromisoformat(p["hs_timestamp"].replace("Z", "+00:00"))
                due = owners[str(p["hubspot_owner_id"])].local(stamp)
                done = p.get("hs_task_status") == "COMPLETED"
            if not key:
                continue  # a rep's own task or a logged call
            step = ("notice" if subject.startswith(NOTICE)
                    else PREFIXES.get(subject.split(" ", 1)[0], subject))
            out.append({"key": str(key), "id": str(t.get("Id") or t.get("id")),
                        "deal": str(deal), "step": step, "due": due, "done": done})
        return out

    def run(self) -> None:
        """A tick a week (the reps act before each); the day after the tick that gave an
        opt-out deal an open task due later, a rep ticks its opt-out box, and a tick reads it."""
        for week in range(self.weeks):
            self.advance(week * 7 - self.offset.days)
            self.act()
            self.tick()
            self._seen()
            for crm, s in self.opt_out.items():
                today = s.owner.local(self.now())
                if s.opt_out_at is None and any(
                        t["deal"] == s.deal.id and not t["done"]
                        and t["due"] > today + timedelta(days=1)
                        for t in self._winback_tasks(crm)):
                    self.advance(1)
                    s.opt_out_at = self.now()
                    self.act()
                    self.tick()
                    self._seen()

    def _seen(self) -> None:
        for crm in CRMS:
            for t in self._winback_tasks(crm):
                self.pm_written.setdefault(t["key"], self.ticks[-1])


def _overrides(owners: dict[str, Owner]) -> str:
    lines = ["    owners:\n"]
    for owner_id, o in owners.items():
        away = (f", away: [{{from: {o.away[0]}, to: {o.away[1]}}}]" if o.away else "")
        lines.append(f"      \"{owner_id}\": {{timezone: {o.zone}, country: {o.country}{away}}}\n")
    return "".join(lines)


def _rows(found: Any) -> list[dict[str, Any]]:
    if isinstance(found, dict):
        found = found.get("records", found.get("results", []))
    return list(found)


@pytest.fixture
def activity_year(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  request: pytest.FixtureRequest) -> Iterator[ActivityYear]:
    y = ActivityYear(tmp_path, monkeypatch, *request.param)
    yield y
    y.close()




@pytest.mark.parametrize("activity_year", [
    pytest.param((16, 11), id="short"),
    pytest.param((60, 12), id="long", marks=pytest.mark.slow),
], indirect=True)
def test_a_year_of_reps_gives_the_tasks_the_rules_say_exactly_once(
        activity_year: ActivityYear) -> None:
    """A year of weekly ticks with simulated reps: the winback tasks in each CRM are the
    oracle's (deal, step, due date), opted-out deals' future tasks are closed, no key was
    created twice, and the ledger's written tasks are the CRM's."""
    y = activity_year
    y.run()
    cases = check(y)
    # the year covered every rule it is meant to check (else a seed change made it vacuous)
    covered = ("opted out", "completed early", "completed late", "completed after max_wait",
               "max_wait reached", "skipped: due in the pause, past grace",
               "moved to the pause's end", "meeting notice", "skip_if", "after days away")
    assert [c for c in covered if not cases[c]] == [], cases


@pytest.mark.parametrize("activity_year", [pytest.param((6, 11, 16, 2), id="between-ticks")],
                         indirect=True)
def test_tasks_due_in_a_pause_are_late_as_of_its_end_between_ticks(
        activity_year: ActivityYear) -> None:
    """A pause that ends two days before a tick: a task due in it is judged late as of the
    pause's end (within grace: kept; past grace: skipped), whatever day the next tick comes,
    and a kept one is due the first working day from that tick (never a day already past)."""
    activity_year.run()
    cases = check(activity_year)
    assert cases["moved to the pause's end"] and cases["skipped: due in the pause, past grace"]
    assert cases["due the first working day from the tick after the pause"]


def check(y: ActivityYear) -> Counter[str]:
    """The CRM's winback tasks against the oracle, the write log and the ledger, per CRM;
    returns how often each rule applied."""
    problems: list[str] = []
    cases: Counter[str] = Counter()
    for crm in CRMS:
        tasks = y._winback_tasks(crm)
        got: dict[str, list[tuple[str, date]]] = {}
        for t in tasks:
            got.setdefault(t["deal"], []).append((t["step"], t["due"]))
        want: dict[str, list[tuple[str, date]]] = {}
        for deal_id, script in y.scripts[crm].items():
            written, stopped = expect(script, y.ticks, y.linked(crm, script), cases)
            if written:
                want[deal_id] = sorted(written)
            if stopped is not None:
                open_later = [t for t in tasks if t["deal"] == deal_id
                              and t["due"] > stopped and not t["done"]]
                if open_later:
                    problems.append(f"{crm}: opted-out deal {deal_id} kept open tasks "
                                    f"{open_later}")
        for deal_id in sorted(set(got) | set(want)):
            have, should = sorted(got.get(deal_id, [])), want.get(deal_id, [])
            if have != should:
                problems.append(f"{crm}: deal {deal_id} ({_story(y, crm, deal_id)}): CRM has "
                                f"{_fmt(have)}, the rules give {_fmt(should)}")
        writes = y.box.admin(crm, "GET", "writes")["keys"]
        twice = [k for k, n in writes.items() if n.get("created", 0) > 1]
        keys = Counter(t["key"] for t in tasks)
        twice += [k for k, n in keys.items() if n > 1]
        if twice:
            problems.append(f"{crm}: task keys created twice: {sorted(set(twice))}")
        with y.service.ledger.engine.connect() as conn:
            rows = conn.execute(select(task_table.c.key, task_table.c.due_date).where(
                task_table.c.connection == NAMES[crm], task_table.c.status == "written"))
            in_ledger = {str(k): d for k, d in rows}
        if in_ledger != {t["key"]: t["due"] for t in tasks}:
            problems.append(f"{crm}: the ledger's written tasks are not the CRM's")
    assert problems == [], "\n".join(problems)
    return cases


def _fmt(tasks: list[tuple[str, date]]) -> str:
    return ", ".join(f"{step} {due}" for step, due in tasks) or "nothing"


def _story(y: ActivityYear, crm: str, deal_id: str) -> str:
    """What happened to one deal, for a failure message."""
    s = y.scripts[crm].get(deal_id)
    if s is None:
        return "not a scripted deal"
    parts = [f"day 0 {s.day0}, {s.owner.zone}"]
    if s.completed:
        parts.append(f"post-mortem completed {s.completed[0]:%Y-%m-%d %H:%M}Z")
    parts += [f"{a.kind} {a.at:%Y-%m-%d %H:%M}Z" + (" deleted" if a.deleted else "")
              for a in y.linked(crm, s)]
    if s.pause:
        parts.append(f"paused until {s.pause}")
    if s.opt_out_logged:
        parts.append(f"opted out {s.opt_out_logged:%Y-%m-%d}")
    return "; ".join(parts)
