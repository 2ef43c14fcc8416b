"""`winback doctor` against the sandbox: all green on a good deployment, and each failure,
injected one at a time, named with its fix (exit 1)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import SECRET_SF_PASSWORD, Stack


def doctor(stack: Stack, **env: str) -> tuple[int, dict[str, Any], str]:
    environment = {**stack.env(), **env}
    proc = subprocess.run(stack.command("doctor", str(stack.config_path), "--format", "json"),
                          env=environment, capture_output=True, text=True, timeout=120,
                          cwd=stack.tmp)
    out = proc.stdout + proc.stderr
    return proc.returncode, json.loads(proc.stdout), out


def failing(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{c['scope']}: {c['name']}": c for c in report["checks"] if not c["ok"]}


@pytest.fixture
def stack(tmp_path: Path) -> Any:
    s = Stack(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}").start(deals=10)
    yield s
    s.stop()


def test_a_good_deployment_passes_every_check(stack: Stack) -> None:
    code, report, out = doctor(stack)
    assert code == 0, failing(report)
    names = {c["name"] for c in report["checks"]}
    assert {"configuration valid", "environment variables set", "ledger reachable and migrated",
            "API budget", "clock skew", "closed-lost stages", "task key mode",
            "bulk api"} <= names
    assert SECRET_SF_PASSWORD not in out


def test_wrong_password(stack: Stack) -> None:
    code, report, out = doctor(stack, SF_PASSWORD="not-the-password")
    assert code == 1
    bad = failing(report)
    assert list(bad) == ["sf0: login"] and bad["sf0: login"]["fix"]
    assert "not-the-password" not in out


def test_missing_environment_variable_is_named_not_shown(stack: Stack) -> None:
    environment = {k: v for k, v in stack.env().items() if k != "SF_TOKEN"}
    proc = subprocess.run(stack.command("doctor", str(stack.config_path), "--format", "json"),
                          env=environment, capture_output=True, text=True, timeout=120)
    report = json.loads(proc.stdout)
    assert proc.returncode == 1
    assert "SF_TOKEN" in failing(report)["config: environment variables set"]["detail"]


def test_missing_external_id_field_and_deal_field(tmp_path: Path) -> None:
    s = Stack(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}").start(
        deals=10, salesforce_options={"task_external_id_field": None})
    try:
        s.config_path.write_text(s.config_path.read_text().replace(
            "contract_end: contract_end_date", "contract_end: no_such_property"))
        code, report, _ = doctor(s)
    finally:
        s.stop()
    assert code == 1
    bad = failing(report)
    key = next(v for k, v in bad.items() if k.startswith("sf0:") and "Winback_Key__c" in
               v["detail"] + v["fix"])
    assert "External ID" in key["fix"]
    field = next(v for k, v in bad.items() if k.startswith("hs0:"))
    assert "no_such_property" in field["detail"] and field["fix"]


def test_spent_api_budget_and_a_skewed_clock(stack: Stack) -> None:
    stack.box.admin("salesforce", "POST", "limits", {"daily_api_requests": 1000, "used": 900})
    stack.box.admin("hubspot", "POST", "clock", {"offset_seconds": 900})
    code, report, _ = doctor(stack)
    assert code == 1
    bad = failing(report)
    assert "sf0: API budget" in bad and "api_budget_share" in bad["sf0: API budget"]["fix"]
    assert "hs0: clock skew" in bad and "NTP" in bad["hs0: clock skew"]["fix"]


def test_unmigrated_postgresql_ledger(tmp_path: Path, pg_url: str) -> None:
    s = Stack(tmp_path, pg_url).start(deals=5)
    try:
        code, report, _ = doctor(s)
    finally:
        s.stop()
    assert code == 1
    ledger = failing(report)["ledger: ledger reachable and migrated"]
    assert "winback migrate" in ledger["fix"]


def test_refused_hubspot_token(tmp_path: Path) -> None:
    s = Stack(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}").start(
        deals=5, hubspot_options={"tokens": ["pat-only-this-one"]})
    try:
        code, report, _ = doctor(s)
    finally:
        s.stop()
    assert code == 1
    assert any(k.startswith("hs0:") for k in failing(report))


def test_a_fallback_team_with_an_inactive_member_fails_and_an_active_team_passes(
        stack: Stack) -> None:
    users = stack.box.admin("salesforce", "GET", "records/User")
    users = users.get("records", users) if isinstance(users, dict) else users
    active = [str(u["Id"]) for u in users if u.get("IsActive")]
    inactive = next(str(u["Id"]) for u in users if not u.get("IsActive"))
    text = stack.config_path.read_text()
    head, sep, rest = text.partition("  - name: hs0")
    fallback = next(line for line in head.splitlines() if "fallback_owner:" in line)
    stack.config_path.write_text(head.replace(
        fallback, f"    fallback_owner: [{active[0]}, {inactive}]") + sep + rest)
    code, report, _ = doctor(stack)
    bad = failing(report)
    assert code == 1 and list(bad) == ["sf0: inactive owners"], bad
    assert bad["sf0: inactive owners"]["detail"] == \
        f"fallback_owner {inactive} is inactive in the CRM"
    assert "(each member of the team)" in bad["sf0: inactive owners"]["fix"]
    stack.config_path.write_text(head.replace(
        fallback, f"    fallback_owner: [{active[0]}, {active[1]}]") + sep + rest)
    code, report, _ = doctor(stack)
    assert code == 0, failing(report)
    detail = next(c["detail"] for c in report["checks"]
                  if c["scope"] == "sf0" and c["name"] == "inactive owners")
    assert active[0] in detail and active[1] in detail
