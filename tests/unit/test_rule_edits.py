"""The rule-edit invariant: after `sync`, `plan --diff` against the same configuration reports
no change, whatever was edited; and a sync re-plans only the deals that read what changed.

Random edits of cadences (offsets, templates, horizons, steps, `when`, order), defaults (time
zone, calendar, weekend, holidays, reminder time, lead time, grace, horizon), owner overrides
(days away included) and the fallback owner, applied one after another to a small ledger
(in-memory CRM, SQLite).
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from connectors.memory import InMemoryConnector
from connectors.models import Contact, Deal, Owner
from worker.cadence.engine import Planner
from worker.ledger import migrate
from worker.ledger.db import make_engine
from worker.ledger.schema import enrollment, task
from worker.service.wiring import Service, build_service
from worker.settings import Config, load_config
from worker.sync.tick import run_tick
from worker.views.plandiff import diff

NOW = datetime(2027, 3, 10, 15, tzinfo=UTC)
OWNERS = (Owner(id="U1", timezone="America/New_York", country="US"),
          Owner(id="U2"),  # no time zone, no country: the defaults apply
          Owner(id="U3", timezone="Europe/London", country="GB", active=False),
          Owner(id="FALLBACK", timezone="Asia/Tokyo", country="JP"))
DEALS = (  # (id, owner, loss reason, days before NOW it closed)
    ("D1", "U1", "Lost to competitor", 1), ("D2", "U1", "No budget", 3),
    ("D3", "U1", "Lost to competitor", 12), ("D4", "U2", "Lost to competitor", 0),
    ("D5", "U2", "No budget", 6), ("D6", "U3", "Lost to competitor", 2),
    ("D7", "U3", "No budget", 20), ("D8", None, "Lost to competitor", 4),
    ("D9", "U1", "Spam", 2), ("D10", "U2", "Timing", 5),
)
BASE: dict[str, Any] = {
    "version": 1,
    "defaults": {"timezone": "America/Chicago",
                 "calendar": {"country": "US", "weekend": ["sat", "sun"]},
                 "reminder_time": "09:00", "lead_time": "7d", "grace": "7d", "horizon": "1y"},
    "connections": [{"name": "crm", "kind": "hubspot", "auth": {"access_token": "${T:-pat-x}"},
                     "fallback_owner": None, "owners": {}}],
    "cadences": [
        {"id": "competitor", "when": {"loss_reason": {"matches": "(?i)competitor"}},
         "steps": [{"id": "call", "at": "2d"},
                   {"id": "post-mortem", "at": "14d", "priority": "high"},
                   {"id": "check-in", "every": "30d", "from": "30d", "until": "150d",
                    "channel": "email"}]},
        {"id": "no-decision", "when": {"loss_reason": {"matches": "(?i)budget"}},
         "steps": [{"id": "nudge", "at": "8d"},
                   {"id": "revisit", "spread": 2, "from": "20d", "until": "90d"}]},
    ],
}

ZONES = st.sampled_from(["UTC", "Europe/Paris", "Asia/Tokyo", "America/Los_Angeles",
                         "Europe/Berlin"])
OFFSETS = st.sampled_from(["0d", "1d", "5d", "10d", "21d", "45d"])
CADENCE_STEPS = st.sampled_from([("competitor", "call"), ("competitor", "post-mortem"),
                                 ("competitor", "check-in"), ("no-decision", "nudge"),
                                 ("no-decision", "revisit")])
EDITS = st.one_of(
    st.tuples(st.just("defaults"), st.just("timezone"), ZONES),
    st.tuples(st.just("defaults"), st.just("reminder_time"), st.sampled_from(["07:30", "13:00"])),
    st.tuples(st.just("defaults"), st.just("lead_time"), st.sampled_from(["0d", "2d", "20d"])),
    st.tuples(st.just("defaults"), st.just("grace"), st.sampled_from(["0d", "3d", "30d"])),
    st.tuples(st.just("defaults"), st.just("horizon"), st.sampled_from(["20d", "60d", "3y"])),
    st.tuples(st.just("calendar"), st.sampled_from(["US", "DE", "GB"]),
              st.lists(st.dates(date(2027, 3, 9), date(2027, 4, 30)), max_size=3)),
    st.tuples(st.just("weekend"), st.sampled_from([("sat", "sun"), ("fri", "sat"), ("sun",)])),
    st.tuples(st.just("override"), st.sampled_from(["U1", "U2", "U3", "FALLBACK"]),
              st.none() | st.fixed_dictionaries({}, optional={
                  "timezone": ZONES, "country": st.sampled_from(["DE", "FR", "US"]),
                  "away": st.just([{"from": "2027-03-11", "to": "2027-03-24"}])})),
    st.tuples(st.just("fallback"), st.sampled_from([None, "FALLBACK", "U2"])),
    st.tuples(st.just("offset"), CADENCE_STEPS, OFFSETS),
    st.tuples(st.just("template"), CADENCE_STEPS, st.sampled_from(["Call {{ deal.name }}",
                                                                  "Hello {{ owner.id }}"])),
    st.tuples(st.just("priority"), CADENCE_STEPS, st.sampled_from(["low", "normal", "high"])),
    st.tuples(st.just("add_step"), st.sampled_from(["competitor", "no-decision"]), OFFSETS),
    st.tuples(st.just("remove_step"), CADENCE_STEPS),
    st.tuples(st.just("cadence_horizon"), st.sampled_from(["competitor", "no-decision"]),
              st.sampled_from([None, "30d", "2y"])),
    st.tuples(st.just("when"), st.sampled_from(["(?i)budget", "(?i)budget|timing",
                                                "(?i)budget|competitor"])),
    st.tuples(st.just("reorder")),
    # an experiment on a cadence (None: removed): id, holdout, maybe a variant whose override
    # moves the cadence's last step (kept valid by `apply`)
    st.tuples(st.just("experiment"), st.sampled_from(["competitor", "no-decision"]),
              st.none() | st.tuples(st.sampled_from(["e1", "e2"]),
                                    st.sampled_from(["0%", "30%", "60%"]),
                                    st.sampled_from([None, 25, 40]))),
)


def apply(config: dict[str, Any], edit: tuple[Any, ...]) -> dict[str, Any]:
    out = copy.deepcopy(config)
    kind, conn, cadences = edit[0], out["connections"][0], out["cadences"]
    by_id = {c["id"]: c for c in cadences}
    if kind == "defaults":
        out["defaults"][edit[1]] = edit[2]
    elif kind == "calendar":
        country = edit[1]
        out["defaults"]["calendar"].update(country=country, subdivision="BY" if country == "DE"
                                           else None,
                                           extra_holidays=[d.isoformat() for d in edit[2]])
    elif kind == "weekend":
        out["defaults"]["calendar"]["weekend"] = list(edit[1])
    elif kind == "override":
        if edit[2] is None:
            conn["owners"].pop(edit[1], None)
        else:
            value = dict(edit[2])
            if value.get("country") == "DE":
                value["subdivision"] = "BY"
            conn["owners"][edit[1]] = value
    elif kind == "fallback":
        conn["fallback_owner"] = edit[1]
    elif kind in ("offset", "template", "priority", "remove_step"):
        cadence_id, step_id = edit[1]
        steps = by_id[cadence_id]["steps"]
        step = next((s for s in steps if s["id"] == step_id), None)
        if step is None:
            return out
        if kind == "remove_step":
            if len(steps) > 1:
                steps.remove(step)
                for variant in (by_id[cadence_id].get("experiment") or {}).get(
                        "variants", {}).values():
                    variant["steps"].pop(step_id, None)
        elif kind == "offset":
            step.update({"from": edit[2]} if "spread" in step or "every" in step
                        else {"at": edit[2]})
        elif kind == "template":
            step["subject"] = edit[2]
        else:
            step["priority"] = edit[2]
    elif kind == "add_step":
        steps = by_id[edit[1]]["steps"]
        steps.append({"id": f"extra-{len(steps)}", "at": edit[2], "channel": "todo"})
    elif kind == "cadence_horizon":
        by_id[edit[1]]["horizon"] = edit[2]
    elif kind == "when":
        by_id["no-decision"]["when"]["loss_reason"]["matches"] = edit[1]
    elif kind == "reorder":
        cadences.reverse()
    elif kind == "experiment":
        cadence = by_id[edit[1]]
        if edit[2] is None:
            cadence.pop("experiment", None)
        else:
            experiment_id, holdout, weight = edit[2]
            last = cadence["steps"][-1]
            field = "at" if "at" in last else "from"
            cadence["experiment"] = {"id": experiment_id, "holdout": holdout, "variants": {} if
                                     weight is None else {"moved": {"weight": weight, "steps": {
                                         last["id"]: {field: "40d"}}}}}
    elif kind == "step_set":  # (step_set, (cadence, step), key, value)
        cadence_id, step_id = edit[1]
        next(s for s in by_id[cadence_id]["steps"] if s["id"] == step_id)[edit[2]] = edit[3]
    elif kind == "stop":
        out.setdefault("stop", {})[edit[1]] = edit[2]
    return out


def reads(config: Config, deal: Deal) -> Any:
    """Independently of the planner's fingerprint: the parts of a configuration planning
    `deal` may read (coarse: more than it needs is fine, less is not)."""
    conn = config.connections[0]
    cadence = Planner(config, "crm").match(deal)
    index = config.cadences.index(cadence) if cadence else len(config.cadences)
    whens = [(c.id, c.when) for c in config.cadences[:index + 1]]
    if cadence is None:
        return whens
    owner = deal.owner
    effective = owner.id if owner and owner.active else conn.fallback_owner
    if effective is None:
        effective = owner.id if owner else None
    if effective is None:
        return whens, cadence, None
    override = conn.owners.get(effective)
    fallback = effective != (owner.id if owner else None)
    crm_zone = None if fallback or owner is None else owner.timezone
    zone = (override.timezone if override and override.timezone else None) or crm_zone \
        or config.defaults.timezone
    d = config.defaults
    return (whens, cadence, effective, override, zone, d.calendar, d.reminder_time, d.lead_time,
            d.grace, cadence.horizon or d.horizon)


def drift(config: Config, service: Service) -> set[str]:
    """Deals whose fresh plan under `config` differs from their unwritten tasks in the ledger:
    a full re-plan of every tracked deal, independent of fingerprints and of plan --diff."""
    planner, out = Planner(config, "crm"), set()
    with service.ledger.engine.connect() as conn:
        tasks: dict[str, dict[str, Any]] = {}
        for t in conn.execute(select(task)):
            tasks.setdefault(t.deal_id, {})[t.key] = t
        for row in conn.execute(select(enrollment).where(
                enrollment.c.status.in_(("active", "unmatched")))):
            deal = Deal.model_validate(row.deal_json)
            stored = tasks.get(row.deal_id, {})
            arm = (row.experiment, row.arm) if row.experiment is not None else None
            planned = {t.key: t for t in planner.plan(deal, NOW, cycle=row.cycle,
                                                      arm=arm).tasks}
            for key, new in planned.items():
                old = stored.get(key)
                gone = old is None or (old.status, old.cancel_reason) == ("cancelled", "replanned")
                moved = not gone and old.status in ("planned", "queued") and (
                    old.due_date, old.owner_id, old.remind_at, old.channel, old.priority,
                    max(old.create_after, NOW)) != (
                    new.due_date, new.owner_id, new.remind_at, str(new.channel),
                    str(new.priority), max(planner.create_after(deal, new), NOW))
                if gone or moved:
                    out.add(row.deal_id)
            if any(t.status in ("planned", "queued") and t.cadence != "reborn"
                   and k not in planned for k, t in stored.items()):
                out.add(row.deal_id)
    return out


class Ledger:
    """A migrated SQLite ledger, copied for each example (migrating takes a while)."""

    def __init__(self, root: Path) -> None:
        self.template = root / "template.db"
        engine = make_engine(f"sqlite:///{self.template}", pool_size=1)
        migrate.upgrade(engine)
        engine.dispose()


@pytest.fixture(scope="module")
def template() -> Iterator[Ledger]:
    root = Path(tempfile.mkdtemp(prefix="winback-rules-"))
    try:
        yield Ledger(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


class World:
    def __init__(self, root: Path, template: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
        shutil.copy(template.template, root / "ledger.db")
        monkeypatch.setenv("WINBACK_DATABASE_URL", f"sqlite:///{root / 'ledger.db'}")
        self.path = root / "winback.yaml"
        self.crm = InMemoryConnector("crm", clock=lambda: NOW)
        for owner in OWNERS:
            self.crm.admin_put_owner(owner)
        for deal_id, owner_id, reason, days in DEALS:
            self.crm.admin_put_deal(Deal(
                id=deal_id, name=f"Deal {deal_id}", account_id=f"A{deal_id}",
                closed_at=(NOW - timedelta(days=days)).date(), loss_reason=reason,
                amount=1000.0, owner=Owner(id=owner_id) if owner_id else None),
                (Contact(id=f"K{deal_id}", name="Ann"),))
        self.service: Service | None = None

    def load(self, data: dict[str, Any]) -> Config:
        if self.service is not None:
            self.service.close()
        self.path.write_text(json.dumps(data))  # JSON is YAML
        config = load_config(self.path, env={})
        self.service = build_service(config, self.path, clock=lambda: NOW,
                                     connector_factory=lambda s, o: self.crm)
        return config

    def sync(self) -> int:
        assert self.service is not None
        result = run_tick(self.service.contexts["crm"], ignore_schedule=True)
        assert result.result == "ok", result
        return result.counts.replanned

    def versions(self) -> dict[str, str]:
        assert self.service is not None
        with self.service.ledger.engine.connect() as conn:
            return {r.deal_id: r.rule_version for r in conn.execute(select(enrollment))}

    def deals(self) -> dict[str, Deal]:
        assert self.service is not None
        with self.service.ledger.engine.connect() as conn:
            return {r.deal_id: Deal.model_validate(r.deal_json)
                    for r in conn.execute(select(enrollment))}


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edits=st.lists(EDITS, min_size=1, max_size=4))
def test_after_sync_the_diff_is_empty_and_only_affected_deals_are_replanned(
        edits: list[tuple[Any, ...]], template: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    check_edits(edits, template, monkeypatch)


@pytest.mark.parametrize("edits", [
    [("experiment", "competitor", ("e1", "30%", 25))],
    [("experiment", "competitor", ("e1", "30%", 25)), ("experiment", "competitor",
                                                       ("e1", "60%", None)),
     ("offset", ("competitor", "post-mortem"), "21d"),
     ("experiment", "competitor", ("e2", "30%", 40)), ("remove_step", ("competitor", "call")),
     ("experiment", "competitor", None)],
], ids=["start", "edit-redraw-remove"])
def test_experiment_edits_keep_the_invariant(edits: list[tuple[Any, ...]], template: Ledger,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Experiment edits (issue 17): a weight change keeps each deal's stored arm, a new id
    draws again, a removed experiment puts the deals back on the cadence as written."""
    check_edits(edits, template, monkeypatch)


