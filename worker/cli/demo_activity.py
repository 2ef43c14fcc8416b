"""The demo's second part (issue 13): reps work in the CRM and winback follows what they did.

On each CRM, through the sandbox's admin API: a rep completes a post-mortem call late (the
check-ins count from that day), ticks the opt-out box on a deal (its cadence stops), pauses a
deal for two weeks (nothing is written for it until then), and logs a call with a customer
just before winback judges the next insight email for them (that email is not written). Then
it prints what happened in each CRM and why, read back from the ledger and the CRM.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.console import Console
from ruamel.yaml import YAML
from sqlalchemy import select

from worker.ledger.records import EnrollmentStatus, TaskStatus
from worker.ledger.schema import enrollment, skip_decision
from worker.ledger.schema import task as task_table
from worker.settings.loader import default_config_dir

CRM_NAMES = {"salesforce": "Salesforce", "hubspot": "HubSpot"}
CONNECTIONS = {"salesforce": "demo-salesforce", "hubspot": "demo-hubspot"}
FIELDS = {"salesforce": ("Winback_Opt_Out__c", "Winback_Pause_Until__c"),
          "hubspot": ("winback_opt_out", "winback_pause_until")}
PAUSE_DAYS = 14
DEFAULT_ZONE = "America/New_York"  # the demo configuration's defaults.timezone
STOP_REASONS = {"opted_out": "reason: opted out in the CRM"}


SKIP_IF = {"activity": ["call", "meeting"], "within": "14d"}
SKIPPED_STEPS = ("insight",)  # the steps the demo gives SKIP_IF (each adds re-plans to a tick)


def activity_cadences() -> str:
    """The default playbook with two activity rules: on lost-to-competitor the check-ins
    count from the post-mortem's completion (max_wait 21d); on lost-to-no-decision an insight
    email is skipped when someone spoke with the customer in the 14 days before it."""
    yaml = YAML(typ="safe")
    playbook = yaml.load((default_config_dir() / "playbook.yaml").read_text())
    for cadence in playbook["cadences"]:
        for step in cadence["steps"]:
            if cadence["id"] == "lost-to-competitor" and step["id"] == "check-in":
                step.update({"after": "post-mortem", "max_wait": "21d"})
            elif step["id"] in SKIPPED_STEPS and cadence["id"] == "lost-to-no-decision":
                step["skip_if"] = dict(SKIP_IF)
    out = io.StringIO()
    yaml.default_flow_style = False
    yaml.dump({"cadences": playbook["cadences"]}, out)
    return out.getvalue()


class DemoLike(Protocol):
    console: Console
    box: Any  # sandbox.runner.Sandbox (the sandbox extra)

    def now(self) -> datetime: ...


@dataclass
class Moments:
    """The deals the reps act on in one CRM, and what they did to them."""

    crm: str
    late: dict[str, Any] = field(default_factory=dict)  # deal, due, done
    opted: dict[str, Any] = field(default_factory=dict)  # deal, open before
    paused: dict[str, Any] = field(default_factory=dict)  # deal, until, tasks due before it
    called: dict[str, Any] = field(default_factory=dict)  # deal, task key, create_after, at


class Reps:
    """Simulated reps on both CRMs; `act` at day 22, `before_tick` until the call is logged."""

    def __init__(self, demo: DemoLike, engine: Any) -> None:
        self.demo, self.engine = demo, engine
        self.moments = {crm: Moments(crm) for crm in CRM_NAMES}

    def say(self, text: str) -> None:
        self.demo.console.print(f"day {self.day():>2}  {text}", soft_wrap=True)

    def day(self) -> int:
        return int(getattr(self.demo, "offset", timedelta(0)).days)

    # -- the ledger, read only --------------------------------------------------------------
    def _tasks(self, crm: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(task_table).where(
                task_table.c.connection == CONNECTIONS[crm])))

    def _enrollments(self, crm: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(enrollment).where(
                enrollment.c.connection == CONNECTIONS[crm]))
            return {str(r.deal_id): r for r in rows}

    def name(self, crm: str, deal_id: str) -> str:
        row = self._enrollments(crm).get(deal_id)
        deal = (row.deal_json if row is not None else None) or {}
        return str(deal.get("name") or deal_id)

    # -- what the reps do --------------------------------------------------------------------
    def _state(self, crm: str) -> tuple[dict[str, Any], set[str], dict[str, list[Any]]]:
        enrolled = self._enrollments(crm)
        active = {d for d, r in enrolled.items() if r.status == EnrollmentStatus.ACTIVE}
        by_deal: dict[str, list[Any]] = {}
        for t in self._tasks(crm):
            by_deal.setdefault(str(t.deal_id), []).append(t)
        return enrolled, active, by_deal

    def choose_calls(self) -> None:
        """In each CRM, the first touch skip_if will judge: a rep calls that customer just
        before (`before_tick`)."""
        for crm, m in self.moments.items():
            _, active, by_deal = self._state(crm)
            judged = sorted((t for d in active for t in by_deal.get(d, [])
                             if t.step in SKIPPED_STEPS and t.status == TaskStatus.PLANNED),
                            key=lambda t: (_aware(t.create_after), t.key))
            touch = judged[0]
            m.called = {"deal": str(touch.deal_id), "key": touch.key, "due": touch.due_date,
                        "step": touch.step, "create_after": _aware(touch.create_after)}

    def act(self) -> None:
        """A late post-mortem, an opt-out and a pause in each CRM, at today's clock."""
        for crm in CRM_NAMES:
            self._act(crm, self.moments[crm])

    def _act(self, crm: str, m: Moments) -> None:
        now = self.demo.now()
        enrolled, active, by_deal = self._state(crm)
        active -= {m.called["deal"]}
        competitor = sorted(d for d in active if enrolled[d].cadence == "lost-to-competitor")
        late = next(d for d in competitor if any(
            t.step == "post-mortem" and t.status == TaskStatus.WRITTEN and t.crm_id
            and t.due_date < now.date() for t in by_deal.get(d, [])))
        pm = next(t for t in by_deal[late] if t.step == "post-mortem")
        self.demo.box.admin(crm, "POST", "activities/complete", {"id": pm.crm_id})
        zone = owner_zone(enrolled[late].owner_input)
        done = now.astimezone(ZoneInfo(zone)).date()  # the owner's day, as the rules count
        m.late = {"deal": late, "due": pm.due_date, "done": done, "zone": zone}
        self.say(f"a rep completes the post-mortem call of {self.name(crm, late)} in "
                 f"{CRM_NAMES[crm]}, {(done - pm.due_date).days} days after it was due "
                 f"({pm.due_date})")
        until = now.date() + timedelta(days=PAUSE_DAYS)
        pausable = sorted(d for d in active - {late} if any(
            t.status == TaskStatus.PLANNED and t.due_date < until for t in by_deal.get(d, [])))
        if pausable:
            paused = pausable[0]
        else:  # nothing falls due in the next PAUSE_DAYS: pause until past the nearest due task
            nearest = {d: min(t.due_date for t in by_deal[d] if t.status == TaskStatus.PLANNED)
                       for d in active - {late}
                       if any(t.status == TaskStatus.PLANNED for t in by_deal.get(d, []))}
            paused = (min(nearest, key=lambda d: (nearest[d], d)) if nearest
                      else sorted(active - {late})[0])
            if nearest:
                until = max(until, nearest[paused] + timedelta(days=3))
        rest = sorted(active - {late, paused})
        self._set(crm, paused, FIELDS[crm][1], until.isoformat())
        m.paused = {"deal": paused, "until": until, "start": now,
                    "due": {t.key: (t.step, t.due_date) for t in by_deal[paused]
                            if t.status == TaskStatus.PLANNED and t.due_date < until}}
        self.say(f"a rep sets \"paused until\" {until} ({FIELDS[crm][1]}) on "
                 f"{self.name(crm, paused)} in {CRM_NAMES[crm]}")
        opted = next((d for d in rest
                      if any(t.status == TaskStatus.WRITTEN and t.due_date > now.date()
                             for t in by_deal.get(d, []))), rest[0])
        self._set(crm, opted, FIELDS[crm][0], True)
        m.opted = {"deal": opted, "at": now,
                   "open": [str(t.crm_id) for t in by_deal[opted]
                            if t.status == TaskStatus.WRITTEN and t.crm_id
                            and t.due_date > now.date()]}
        self.say(f"a rep ticks the opt-out box ({FIELDS[crm][0]}) on {self.name(crm, opted)} "
                 f"in {CRM_NAMES[crm]}")

    def _set(self, crm: str, deal_id: str, name: str, value: Any) -> None:
        if crm == "salesforce":
            self.demo.box.admin(crm, "PATCH", f"records/Opportunity/{deal_id}", {name: value})
        else:
            text = "true" if value is True else str(value)
            self.demo.box.admin(crm, "PATCH", f"objects/deals/{deal_id}",
                                {"properties": {name: text}})

    def before_tick(self, at: datetime) -> None:
        """Log the call once the next tick judges the chosen touch (its create date)."""
        for crm, m in self.moments.items():
            if m.called and "at" not in m.called and at >= m.called["create_after"]:
                noon = datetime.combine(m.called["due"], datetime.min.time(), UTC)
                moment = min(at - timedelta(days=1), noon + timedelta(hours=12))
                body: dict[str, Any] = {"kind": "call", "at": moment.isoformat()}
                body["what" if crm == "salesforce" else "deal"] = m.called["deal"]
                found = self.demo.box.admin(crm, "POST", "activities", body)
                m.called.update({"at": moment, "id": str(found["id"])})
                self.say(f"a rep logs yesterday's call with {self.name(crm, m.called['deal'])} "
                         f"in {CRM_NAMES[crm]}")

    def done(self) -> bool:
        return all("at" in m.called for m in self.moments.values())

    # -- what winback made of it -------------------------------------------------------------
    def report(self) -> None:
        c = self.demo.console
        c.print("\n[bold]What the reps did in the CRM, and what winback made of it[/bold]")
        for title, show in (("A post-mortem done late", self._late),
                            ("A call logged before a touch", self._call),
                            ("A deal paused", self._pause),
                            ("A deal opted out", self._opt_out)):
            c.print(f"\n{title}:")
            for crm, label in CRM_NAMES.items():
                c.print(f"  {label}: {show(crm, self.moments[crm])}", soft_wrap=True)

    def _late(self, crm: str, m: Moments) -> str:
        deal = m.late["deal"]
        row = self._enrollments(crm)[deal]
        checks = sorted((t for t in self._tasks(crm) if str(t.deal_id) == deal
                         and t.step == "check-in" and t.status != TaskStatus.CANCELLED),
                        key=lambda t: t.occurrence)
        dates = ", ".join(str(t.due_date) for t in checks) or "none planned"
        fixed = ", ".join(str(row.day0 + timedelta(days=n)) for n in (28, 56, 84))
        return (f"{self.name(crm, deal)}: the post-mortem call was due {m.late['due']} and "
                f"completed on {m.late['done']} ({m.late['zone']}). Its check-ins count from "
                f"that day (after: post-mortem): due {dates}; from the close ({row.day0}) "
                f"they would have been due around {fixed}.")

    def _call(self, crm: str, m: Moments) -> str:
        name = self.name(crm, m.called["deal"])
        if "at" not in m.called:
            return f"{name}: no call was logged (the demo ended first)."
        with self.engine.connect() as conn:
            skip = conn.execute(select(skip_decision).where(
                skip_decision.c.key == m.called["key"])).first()
        logged = f"a rep logged a call on {m.called['at']:%Y-%m-%d}"
        step = m.called["step"]
        if skip is None:
            return f"{name}: {logged}; the {step} due {m.called['due']} was written all the same."
        return (f"{name}: {logged} ({skip.activity_kind} {skip.activity_id}); the {step} due "
                f"{skip.due_date or m.called['due']} was not written: someone spoke with them "
                "in the 14 days before it (skip_if: call or meeting within 14d).")

    def _pause(self, crm: str, m: Moments) -> str:
        deal, until = m.paused["deal"], m.paused["until"]
        tasks = {t.key: t for t in self._tasks(crm) if str(t.deal_id) == deal}
        during = [t for t in tasks.values() if t.written_at is not None
                  and m.paused["start"] <= _aware(t.written_at)
                  and _aware(t.written_at).date() < until]
        said = [f"{self.name(crm, deal)}: paused until {until}; "
                + (f"{len(during)} task(s) were written during the pause" if during
                   else "nothing was written for it during the pause")]
        for key, (step, due) in sorted(m.paused["due"].items(), key=lambda i: i[1][1]):
            t = tasks.get(key)
            if t is None or t.status == TaskStatus.SKIPPED:
                said.append(f"the {step} due {due} fell in the pause and was skipped (more "
                            "than the 7-day grace late by its end)")
            elif t.due_date != due:
                said.append(f"the {step} due {due} fell in the pause: now due {t.due_date}, "
                            "the first working day from its end")
            else:
                said.append(f"the {step} stays due {due}")
        return "; ".join(said) + "."

    def _opt_out(self, crm: str, m: Moments) -> str:
        deal = m.opted["deal"]
        row = self._enrollments(crm)[deal]
        mine = [t for t in self._tasks(crm) if str(t.deal_id) == deal]
        later = [t for t in mine if t.written_at is not None
                 and _aware(t.written_at) > m.opted["at"]]
        done = {_id(crm, t) for t in self.demo.box.tasks(crm) if _done(crm, t)}
        closed = sum(1 for i in m.opted["open"] if i in done)
        reason = STOP_REASONS.get(str(row.stop_reason), str(row.stop_reason))
        state = (f"its cadence stopped ({reason})" if row.status == EnrollmentStatus.STOPPED
                 else f"its cadence is still {row.status}")
        return (f"{self.name(crm, deal)}: opted out in the CRM; {state}; {closed} of its "
                f"{len(m.opted['open'])} open task(s) due later were marked completed in the "
                f"CRM (as on a reopen); {len(later)} task(s) written for it since.")


def owner_zone(owner_input: Any) -> str:
    """The owner's time zone as the ledger recorded it for the plan, else the demo's
    defaults.timezone (HubSpot owners carry none)."""
    try:
        zone = json.loads(owner_input)[2] if owner_input else None
        ZoneInfo(str(zone))
    except (ValueError, TypeError, IndexError, KeyError, ZoneInfoNotFoundError):
        zone = None
    return str(zone or DEFAULT_ZONE)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _id(crm: str, task: dict[str, Any]) -> str:
    return str(task.get("Id") if crm == "salesforce" else task.get("id"))


def _done(crm: str, task: dict[str, Any]) -> bool:
    if crm == "salesforce":
        return task.get("Status") == "Completed"
    return (task.get("properties") or {}).get("hs_task_status") == "COMPLETED"

