"""Nothing dropped silently: tasks the CRM refuses for an inactive owner are `failed` with their
reason and shown in the `sync` summary (with the fix), `status`, the report, `/metrics` and
`doctor`, on both CRMs; `winback owners` lists what `owners:` / `fallback_owner` need; `plan`
flags deals of inactive owners; `/metrics` has every family from startup."""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from tests.reliability.harness import SECRETS, Stack
from worker.cli.main import app
from worker.ledger.schema import task
from worker.service.health import HealthServer
from worker.service.wiring import build_service
from worker.settings import load_config
from worker.sync.tick import run_tick

CODES = {"sf0": "INACTIVE_OWNER_OR_USER", "hs0": "INACTIVE_OWNER"}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The CLI runs in this process and points the log at its captured stderr: put the
    logging configuration back afterwards, for the tests that follow."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def stack(tmp_path: Path) -> Any:
    """The sandbox with inactive owners (8 owners, the first inactive) and no fallback owner."""
    s = Stack(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}").start(deals=60)
    s.set_fallbacks(salesforce="", hubspot="")
    yield s
    s.stop()


@pytest.fixture
def ledger_stack(tmp_path: Path, database_url: str) -> Any:
    """The same, with the ledger on SQLite and on PostgreSQL (migrated)."""
    s = Stack(tmp_path, database_url).start(deals=60)
    s.set_fallbacks(salesforce="", hubspot="")
    if not database_url.startswith("sqlite"):
        s.migrate()
    yield s
    s.stop()


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def _cli(stack: Stack, *args: str, **env: str) -> Ran:
    """The command line in this process (the real CLI app, the stack's environment)."""
    result = CliRunner().invoke(app, list(args), env={**stack.env(), **env})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def _failed_in_ledger(stack: Stack) -> dict[str, list[str]]:
    engine = create_engine(stack.database_url)
    with engine.connect() as conn:
        rows = conn.execute(select(task.c.connection, task.c.status, task.c.last_error)).all()
    engine.dispose()
    out: dict[str, list[str]] = {}
    for connection, status, last_error in rows:
        assert status != "skipped", (connection, last_error)  # refused means failed
        if status == "failed":
            out.setdefault(connection, []).append(last_error)
    return out


def _inactive_owner_ids(stack: Stack) -> dict[str, set[str]]:
    users = stack.box.admin("salesforce", "GET", "records/User")
    users = users.get("records", users) if isinstance(users, dict) else users
    owners = stack.box.admin("hubspot", "GET", "objects/owners")
    owners = owners.get("results", owners) if isinstance(owners, dict) else owners
    return {"sf0": {str(u["Id"]) for u in users if not u.get("IsActive")},
            "hs0": {str(o["id"]) for o in owners if o.get("archived")}}


def _metric(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}", 1)[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_inactive_owner_refusals_show_in_sync_status_report_and_doctor(
        ledger_stack: Stack) -> None:
    stack = ledger_stack
    sync = _cli(stack, "sync", str(stack.config_path))
    assert sync.returncode == 0, sync.stderr[-2000:]  # a refused task is not a failed run
    failed = _failed_in_ledger(stack)
    inactive = _inactive_owner_ids(stack)
    for name, code in CODES.items():
        errors = failed.get(name, [])
        assert errors and all(e.startswith(code + ": ") and len(e) > len(code) + 5
                              for e in errors), (name, errors)
        summary = next(line for line in sync.stdout.splitlines()
                       if line.startswith(f"{name}: ok"))
        assert f"{len(errors)} failed ({code} {len(errors)})" in summary, summary
        hint = next(line for line in sync.stdout.splitlines()
                    if line.startswith(f"{name}: ") and "fallback_owner" in line)
        assert f"set fallback_owner on connection {name}" in hint
        assert any(owner in hint for owner in inactive[name]), (hint, inactive[name])

    status = _cli(stack, "status", str(stack.config_path), "--format", "json")
    rows = {r["connection"]: r for r in json.loads(status.stdout)}
    report = json.loads(_cli(stack, "report", str(stack.config_path), "--format",
                             "json").stdout)
    for name, code in CODES.items():
        count = len(failed[name])
        assert rows[name]["tasks"]["failed"] == count
        assert rows[name]["tasks_failed_by_reason"] == {code: count}
        assert report["failed_by_reason"][name] == {code: count}
        assert sum(s["failed"] for s in report["by_step"]) == sum(map(len, failed.values()))
    shown = _cli(stack, "report", str(stack.config_path)).stdout
    for name, code in CODES.items():
        assert f"{name}: {len(failed[name])} task(s) refused by the CRM ({code} " in shown

    doctor = _cli(stack, "doctor", str(stack.config_path), "--format", "json")
    assert doctor.returncode == 0, doctor.stdout  # a warning does not fail doctor
    checks = {f"{c['scope']}: {c['name']}": c for c in json.loads(doctor.stdout)["checks"]}
    for name in CODES:
        check = checks[f"{name}: inactive owners"]
        assert check["level"] == "warn" and check["ok"], check
        assert "tracked deal" in check["detail"]
        assert any(owner in check["detail"] for owner in inactive[name])
        assert "fallback_owner" in check["fix"] and "winback owners" in check["fix"]
    table = _cli(stack, "doctor", str(stack.config_path))
    assert re.search(r"^warn sf0: inactive owners: ", table.stdout, re.M), table.stdout
    assert "with a warning" in table.stdout
    everything = sync.stdout + sync.stderr + doctor.stdout + table.stdout + status.stdout
    assert not [secret for secret in SECRETS if secret in everything]