@pytest.mark.slow
@pytest.mark.timeout(1800)
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edits=st.lists(EDITS, min_size=1, max_size=8))
def test_rule_edit_invariant_long_form(edits: list[tuple[Any, ...]], template: Ledger,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    check_edits(edits, template, monkeypatch)


def check_edits(edits: list[tuple[Any, ...]], template: Ledger,
                monkeypatch: pytest.MonkeyPatch) -> None:
    """Sync, then per edit: the diff shows every deal a full re-plan would change; the next
    sync re-plans those (and no deal that does not read the edited setting); then the diff
    is empty and a full re-plan changes nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        world = World(Path(tmp), template, monkeypatch)
        data = BASE
        config = world.load(data)
        world.sync()
        assert world.service is not None
        ledger = world.service.ledger
        assert diff(config, ledger, NOW) == []
        try:
            for edit in edits:
                old_config, data = config, apply(data, edit)
                config = world.load(data)
                pending = {c.deal_id for c in diff(config, ledger, NOW)}
                assert world.service is not None
                changing = drift(config, world.service)
                assert changing <= pending, f"{edit}: plan --diff misses {changing - pending}"
                before, snapshots = world.versions(), world.deals()
                replanned = world.sync()
                after = world.versions()
                moved = {d for d, v in after.items() if before.get(d) != v}
                assert replanned == len(moved), edit
                assert pending <= moved, f"{edit}: the diff showed {pending - moved}, not applied"
                allowed = {d for d, deal in snapshots.items()
                           if reads(old_config, deal) != reads(config, deal)}
                assert moved <= allowed, f"{edit}: re-planned {moved - allowed}, unaffected"
                left = diff(config, ledger, NOW)
                assert left == [], f"{edit}: after sync the diff still shows {left}"
                assert world.service is not None
                assert drift(config, world.service) == set(), f"{edit}: not re-planned"
        finally:
            assert world.service is not None
            world.service.close()


@pytest.mark.parametrize(("edit", "step", "why"), [
    (("override", "U1", {"timezone": "Europe/Berlin"}), "check-in",
     "owner override timezone: America/New_York -> Europe/Berlin"),
    (("defaults", "reminder_time", "13:00"), "check-in",
     "defaults.reminder_time: 09:00 -> 13:00"),
    (("offset", ("competitor", "post-mortem"), "21d"), "post-mortem",
     "cadence competitor step post-mortem offset (at)"),
    (("fallback", "FALLBACK"), "check-in", "fallback_owner: U3 -> FALLBACK"),
    (("weekend", ("fri", "sat")), "check-in",
     "defaults.calendar.weekend: [sat, sun] -> [fri, sat]"),
    (("override", "U1", {"away": [{"from": "2027-03-15", "to": "2027-04-30"}]}), "check-in",
     "owner override away: [] -> [[2027-03-15, 2027-04-30]]"),
    (("step_set", ("competitor", "check-in"), "after", "post-mortem"), "check-in",
     "cadence competitor step check-in after"),
    (("experiment", "competitor", ("e1", "100%", None)), "check-in",
     "experiment e1 holdout: no tasks for this deal"),
])
def test_the_diff_names_the_setting_behind_each_change(
        edit: tuple[Any, ...], step: str, why: str, template: Ledger,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    world = World(tmp_path, template, monkeypatch)
    world.load(BASE)
    world.sync()
    config = world.load(apply(BASE, edit))
    assert world.service is not None
    changes = [c for c in diff(config, world.service.ledger, NOW) if c.step == step]
    world.service.close()
    if edit[0] == "fallback":  # D8 has no owner: its tasks appear; U3's deals change owner
        assert {(c.deal_id, c.change) for c in changes if c.owner_before is None} == {
            ("D8", "added")}
        assert all(c.why == ("fallback_owner: none -> FALLBACK",)
                   for c in changes if c.deal_id == "D8")
        changes = [c for c in changes if c.deal_id != "D8"]
        assert {(c.owner_before, c.owner_after) for c in changes} == {("U3", "FALLBACK")}
        assert all("owner" in c.fields for c in changes)
    assert changes and all(why in c.why for c in changes), [c.why for c in changes]


def test_an_owner_override_is_replanned_from_the_ledger_alone(
        tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the pull's overlap (no deal is re-read), the set-wise stale query finds the
    overridden owner's deals, on SQLite and PostgreSQL; the next tick finds none."""
    from tests.unit import harness

    world = harness.World(tmp_path, database_url, monkeypatch)
    try:
        world.lost("D1")
        world.lost("D2", owner="FALLBACK")
        world.tick()
        world.advance(hours=2)
        assert world.tick().counts.replanned == 0
        world.reload('    owners: {"U1": {timezone: Europe/Berlin, country: DE, '
                     'subdivision: BY}}\n')
        assert world.tick().counts.replanned == 1
        assert world.tick().counts.replanned == 0
        config = load_config(world.path, env={})
        assert diff(config, world.service.ledger, world.now) == []
    finally:
        world.close()
