"""The prospect simulator, CRM-independent: lost deals are reborn with a known probability.

Each closed-lost deal is decided once, on a day drawn after its loss day: it is reborn (its
deal reopens, or a new deal appears on its account) with probability `base`, or with the
highest probability of the `completed` entries whose subject substring matches a winback task
of the deal completed by then. Reps are simulated too: each open winback task is completed
with probability `reps.complete`, `reps.after_days` days after its due date. So a run against
the emulators has a true lift that is known in advance.

Days are UTC dates of the emulator clock. A run (after every admin clock change, or asked for)
first lets reps complete every open winback task due + after_days <= today (at 09:00 UTC of
that day, or when the task was created if that is later), then decides every lost deal whose
loss day + decision day <= today; a task counts if it was completed on or before the decision
day. The CRM writes are made at the run, stamped with the emulator clock (so an incremental
sync sees them); step the clock a day at a time for day-accurate stamps.

Every random number is a hash of (seed, deal or task id, purpose) (`uniform`), not a shared
generator: a deal's outcome does not depend on the order of the runs or on how the clock was
stepped. The CRM side (reading lost deals and tasks, completing a task, reopening a deal,
creating one) is a `Crm` adapter: sandbox/salesforce/prospects.py, sandbox/hubspot/prospects.py.
The admin routes (documented in each emulator's admin.py) are `Simulator.routes()`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from threading import RLock
from typing import Any, Protocol

from sandbox.core import Emulator
from sandbox.messages import Request, Response

Guard = Callable[[Callable[[Request], Response]], Callable[[Request], Response]]

FIELDS = ("seed", "base", "completed", "days", "new_deal_share", "reps")
REP_FIELDS = ("complete", "after_days")
REP_HOUR = time(9, tzinfo=UTC)  # a simulated rep completes a task at 09:00 UTC
NEW_DEAL_CLOSE_DAYS = 30  # a new deal's close date: its decision day + 30 days


class ConfigError(ValueError):
    """A bad configuration field; `field` names it (e.g. "reps.complete")."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.field = name


@dataclass(frozen=True)
class Config:
    seed: int = 0
    base: float = 0.10
    completed: tuple[tuple[str, float], ...] = (("post-mortem", 0.20),)
    days: tuple[int, int] = (30, 80)
    new_deal_share: float = 0.0
    rep_complete: float = 1.0
    rep_after_days: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "base": self.base, "completed": dict(self.completed),
                "days": list(self.days), "new_deal_share": self.new_deal_share,
                "reps": {"complete": self.rep_complete, "after_days": self.rep_after_days}}