def test_setting_the_fallback_owner_sends_the_refused_tasks_there(stack: Stack) -> None:
    """The fix the sync summary names works: once `fallback_owner` is set, the next sync
    plans the refused tasks again for the fallback owner and writes them; none stays failed."""
    first = _cli(stack, "sync", str(stack.config_path))
    assert first.returncode == 0 and _failed_in_ledger(stack), first.stdout
    sf_active, hs_active = stack.box.active_owners()
    stack.set_fallbacks(salesforce=sf_active, hubspot=hs_active)
    second = _cli(stack, "sync", str(stack.config_path))
    assert second.returncode == 0, second.stdout + second.stderr
    assert _failed_in_ledger(stack) == {}, second.stdout
    inactive = _inactive_owner_ids(stack)
    for crm, name, fallback, owner_field in (("salesforce", "sf0", sf_active, "OwnerId"),
                                             ("hubspot", "hs0", hs_active, "hubspot_owner_id")):
        tasks = stack.box.tasks(crm)
        owners = {str(t.get(owner_field) or t.get("properties", {}).get(owner_field))
                  for t in tasks}
        assert fallback in owners and not owners & inactive[name], (crm, owners)


def test_doctor_before_the_first_sync_and_with_a_fallback_owner(stack: Stack) -> None:
    """No ledger yet: still a warning; an inactive fallback_owner fails; an active one passes."""
    first = json.loads(_cli(stack, "doctor", str(stack.config_path), "--format", "json").stdout)
    check = next(c for c in first["checks"] if c["name"] == "inactive owners")
    assert check["level"] == "warn" and "not synced" in check["detail"]
    inactive = _inactive_owner_ids(stack)
    stack.set_fallbacks(salesforce=sorted(inactive["sf0"])[0], hubspot="")
    run = _cli(stack, "doctor", str(stack.config_path), "--format", "json")
    bad = [c for c in json.loads(run.stdout)["checks"] if c["level"] == "fail"]
    assert run.returncode == 1 and [c["scope"] for c in bad] == ["sf0"], bad
    assert "is inactive" in bad[0]["detail"] and "fallback_owner" in bad[0]["fix"]
    sf_active, hs_active = stack.box.active_owners()
    stack.set_fallbacks(salesforce=sf_active, hubspot=hs_active)
    good = json.loads(_cli(stack, "doctor", str(stack.config_path), "--format", "json").stdout)
    levels = {c["scope"]: c["level"] for c in good["checks"] if c["name"] == "inactive owners"}
    assert levels == {"sf0": "pass", "hs0": "pass"}
    # the only warning left: the harness logs in to Salesforce with the legacy SOAP flow
    warned = [(c["scope"], c["name"]) for c in good["checks"] if c["level"] == "warn"]
    assert warned == [("sf0", "login flow")] and good["warnings"] == 1, warned


def test_owners_command_lists_each_connections_owners(stack: Stack) -> None:
    sf_active, _ = stack.box.active_owners()
    stack.set_fallbacks(salesforce=sf_active, hubspot="")
    run = _cli(stack, "owners", str(stack.config_path), "--format", "json")
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    inactive = _inactive_owner_ids(stack)
    for name in CODES:
        mine = [r for r in rows if r["connection"] == name]
        assert {r["id"] for r in mine if not r["active"]} == inactive[name]
        assert all(r["name"] for r in mine)
        assert all({"id", "name", "active", "timezone", "country"} <= set(r) for r in mine)
    sf_rows = [r for r in rows if r["connection"] == "sf0"]
    assert all(r["timezone"] and r["country"] for r in sf_rows)  # User.TimeZoneSidKey, Country
    assert [r["id"] for r in rows if r["fallback_owner"]] == [sf_active]
    table = _cli(stack, "owners", str(stack.config_path))
    assert table.returncode == 0
    some = next(r for r in sf_rows if not r["active"])
    line = next(x for x in table.stdout.splitlines() if some["id"] in x)
    assert "NO" in line and some["timezone"] in line
    wrong = _cli(stack, "owners", str(stack.config_path), "--connection", "nope")
    assert wrong.returncode == 2 and "sf0, hs0" in wrong.stderr


