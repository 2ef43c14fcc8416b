"""Salesforce logins end to end (`winback doctor` and `winback sync` as processes, against the
sandbox): doctor reports the flow in use, warns on the legacy ones and checks the API version;
each refused login is exit 1 with its fix; no secret (client secret, private key) is printed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sandbox.keys import make_signing_key
from tests.reliability.harness import SECRET_SF_CLIENT, SECRETS, Stack


def run(stack: Stack, *args: str, **env: str) -> tuple[int, str]:
    proc = subprocess.run(stack.command(*args, str(stack.config_path)),
                          env={**stack.env(), **env}, capture_output=True, text=True,
                          timeout=120, cwd=stack.tmp)
    return proc.returncode, proc.stdout + proc.stderr


def doctor(stack: Stack, **env: str) -> tuple[int, dict[str, dict[str, Any]], str]:
    code, out = run(stack, "doctor", "--format", "json", **env)
    report = json.loads(out[:out.rindex("}") + 1])
    return code, {f"{c['scope']}: {c['name']}": c for c in report["checks"]}, out


def assert_no_secret(stack: Stack, text: str) -> None:
    key_lines = [line for line in stack.box.signing_key.key_pem.splitlines()
                 if not line.startswith("-----")]
    for secret in (*SECRETS, *key_lines):
        assert secret not in text, secret[:8]


def start(tmp_path: Path, flow: str) -> Stack:
    return Stack(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}").start(deals=5, hubspot=0,
                                                                         sf_flow=flow)


@pytest.fixture
def jwt_stack(tmp_path: Path) -> Any:
    stack = start(tmp_path, "jwt")
    yield stack
    stack.stop()


def test_doctor_on_jwt_reports_the_flow_and_the_api_version(jwt_stack: Stack) -> None:
    code, checks, out = doctor(jwt_stack)
    assert code == 0, out
    flow = checks["sf0: login flow"]
    assert flow["ok"] and not flow["warn"] and flow["detail"].startswith("jwt: OAuth 2.0 JWT")
    version = checks["sf0: API version"]
    assert version["ok"] and version["detail"] == "68.0 is offered by the org"
    assert checks["sf0: login"]["ok"]
    assert_no_secret(jwt_stack, out)


def test_doctor_fails_an_api_version_the_org_does_not_offer(jwt_stack: Stack) -> None:
    text = jwt_stack.config_path.read_text()
    jwt_stack.config_path.write_text(text.replace("    task_key_field:",
                                                  '    api_version: "70.0"\n    task_key_field:'))
    code, checks, _ = doctor(jwt_stack)
    assert code == 1
    version = checks["sf0: API version"]
    assert not version["ok"] and "70.0 is not offered" in version["detail"]
    assert 'api_version: "68.0"' in version["fix"]
    assert [k for k, c in checks.items() if not c["ok"]] == ["sf0: API version"]


def test_doctor_and_sync_name_the_fix_for_a_wrong_key(jwt_stack: Stack) -> None:
    other = make_signing_key(jwt_stack.tmp / "other", "other")
    code, checks, out = doctor(jwt_stack, SF_PRIVATE_KEY_FILE=str(other.key_path))
    assert code == 1
    login = checks["sf0: login"]
    assert "invalid assertion" in login["detail"] and "certificate" in login["fix"]
    assert checks["sf0: login flow"]["ok"]  # still reported
    sync_code, sync_out = run(jwt_stack, "sync", SF_PRIVATE_KEY_FILE=str(other.key_path))
    assert sync_code == 1 and "invalid assertion" in sync_out
    for text in (out, sync_out):
        assert_no_secret(jwt_stack, text)
        assert all(line not in text for line in other.key_pem.splitlines()[1:-1])


def test_doctor_and_sync_for_a_user_not_pre_authorised(jwt_stack: Stack) -> None:
    jwt_stack.box.admin("salesforce", "POST", "oauth/apps", {
        "consumer_key": "sandbox-client-id", "consumer_secret": SECRET_SF_CLIENT,
        "certificate": jwt_stack.box.signing_key.certificate_pem, "preauthorized": []})
    code, checks, out = doctor(jwt_stack)
    assert code == 1 and "permission set" in checks["sf0: login"]["fix"]
    sync_code, sync_out = run(jwt_stack, "sync")
    assert sync_code == 1 and "user hasn't approved this consumer" in sync_out
    assert_no_secret(jwt_stack, out + sync_out)


def test_legacy_soap_passes_doctor_with_a_warning(tmp_path: Path) -> None:
    stack = start(tmp_path, "soap")
    try:
        code, checks, out = doctor(stack)
        text_code, text = run(stack, "doctor")
    finally:
        stack.stop()
    assert code == 0 and text_code == 0, out
    flow = checks["sf0: login flow"]
    assert flow["ok"] and flow["warn"] and "Summer '27" in flow["detail"]
    assert "flow: jwt" in flow["fix"]
    assert "warn sf0: login flow: soap" in text and "fix: move to `flow: jwt`" in text


def test_client_credentials_with_a_bad_secret(tmp_path: Path) -> None:
    stack = start(tmp_path, "client_credentials")
    try:
        good, checks, _ = doctor(stack)
        code, bad, out = doctor(stack, SF_CLIENT_SECRET="Wrong-S3cret-0000")
        sync_code, sync_out = run(stack, "sync", SF_CLIENT_SECRET="Wrong-S3cret-0000")
    finally:
        stack.stop()
    assert good == 0 and checks["sf0: login flow"]["detail"].startswith("client_credentials")
    assert code == 1 and "consumer secret" in bad["sf0: login"]["fix"]
    assert sync_code == 1 and "invalid client credentials" in sync_out
    for text in (out, sync_out):
        assert "Wrong-S3cret-0000" not in text and SECRET_SF_CLIENT not in text


def test_no_certificate_then_an_expired_assertion(jwt_stack: Stack) -> None:
    """The app holds no certificate: exit 1 naming the upload; then the certificate is back
    but the org's clock runs 10 minutes ahead: the assertion arrives expired, exit 1 naming
    the clock."""
    box = jwt_stack.box
    app = {"consumer_key": "sandbox-client-id", "consumer_secret": SECRET_SF_CLIENT,
           "preauthorized": ["winback@sandbox.example"]}
    box.admin("salesforce", "POST", "oauth/apps", app)
    code, checks, out = doctor(jwt_stack)
    sync_code, sync_out = run(jwt_stack, "sync")
    assert code == 1 and "Use digital signatures" in checks["sf0: login"]["fix"]
    assert sync_code == 1 and "invalid assertion" in sync_out
    box.admin("salesforce", "POST", "oauth/apps",
              {**app, "certificate": box.signing_key.certificate_pem})
    box.admin("salesforce", "POST", "clock", {"advance_seconds": 600})
    late, late_checks, late_out = doctor(jwt_stack)
    late_sync, late_sync_out = run(jwt_stack, "sync")
    assert late == 1 and "NTP" in late_checks["sf0: login"]["fix"]
    assert late_sync == 1 and "expired authorization code" in late_sync_out
    assert_no_secret(jwt_stack, out + sync_out + late_out + late_sync_out)


def test_sync_on_jwt_survives_revoked_sessions_with_fresh_assertions(jwt_stack: Stack) -> None:
    """The first two sessions the org issues are revoked at birth: `sync` signs a new
    assertion each time and the tick succeeds (exit 0), tasks written, no secret logged."""
    jwt_stack.box.admin("salesforce", "POST", "sessions/expire", {"and_next": 2})
    code, out = run(jwt_stack, "sync")
    assert code == 0, out[-2000:]
    assert out.count('"crm.relogin"') == 2 and "sf0: ok" in out
    assert jwt_stack.box.tasks("salesforce")
    assert_no_secret(jwt_stack, out)