def _probability(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(name, f"must be a number between 0 and 1, got {value!r}")
    if not 0.0 <= value <= 1.0:
        raise ConfigError(name, f"must be between 0 and 1, got {value!r}")
    return float(value)


def _integer(name: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(name, f"must be at least {minimum}, got {value!r}")
    return value


def _unknown(prefix: str, data: Mapping[str, Any], known: tuple[str, ...]) -> None:
    extra = sorted(set(data) - set(known))
    if extra:
        raise ConfigError(f"{prefix}{extra[0]}", f"unknown field (known: {', '.join(known)})")


def parse_config(body: Any) -> Config:
    """The configuration a `POST prospects` body gives (defaults for the fields left out);
    ConfigError naming the first bad field."""
    body = {} if body is None else body
    if not isinstance(body, dict):
        raise ConfigError("body", "must be a JSON object")
    _unknown("", body, FIELDS)
    out: dict[str, Any] = {}
    if "seed" in body:
        out["seed"] = _integer("seed", body["seed"])
    for name in ("base", "new_deal_share"):
        if name in body:
            out[name] = _probability(name, body[name])
    if "completed" in body:
        raw = body["completed"]
        if not isinstance(raw, dict):
            raise ConfigError("completed", "must be an object {subject substring: probability}")
        if any(not key.strip() for key in raw):
            raise ConfigError("completed", "a subject substring may not be empty")
        out["completed"] = tuple((k, _probability(f"completed.{k}", v)) for k, v in raw.items())
    if "days" in body:
        raw = body["days"]
        if not isinstance(raw, list) or len(raw) != 2:
            raise ConfigError("days", f"must be a list [a, b] of two integers, got {raw!r}")
        low, high = (_integer("days", v, 0) for v in raw)
        if low > high:
            raise ConfigError("days", f"[a, b] needs a <= b, got {raw!r}")
        out["days"] = (low, high)
    reps = body.get("reps", {})
    if not isinstance(reps, dict):
        raise ConfigError("reps", 'must be an object {"complete": p, "after_days": n}')
    _unknown("reps.", reps, REP_FIELDS)
    if "complete" in reps:
        out["rep_complete"] = _probability("reps.complete", reps["complete"])
    if "after_days" in reps:
        out["rep_after_days"] = _integer("reps.after_days", reps["after_days"], 0)
    return Config(**out)


# -- draws and the decision rule ----------------------------------------------------------------
def uniform(seed: int, key: str, purpose: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, key, purpose)."""
    digest = hashlib.blake2b(f"{seed}\x1f{key}\x1f{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def decision_days(config: Config, deal_id: str) -> int:
    """The deal's decision day after its loss day: uniform integer in [a, b]."""
    low, high = config.days
    return min(high, low + int(uniform(config.seed, deal_id, "days") * (high - low + 1)))


def rep_completes(config: Config, task_id: str) -> bool:
    return uniform(config.seed, task_id, "rep") < config.rep_complete


def probability(config: Config, subjects: list[str]) -> tuple[float, list[str]]:
    """(rebirth probability, the subjects that matched) for the completed task subjects."""
    hits = [(subject, p) for subject in subjects for key, p in config.completed
            if key.casefold() in subject.casefold()]
    if not hits:
        return config.base, []
    return max(p for _, p in hits), list(dict.fromkeys(s for s, _ in hits))


@dataclass
class Decision:
    deal: str
    lost_on: date
    decided_on: date
    probability: float
    completed: list[str]
    reborn: bool
    how: str | None = None  # "reopen" | "new_deal"
    new_deal: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"deal": self.deal, "lost_on": self.lost_on.isoformat(),
                "decided_on": self.decided_on.isoformat(), "probability": self.probability,
                "completed": list(self.completed), "reborn": self.reborn, "how": self.how,
                "new_deal": self.new_deal}


def decide(config: Config, deal_id: str, lost_on: date, subjects: list[str]) -> Decision:
    """The deal's fate, given the subjects of its winback tasks completed by the decision day."""
    chance, matched = probability(config, subjects)
    reborn = uniform(config.seed, deal_id, "reborn") < chance
    how = None
    if reborn:
        how = "new_deal" if uniform(config.seed, deal_id, "how") < config.new_deal_share \
            else "reopen"
    return Decision(deal_id, lost_on, lost_on + timedelta(days=decision_days(config, deal_id)),
                    chance, matched, reborn, how)


# -- the CRM side and the run -------------------------------------------------------------------
@dataclass(frozen=True)
class LostDeal:
    id: str
    lost_on: date


@dataclass(frozen=True)
class TaskView:
    id: str
    subject: str
    due: date | None
    completed_at: datetime | None  # None: open
    created_at: datetime | None = None


class Crm(Protocol):
    def data(self) -> object:
        """The CRM's data (its store): when it is replaced, draws and decisions are forgotten."""

    def lost_deals(self) -> list[LostDeal]: ...
    def open_winback_tasks(self) -> list[TaskView]: ...
    def winback_tasks(self, deal_id: str) -> list[TaskView]: ...
    def complete_task(self, task_id: str, at: datetime) -> None: ...
    def reopen(self, deal_id: str) -> None: ...
    def new_deal(self, deal_id: str, close_on: date) -> str | None:
        """A new open deal on the lost deal's account (None: it has no account)."""


@dataclass
class Simulator:
    crm: Crm
    lock: RLock
    clock: Callable[[], datetime]
    config: Config | None = None
    decided: dict[str, Decision] = field(default_factory=dict)
    drawn: set[str] = field(default_factory=set)
    completed_tasks: int = 0
    _data: object = None

    def forget(self) -> None:
        with self.lock:
            self.config, self._data = None, None
            self.decided, self.drawn, self.completed_tasks = {}, set(), 0

    def run(self) -> None:
        """Reps complete the due tasks, then the deals whose decision day has come are decided
        (up to the emulator clock's UTC date)."""
        with self.lock:
            config = self.config
            if config is None:
                return
            if self.crm.data() is not self._data:  # new data (a seed that replaced it)
                self.decided, self.drawn, self.completed_tasks = {}, set(), 0
                self._data = self.crm.data()
            today = self.clock().astimezone(UTC).date()
            self._reps(config, today)
            self._decide(config, today)

    def _reps(self, config: Config, today: date) -> None:
        after = timedelta(days=config.rep_after_days)
        for task in self.crm.open_winback_tasks():
            if task.id in self.drawn or task.due is None or task.due + after > today:
                continue
            self.drawn.add(task.id)
            if rep_completes(config, task.id):
                at = datetime.combine(task.due + after, REP_HOUR)
                if task.created_at is not None and at < task.created_at:
                    at = task.created_at  # not before the task existed
                self.crm.complete_task(task.id, at)
                self.completed_tasks += 1

    def _decide(self, config: Config, today: date) -> None:
        for deal in self.crm.lost_deals():
            if deal.id in self.decided:
                continue
            decided_on = deal.lost_on + timedelta(days=decision_days(config, deal.id))
            if decided_on > today:
                continue
            subjects = [t.subject for t in self.crm.winback_tasks(deal.id)
                        if t.completed_at is not None
                        and t.completed_at.astimezone(UTC).date() <= decided_on]
            decision = decide(config, deal.id, deal.lost_on, subjects)
            if decision.how == "new_deal":
                close_on = decided_on + timedelta(days=NEW_DEAL_CLOSE_DAYS)
                decision.new_deal = self.crm.new_deal(deal.id, close_on)
                if decision.new_deal is None:
                    decision.how = "reopen"  # no account to put a new deal on
            if decision.how == "reopen":
                self.crm.reopen(deal.id)
            self.decided[deal.id] = decision

    # -- admin routes -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            decided = [d.to_json() for d in self.decided.values()]
            return {"config": self.config.to_json() if self.config else None,
                    "decided": decided, "reborn": sum(d["reborn"] for d in decided),
                    "completed_tasks": self.completed_tasks}

    def routes(self) -> list[tuple[str, str, Callable[[Request], Response]]]:
        return [("GET", "prospects", self._get), ("POST", "prospects", self._set),
                ("DELETE", "prospects", self._off), ("POST", "prospects/run", self._run)]

    def _get(self, request: Request) -> Response:
        return Response.json(200, self.snapshot())

    def _set(self, request: Request) -> Response:
        try:
            config = parse_config(request.json())  # (invalid JSON: a 400 from the core)
        except ConfigError as exc:
            return Response.json(400, {"message": str(exc), "field": exc.field})
        with self.lock:
            self.config = config
        return Response.json(200, config.to_json())

    def _off(self, request: Request) -> Response:
        with self.lock:
            self.config = None
        return Response.json(200, self.snapshot())

    def _run(self, request: Request) -> Response:
        self.run()
        return Response.json(200, self.snapshot())


def install(emu: Emulator, crm: Crm, guard: Guard) -> Simulator:
    """A simulator on `emu`'s data: its admin routes (under `guard`: the emulator's lock and
    error shapes) and its clock and reset hooks."""
    simulator = Simulator(crm, emu.lock, emu.now)
    for method, path, handler in simulator.routes():
        emu.add_admin_route(method, path, guard(handler))
    emu.add_hook("clock", simulator.run)
    emu.add_hook("reset", simulator.forget)
    return simulator
