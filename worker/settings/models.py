"""The configuration file as typed models: what ops may write, its defaults, and its checks.

Checks that need only one value live here (durations, zones, countries, regexes); checks
that compare values or need file positions (duplicate ids, template fields) live in
`worker.settings.checks`. `winback schema` and docs/configuration.md are generated from
these models, so the field descriptions are the user documentation.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from connectors.models import ActivityKind, Channel, Priority
from connectors.settings import (
    Ident,
    IntervalField,
    Model,
)
from worker.settings.connections import Connection, HubSpotConnection, SalesforceConnection
from worker.settings.durations import (
    Duration,
    DurationField,
    NonNegativeDuration,
    PositiveDuration,
)
from worker.settings.experiments import OVERRIDE_KINDS, Experiment
from worker.settings.values import (
    ClockTime,
    CountryCode,
    DailyCap,
    Regex,
    TimeZoneName,
    Weekday,
    supported_countries,
)

SECRET_KEYS = frozenset({"password", "security_token", "client_secret", "access_token",
                         "refresh_token", "private_key"})
DEAL_FIELDS = ("loss_reason", "competitor", "amount", "stage", "pipeline", "currency", "name",
               "account_name", "owner_country")


class CalendarSettings(Model):
    """Working days: weekends and the public holidays of a country (from the `holidays` package)."""

    country: CountryCode = Field("US", description="ISO 3166 alpha-2 code of the public holidays")
    subdivision: str | None = Field(None, description="State/province code, e.g. CA or ENG")
    weekend: tuple[Weekday, ...] = Field(("sat", "sun"), description="Days nobody works")
    extra_holidays: tuple[date, ...] = Field((), description="Company days off (YYYY-MM-DD)")

    @model_validator(mode="after")
    def _check(self) -> CalendarSettings:
        subdivisions = supported_countries().get(self.country, ())
        if self.subdivision is not None and self.subdivision.upper() not in subdivisions:
            raise ValueError(
                f"unknown subdivision {self.subdivision!r} of {self.country} "
                f"(expected one of: {', '.join(subdivisions) or 'none for this country'})"
            )
        if len(set(self.weekend)) == 7:
            raise ValueError("weekend covers all seven days: no day would be a working day")
        return self


class Defaults(Model):
    """Settings that apply to every connection and owner unless something more specific says."""

    timezone: TimeZoneName = Field("UTC", description="Owner time zone when the CRM has none")
    calendar: CalendarSettings = Field(default_factory=lambda: CalendarSettings(),
                                       description="Weekends and public holidays")
    reminder_time: ClockTime = Field("09:00", validate_default=True,
                                description="Reminder hour, owner's local time (HH:MM)")
    lead_time: NonNegativeDuration = Field(
        "7d", validate_default=True, description="Write each task this long before it is due")
    grace: NonNegativeDuration = Field(
        "7d", validate_default=True,
        description="A step past due by at most this much is still created, due the next "
                    "working day; older ones are skipped")
    horizon: PositiveDuration = Field(
        "3y", validate_default=True, description="No task later than this after the close date")
    max_tasks_per_owner_per_day: DailyCap | None = Field(
        None, description="At most this many winback tasks due per owner per day (none: no "
                          "cap); the overflow moves to the owner's next working day with room, "
                          "within the step's grace and the horizon, else it is skipped")


class Matcher(Model):
    """One test on one deal field; all tests given must pass."""

    matches: Regex | None = Field(None, description="Regular expression, searched anywhere")
    in_: tuple[str | float, ...] | None = Field(None, alias="in",
                                                description="One of these values")
    not_in: tuple[str | float, ...] | None = Field(None, description="None of these values")
    eq: str | float | None = Field(None, description="Equal to")
    ne: str | float | None = Field(None, description="Not equal to")
    gte: float | None = Field(None, description="At least")
    gt: float | None = Field(None, description="More than")
    lte: float | None = Field(None, description="At most")
    lt: float | None = Field(None, description="Less than")
    exists: bool | None = Field(None, description="Has a value (true) or none (false)")

    @model_validator(mode="after")
    def _one(self) -> Matcher:
        if not self.model_fields_set:
            raise ValueError("empty test (expected one of: matches, in, not_in, eq, ne, gte, gt, "
                             "lte, lt, exists)")
        return self


class SkipIf(Model):
    """Skip a task when someone already touched the deal recently (decided on its create date)."""

    activity: Annotated[tuple[ActivityKind, ...], Field(min_length=1)] = Field(
        description="Activity kinds that count: call, meeting, email, note, task")
    within: PositiveDuration = Field(
        description="Logged this long before the task's due date, or less (the day D days "
                    "before counts)")


class Step(Model):
    """One follow-up touch: `at` once, `every` repeatedly, or `spread` N times over a window."""

    id: Ident = Field(description="Unique in the cadence; part of the task keys")
    at: DurationField | None = Field(None, description="One task this long after the anchor")
    every: PositiveDuration | None = Field(
        None, description="Repeat at this interval from `from` until `until`")
    spread: Annotated[int, Field(ge=1, le=100)] | None = Field(
        None, description="N tasks spread evenly between `from` and `until`")
    from_: DurationField | None = Field(None, alias="from",
                                        description="Start of an every/spread window")
    until: DurationField | None = Field(None, description="End of the window (inclusive)")
    anchor: Literal["close_date", "contract_end"] = Field(
        "close_date", description="What `at`/`from`/`until` count from")
    channel: Channel = Field(Channel.CALL, description="Task type in the CRM")
    priority: Priority = Field(Priority.NORMAL, description="Task priority")
    per: Literal["deal", "stakeholder"] = Field(
        "deal", description="One task per deal, or one per contact (opted-out skipped)")
    subject: str | None = Field(None, description="Jinja2 template; default names the step")
    body: str = Field("", description="Jinja2 template: the talking points")
    after: Ident | None = Field(
        None, description="An `at` step of this cadence: day 0 of this step is the day that "
                          "step's task was completed (its tasks wait until then)")
    max_wait: NonNegativeDuration | None = Field(
        None, description="With `after`: not completed this long after it was due, count "
                          "from that day instead")
    skip_if: SkipIf | None = Field(
        None, description="Do not write the task if such an activity was logged recently")

    @model_validator(mode="after")
    def _kind(self) -> Step:
        kinds = [k for k in ("at", "every", "spread") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of at, every or spread"
                             + (f" (got {', '.join(kinds)})" if kinds else ""))
        if self.at is not None and (self.from_ is not None or self.until is not None):
            raise ValueError("from/until go with every or spread, not with at")
        if self.spread is not None and (self.from_ is None or self.until is None):
            raise ValueError("spread needs both from and until")
        if self.every is not None and self.until is None:
            raise ValueError("every needs until (the last day it may fall on)")
        if self.max_wait is not None and self.after is None:
            raise ValueError("max_wait goes with after (it bounds the wait for that step): "
                             "add after: STEP or remove max_wait")
        start = self.from_ or Duration()
        if self.until is not None and self.until.approx_days < start.approx_days:
            raise ValueError(f"until ({self.until}) is before from ({start})")
        return self

    @property
    def start(self) -> Duration:
        return self.from_ or Duration()


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        found = errors()
        if found:
            return str(found[0].get("msg", exc)).removeprefix("Value error, ")
    return str(exc)


class Cadence(Model):
    """A track of steps for the deals its `when` matches (first matching cadence wins)."""

    id: Ident = Field(description="Unique; part of the task keys")
    description: str | None = Field(None, description="For people reading the file")
    when: dict[str, Matcher] = Field(default_factory=dict,
                                     description="Deal field -> test; empty matches every deal")
    steps: list[Step] = Field(default_factory=list, description="The touches")
    horizon: PositiveDuration | None = Field(
        None, description="Overrides defaults.horizon for this cadence")
    experiment: Experiment | None = Field(
        None, description="Arms of an experiment (off by default); a holdout withholds "
                          "follow-up from real prospects")

    @model_validator(mode="after")
    def _arms(self) -> Cadence:
        if self.experiment is None:
            return self
        for name in self.experiment.variants:
            try:
                self.arm_steps(name, strict=True)
            except ValueError as exc:
                raise ValueError(f"experiment variant {name!r}: {exc}") from None
        return self

    def arm_steps(self, arm: str | None, *, strict: bool = False) -> list[Step]:
        """The steps of an arm: a variant's with its overrides, the base's and the holdout's
        as written. `strict`: only overrides whose fields fit the step's kind (the others are
        errors of worker.settings.checks, with their line)."""
        variant = self.experiment.variants.get(arm or "") if self.experiment else None
        if variant is None:
            return self.steps
        out: list[Step] = []
        for step in self.steps:
            override = variant.steps.get(step.id)
            if override is None:
                out.append(step)
                continue
            kind = "at" if step.at is not None else "every" if step.every is not None \
                else "spread"
            fields = override.model_dump(by_alias=True, exclude_unset=True)
            if strict and any(kind not in OVERRIDE_KINDS[f] for f in fields):
                out.append(step)
                continue
            try:
                out.append(override.apply(step))
            except ValueError as exc:
                raise ValueError(f"step {step.id!r} with its overrides: "
                                 + _first_error(exc)) from None
        return out


class StopPolicy(Model):
    """What happens when a lost deal comes back to life."""

    on_reopen: Literal["close_open_tasks", "keep_open_tasks"] = Field(
        "close_open_tasks", description="Mark the cadence's open future tasks completed?")
    on_new_deal_for_account: bool = Field(
        True, description="A new deal on the account stops the cadence (reborn)")
    notify_owner: bool = Field(True, description="Write one 'Opportunity reborn' task")
    notify_subject: str = Field("Opportunity reborn: {{ deal.name }}",
                                description="Template of that task's subject")
    on_meeting: Literal["notify", "stop", "ignore"] = Field(
        "notify", description="A meeting with the account after the loss: one task for the "
                              "owner (notify), stop the cadence as reborn (stop), or nothing")


class ServiceSettings(Model):
    """How the long-running service runs (`winback run`)."""

    tick: IntervalField = Field("10s", validate_default=True,
                                description="How often each replica looks for due work")
    lease_ttl: IntervalField = Field("2m", validate_default=True,
                                     description="A connection's lease lifetime")
    http_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        9108, description="/healthz, /readyz, /metrics (0 = off)")
    http_host: str = Field("0.0.0.0", description="Interface of the HTTP port")  # noqa: S104
    workers: Annotated[int, Field(ge=1, le=64)] = Field(4, description="Connections at once")
    takeover_lock: bool = Field(
        True, description="PostgreSQL: pair each lease with a session advisory lock, so a dead "
        "replica's connections are taken over in seconds (false behind PgBouncer in "
        "transaction pooling mode)")
    setup_cache: IntervalField = Field(
        "6h", validate_default=True,
        description="How long a connection's setup results are kept in the ledger (0 = off)")


class Config(Model):
    """The whole configuration file."""

    version: Literal[1] = Field(description="The file format version; always 1")
    defaults: Defaults = Field(default_factory=lambda: Defaults(),
                               description="Time zone, calendar and timing defaults")
    connections: list[Connection] = Field(default_factory=list,
                                          description="The CRM accounts to follow up in")
    cadences: list[Cadence] = Field(default_factory=list,
                                    description="The rules; left out: the default playbook")
    stop: StopPolicy = Field(default_factory=lambda: StopPolicy(),
                             description="What happens when a lost deal is reborn")
    service: ServiceSettings = Field(default_factory=lambda: ServiceSettings(),
                                     description="How `winback run` runs")

    def connection(self, name: str | None) -> SalesforceConnection | HubSpotConnection | None:
        if name is None:
            return self.connections[0] if self.connections else None
        return next((c for c in self.connections if c.name == name), None)


def model_json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "winback configuration"
    return schema
