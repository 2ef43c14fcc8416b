"""What the CRMs must hold, computed without the product's planner.

The reliability configurations use one cadence of fixed day offsets (`STEPS`), one time zone
for every owner (`ZONE`: the Salesforce users are set to it, HubSpot owners carry none), Monday
to Friday working days with the US public holidays taken from the `holidays` package, and no
reborn handling. For that world the plan is a few lines of date arithmetic, written out here
from the documented rules (docs/configuration.md), so a planner bug cannot hide on both sides
of the check. Nothing here imports `worker.cadence`.

- day 0 is the close date in the owner's zone; a step `at: Nd` falls on day 0 + N;
- a date on a weekend or holiday moves to the next working day; a date already before the
  owner's today moves to the first working day on or after today (within `grace`, else it is
  skipped);
- the task may be written from the owner's midnight of max(due - lead_time, today);
- the reminder (HubSpot `hs_timestamp`) is the due date at 09:00 in the owner's zone;
- an inactive or missing owner gives the connection's fallback owner;
- the key is blake2b-128 of connection, deal, cadence, step, occurrence, contact.

`compare` checks the CRM both ways, per key: missing, extra, and wrong due date / owner /
subject.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from hashlib import blake2b
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from sandbox.runner import Sandbox

ZONE = "America/New_York"
LEAD = timedelta(days=7)  # CONFIG_HEAD's lead_time and grace
GRACE = timedelta(days=7)
REMINDER = time(9, 0)
CADENCE = "fixed"
# (step id, days after day 0): the last is never due inside a test, so a worker that ignores
# the create date writes an extra task.
STEPS = (("d0", 0), ("d4", 4), ("d9", 9), ("d40", 40))
SUBJECT = "{step} call {name}"
SF_SUBJECT_MAX = 255


def rules_yaml() -> str:
    """The cadence and stop policy every reliability configuration uses (top-level YAML)."""
    lines = ["cadences:", f"  - id: {CADENCE}", "    steps:"]
    for step, days in STEPS:
        subject = SUBJECT.format(step=step, name="{{ deal.name }}")
        lines.append(f'      - {{id: {step}, at: {days}d, subject: "{subject}"}}')
    lines.append("stop: {on_new_deal_for_account: false, notify_owner: false}")
    return "\n".join(lines) + "\n"


def uniform_owners(box: Sandbox) -> None:
    """Put every Salesforce user in ZONE with US holidays (HubSpot owners have no zone, so
    they get the configuration's default, which is ZONE)."""
    for user in _records(box, "User"):
        if user.get("TimeZoneSidKey") != ZONE or user.get("CountryCode") not in (None, "US"):
            box.admin("salesforce", "PATCH", f"records/User/{user['Id']}",
                      {"TimeZoneSidKey": ZONE, "CountryCode": "US"})


@dataclass(frozen=True)
class Expected:
    key: str
    deal_id: str
    step: str
    due: date
    owner: str
    subject: str
    create_after: datetime  # UTC
    remind_at: datetime  # UTC


@dataclass(frozen=True)
class Connection:
    name: str
    kind: str  # salesforce | hubspot
    fallback: str | None


def task_key(connection: str, deal_id: str, cadence: str, step: str, occurrence: int,
             contact_id: str | None) -> str:
    text = "\x1f".join((connection, deal_id, cadence, step, str(occurrence), contact_id or ""))
    return blake2b(text.encode(), digest_size=16).hexdigest()


@cache
def _us_holidays() -> Any:
    return holidays.country_holidays("US")


def working(day: date) -> bool:
    return day.weekday() < 5 and day not in _us_holidays()


def next_working(day: date) -> date:
    while not working(day):
        day += timedelta(days=1)
    return day


def plan_deal(connection: Connection, deal_id: str, name: str, day0: date, owner: str,
              now: datetime) -> list[Expected]:
    """Every task of one lost deal, whether or not it is due to be written yet."""
    tz = ZoneInfo(ZONE)
    today = now.astimezone(tz).date()
    out = []
    for step, days in STEPS:
        due = next_working(day0 + timedelta(days=days))
        if due < today:
            if due + GRACE < today:
                continue
            due = next_working(today)
        create_on = max(due - LEAD, today)
        out.append(Expected(
            key=task_key(connection.name, deal_id, CADENCE, step, 0, None), deal_id=deal_id,
            step=step, due=due, owner=owner,
            subject=" ".join(SUBJECT.format(step=step, name=name).split()),
            create_after=datetime.combine(create_on, time(0), tzinfo=tz).astimezone(UTC),
            remind_at=datetime.combine(due, REMINDER, tzinfo=tz).astimezone(UTC)))
    return out


def _records(box: Sandbox, sobject: str) -> list[dict[str, Any]]:
    found = box.admin("salesforce", "GET", f"records/{sobject}?include_deleted=false")
    return list(found.get("records", found) if isinstance(found, dict) else found)


def _hubspot(box: Sandbox, kind: str) -> list[dict[str, Any]]:
    found = box.admin("hubspot", "GET", f"objects/{kind}")
    return list(found.get("results", found) if isinstance(found, dict) else found)


def salesforce_plan(box: Sandbox, connection: Connection, now: datetime) -> list[Expected]:
    active = {u["Id"] for u in _records(box, "User") if u.get("IsActive")}
    out: list[Expected] = []
    for opp in _records(box, "Opportunity"):
        if not opp.get("IsClosed") or opp.get("IsWon") or not opp.get("CloseDate"):
            continue
        owner = opp.get("OwnerId") if opp.get("OwnerId") in active else connection.fallback
        if not owner:
            continue
        out += plan_deal(connection, str(opp["Id"]), str(opp.get("Name") or ""),
                         date.fromisoformat(str(opp["CloseDate"])), str(owner), now)
    return out


def hubspot_plan(box: Sandbox, connection: Connection, now: datetime) -> list[Expected]:
    active = {str(o["id"]) for o in _hubspot(box, "owners") if not o.get("archived")}
    out: list[Expected] = []
    for deal in _hubspot(box, "deals"):
        props = deal.get("properties") or {}
        if deal.get("archived") or props.get("hs_is_closed_lost") != "true" \
                or not props.get("closedate"):
            continue
        closed = datetime.fromisoformat(str(props["closedate"]).replace("Z", "+00:00"))
        owner = props.get("hubspot_owner_id")
        owner = owner if owner in active else connection.fallback
        if not owner:
            continue
        out += plan_deal(connection, str(deal["id"]), str(props.get("dealname") or ""),
                         closed.astimezone(ZoneInfo(ZONE)).date(), str(owner), now)
    return out


def plan(box: Sandbox, connections: Iterable[Connection], now: datetime
         ) -> dict[str, dict[str, Expected]]:
    """{crm: {key: Expected}} for every connection, read from the emulators' admin API."""
    out: dict[str, dict[str, Expected]] = {"salesforce": {}, "hubspot": {}}
    for connection in connections:
        planner = salesforce_plan if connection.kind == "salesforce" else hubspot_plan
        out[connection.kind].update({e.key: e for e in planner(box, connection, now)})
    return out


@dataclass(frozen=True)
class Actual:
    key: str | None
    due: date | None
    owner: str | None
    subject: str


def salesforce_actual(task: dict[str, Any], key_field: str = "Winback_Key__c") -> Actual:
    subject = str(task.get("Subject") or "")
    key = task.get(key_field)
    start = subject.rfind("[wb:")
    if start >= 0:  # marker mode: the key rides at the end of the Subject
        key = key or subject[start + 4:subject.find("]", start)]
        subject = subject[:start].rstrip()
    due = task.get("ActivityDate")
    return Actual(key, date.fromisoformat(due) if due else None, task.get("OwnerId"), subject)


def hubspot_actual(task: dict[str, Any], key_property: str = "winback_key") -> Actual:
    props = task.get("properties") or {}
    stamp = props.get("hs_timestamp")
    due = None
    if stamp:
        moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        due = moment.astimezone(ZoneInfo(ZONE)).date()
    return Actual(props.get(key_property), due, props.get("hubspot_owner_id"),
                  str(props.get("hs_task_subject") or ""))


@dataclass
class Comparison:
    """Per CRM: keys due but absent, keys present but not (yet) planned, keys whose due date,
    owner or subject differ ({key: [(what, expected, actual), ...]})."""

    missing: dict[str, list[str]] = field(default_factory=dict)
    extra: dict[str, list[str]] = field(default_factory=dict)
    wrong: dict[str, dict[str, list[tuple[str, Any, Any]]]] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        return {crm: {"missing": len(self.missing.get(crm, [])),
                      "extra": len(self.extra.get(crm, [])),
                      "wrong": len(self.wrong.get(crm, {}))}
                for crm in ("salesforce", "hubspot")}

    def clean(self) -> bool:
        return all(n == 0 for c in self.counts().values() for n in c.values())

    def describe(self, examples: int = 3) -> str:
        parts = []
        for crm in ("salesforce", "hubspot"):
            if self.missing.get(crm):
                parts.append(f"{crm}: {len(self.missing[crm])} missing, e.g. "
                             f"{self.missing[crm][:examples]}")
            if self.extra.get(crm):
                parts.append(f"{crm}: {len(self.extra[crm])} extra, e.g. "
                             f"{self.extra[crm][:examples]}")
            if self.wrong.get(crm):
                sample = list(self.wrong[crm].items())[:examples]
                parts.append(f"{crm}: {len(self.wrong[crm])} wrong, e.g. {sample}")
        return "; ".join(parts) or "the CRMs hold exactly the planned tasks"


def subject_matches(expected: str, actual: str, crm: str) -> bool:
    """Salesforce keeps 255 characters of a Subject (less the marker in marker mode)."""
    if crm == "salesforce" and len(expected) > SF_SUBJECT_MAX - 40:
        return len(actual) >= SF_SUBJECT_MAX - 60 and expected.startswith(actual)
    return actual == expected


def compare(expected: dict[str, dict[str, Expected]], actual: dict[str, list[Actual]],
            now: datetime, settle: timedelta,
            earlier: dict[str, dict[str, Expected]] | None = None) -> Comparison:
    """Missing: planned, writable since `now - settle` (a task that became writable at some
    owner's midnight after the worker's last tick is not counted), not in the CRM. Extra: in
    the CRM, not planned or not writable by `now`. Wrong: both, and a field differs.

    `earlier` is the plan as of `now - settle`: when the owner's midnight fell in between, a
    late task's due date ("the first working day on or after today") may follow either day."""
    result = Comparison()
    for crm, planned in expected.items():
        before = (earlier or {}).get(crm, {})
        held = {a.key: a for a in actual.get(crm, []) if a.key}
        result.missing[crm] = sorted(k for k, e in planned.items()
                                     if e.create_after <= now - settle and k not in held)
        result.extra[crm] = sorted(
            k for k in held if k not in planned
            or min(planned[k].create_after, before[k].create_after if k in before
                   else planned[k].create_after) > now)
        result.extra[crm] += ["(a task without a key)"] * sum(
            1 for a in actual.get(crm, []) if not a.key)
        wrong: dict[str, list[tuple[str, Any, Any]]] = {}
        for key, task in held.items():
            e = planned.get(key)
            if e is None:
                continue
            dues = {e.due, before[key].due} if key in before else {e.due}
            diffs = [(what, want, got) for what, want, got in (
                ("due", e.due, task.due), ("owner", e.owner, task.owner))
                if (got not in dues if what == "due" else want != got)]
            if not subject_matches(e.subject, task.subject, crm):
                diffs.append(("subject", e.subject[:80], task.subject[:80]))
            if diffs:
                wrong[key] = diffs
        result.wrong[crm] = wrong
    return result