def test_metrics_have_every_family_from_startup_and_the_ledgers_failures_after_a_restart(
        ledger_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = ledger_stack
    for key, value in stack.env().items():
        monkeypatch.setenv(key, value)
    config = load_config(stack.config_path)
    cadences = [c.id for c in config.cadences]

    def scrape() -> str:
        server = HealthServer(service, "127.0.0.1", 0).start()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics",
                                        timeout=10) as response:
                return str(response.read().decode())
        finally:
            server.stop()

    service = build_service(config, stack.config_path)
    try:
        text = scrape()  # before any tick
        for name, code in CODES.items():
            zeros = [("winback_deals_pulled_total", {}),
                     ("winback_deals_enrolled_total", {"cadence": cadences[0]}),
                     ("winback_deals_stopped_total", {"reason": "reopened"}),
                     ("winback_deals_reborn_total", {"kind": "new_deal"}),
                     ("winback_deals_skipped_total", {"reason": "no close date"}),
                     ("winback_tasks_total", {"outcome": "failed"}),
                     ("winback_tasks_total", {"outcome": "written"}),
                     ("winback_tasks_failed", {"reason": code}),
                     ("winback_ticks_total", {"result": "error"}),
                     ("winback_tick_seconds_count", {}),
                     ("winback_outbox_depth", {"status": "queued"}),
                     ("winback_lease_held", {}),
                     ("winback_last_success_timestamp", {}),
                     ("winback_api_budget_used_ratio", {})]
            for metric, labels in zeros:
                assert _metric(text, metric, connection=name, **labels) == 0, (metric, name)
        assert "# TYPE winback_api_calls_total counter" in text
        for ctx in service.contexts.values():
            assert run_tick(ctx, ignore_schedule=True).result == "ok"
    finally:
        service.close()
    failed = _failed_in_ledger(stack)
    service = build_service(load_config(stack.config_path), stack.config_path)  # a restart
    try:
        text = scrape()
    finally:
        service.close()
    for name, code in CODES.items():
        assert _metric(text, "winback_tasks_failed", connection=name,
                       reason=code) == len(failed[name]) > 0
        assert (_metric(text, "winback_last_success_timestamp", connection=name) or 0) > 0


def test_plan_flags_deals_of_inactive_owners(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent.parent
    config = root / "config" / "winback.yaml"
    deal = {"id": "D1", "name": "Gone rep", "closed_at": "2027-11-12", "loss_reason": "Price",
            "owner": {"id": "U9", "name": "Former Rep", "active": False}}
    deals = tmp_path / "deals.jsonl"
    deals.write_text(json.dumps(deal) + "\n" + json.dumps(
        {**deal, "id": "D2", "owner": {"id": "U1", "active": True}}) + "\n")
    argv = ["plan", str(config), "--deals", str(deals), "--now", "2027-11-15T15:00:00Z"]

    def plan(*extra: str, fallback: str = "") -> Ran:
        result = CliRunner().invoke(app, [*argv, *extra], env={"SF_FALLBACK_OWNER": fallback})
        assert result.exit_code == 0, result.output
        return Ran(result.exit_code, result.stdout, result.stderr)

    run = plan("--format", "json")
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    assert {r["deal_id"] for r in rows if r["owner_inactive"]} == {"D1"}
    assert {r["deal_id"] for r in rows if not r["owner_inactive"]} == {"D2"}
    assert "D1" in run.stderr and "Former Rep (U9)" in run.stderr
    assert "fallback_owner" in run.stderr and "winback owners" in run.stderr
    table = plan()
    assert "D1 Gone rep" in table.stdout and "INACTIVE" in table.stdout
    fallback = plan("--format", "json", fallback="U1")
    rows = [json.loads(line) for line in fallback.stdout.splitlines()]
    assert not any(r["owner_inactive"] for r in rows) and "warning" not in fallback.stderr
    assert {r["owner_id"] for r in rows} == {"U1"}


def test_an_inactive_fallback_owner_is_named_as_the_problem(stack: Stack) -> None:
    """The fallback owner is refused too: the summary says to pick another fallback owner."""
    gone = sorted(_inactive_owner_ids(stack)["sf0"])[0]
    stack.set_fallbacks(salesforce=gone, hubspot="")
    sync = _cli(stack, "sync", str(stack.config_path), "--connection", "sf0")
    assert sync.returncode == 0, sync.stderr[-2000:]
    failed = _failed_in_ledger(stack)["sf0"]
    assert failed and all(e.startswith("INACTIVE_OWNER_OR_USER: ") for e in failed)
    hint = next(line for line in sync.stdout.splitlines() if "fallback_owner" in line)
    assert f"the fallback_owner {gone} is itself inactive" in hint, hint
