"""`SalesforceConnector` through each login flow (jwt, client_credentials, and the legacy
password and soap), with the real simple-salesforce over HTTPS against the emulator: login, a
query, a task upsert, and a revoked session survived by a fresh login; then every refusal as
an AuthError naming the fix, with no secret in it."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.errors import AuthError
from sandbox.keys import SigningKey, make_signing_key
from tests.integration.connectors.salesforce_backend import (
    CLIENT_ID,
    CLIENT_SECRET,
    USERNAME,
    SalesforceBackend,
    start_backend,
)
from tests.integration.connectors.test_salesforce_adapter import drafts, world

FLOWS: dict[str, dict[str, Any]] = {
    "jwt": {"password": "", "security_token": None},  # + client_id, private_key_file
    "client_credentials": {"username": "", "password": "", "security_token": None,
                           "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    "password": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    "soap": {},
}
LOGIN_CALL = {"jwt": "oauth_token", "client_credentials": "oauth_token",
              "password": "oauth_token", "soap": "soap_login"}


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return make_signing_key(Path(tempfile.mkdtemp(prefix="winback-jwt-")))


@pytest.fixture(scope="module")
def sf(key: SigningKey) -> Iterator[SalesforceBackend]:
    backend, stop = start_backend(jwt_public_key=key.certificate_pem)
    yield backend
    stop()


def settings_for(flow: str, key: SigningKey, **overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"flow": flow, **FLOWS[flow]}
    if flow == "jwt":
        base.update(client_id=CLIENT_ID, private_key_file=str(key.key_path))
    return {**base, **overrides}


def refused(sf: SalesforceBackend, key: SigningKey, flow: str, **overrides: Any) -> AuthError:
    connector = sf.connector(**settings_for(flow, key, **overrides))
    with pytest.raises(AuthError) as info:
        connector.owners()
    error = info.value
    text = f"{error} {error.fix}"
    for secret in (CLIENT_SECRET, *key.key_pem.splitlines()[1:-1]):
        assert secret not in text
    return error


@pytest.mark.parametrize("flow", list(FLOWS))
def test_each_flow_logs_in_queries_and_upserts_tasks(sf: SalesforceBackend, key: SigningKey,
                                                     flow: str) -> None:
    """One login over the flow's own endpoint, then REST calls on its session."""
    data, ids = world(sf, deals=6)
    connector = sf.connector(**settings_for(flow, key))
    sf.reset_calls()
    assert connector.owners()
    batch = drafts(data, ids, 3, key_prefix=f"login-{flow}")
    first = connector.write_tasks(batch)
    again = connector.write_tasks(batch)  # upserted by key: the same tasks, none new
    assert all(r.ok and r.created for r in first)
    assert [r.crm_id for r in again] == [r.crm_id for r in first]
    assert all(r.ok and r.created is False for r in again)
    calls = sf.calls()
    # queries: the owners, then the org's TaskStatus and TaskPriority (read once, for writing)
    assert calls[LOGIN_CALL[flow]] == 1 and calls["query"] == 3
    assert calls["collections_upsert"] >= 2 and set(calls) <= {LOGIN_CALL[flow], "query",
                                                             "sobject_describe",
                                                             "collections_upsert"}


@pytest.mark.parametrize("flow", ["jwt", "client_credentials"])
def test_a_revoked_session_is_survived_by_a_fresh_login(sf: SalesforceBackend, key: SigningKey,
                                                        flow: str) -> None:
    """Sessions revoked, and the next one too as soon as it is issued: a new assertion (jwt)
    or a new token (client credentials) each time, and the call still goes through."""
    world(sf, deals=4)
    connector = sf.connector(**settings_for(flow, key))
    connector.owners()
    sf.admin("POST", "sessions/expire", {"and_next": 1})
    sf.reset_calls()
    assert connector.owners()
    assert sf.calls() == {"query": 3, "oauth_token": 2}


def test_jwt_with_the_wrong_key_names_the_certificate_fix(sf: SalesforceBackend,
                                                          key: SigningKey) -> None:
    other = make_signing_key(Path(tempfile.mkdtemp(prefix="winback-jwt-")), "other")
    error = refused(sf, key, "jwt", private_key_file=str(other.key_path))
    assert "invalid assertion" in str(error) and "jwt flow" in str(error)
    assert "certificate" in error.fix and "private_key_file" in error.fix
    assert all(line not in f"{error} {error.fix}" for line in other.key_pem.splitlines()[1:-1])


def test_jwt_without_a_registered_certificate_is_refused(sf: SalesforceBackend,
                                                         key: SigningKey) -> None:
    world(sf, deals=1)
    sf.admin("POST", "oauth/apps", {"consumer_key": "no-cert-app", "consumer_secret": "x",
                                    "preauthorized": [USERNAME]})
    error = refused(sf, key, "jwt", client_id="no-cert-app")
    assert "invalid assertion" in str(error) and "Use digital signatures" in error.fix


def test_jwt_for_a_user_not_pre_authorised_names_the_permission_set(
        sf: SalesforceBackend, key: SigningKey) -> None:
    world(sf, deals=1)
    sf.admin("POST", "oauth/apps", {"consumer_key": "strict-app", "consumer_secret": "x",
                                    "certificate": key.certificate_pem, "preauthorized": []})
    error = refused(sf, key, "jwt", client_id="strict-app")
    assert "user hasn't approved this consumer" in str(error)
    assert "pre-authorized" in error.fix and USERNAME in error.fix


def test_an_expired_assertion_points_at_the_clock(sf: SalesforceBackend,
                                                  key: SigningKey) -> None:
    """The org's clock is 10 minutes ahead of ours: the 3-minute assertion arrives expired."""
    world(sf, deals=1)
    sf.admin("POST", "clock", {"advance_seconds": 600})
    try:
        error = refused(sf, key, "jwt")
    finally:
        sf.admin("POST", "reset")
    assert "expired authorization code" in str(error) and "NTP" in error.fix


def test_an_unreadable_key_file_is_named_without_a_call(sf: SalesforceBackend,
                                                        key: SigningKey) -> None:
    sf.reset_calls()
    error = refused(sf, key, "jwt", private_key_file="/nonexistent/sf.key")
    assert "/nonexistent/sf.key" in str(error) and sf.calls() == {}


def test_client_credentials_with_a_bad_secret(sf: SalesforceBackend, key: SigningKey) -> None:
    error = refused(sf, key, "client_credentials", client_secret="Not-The-S3cret-99")
    assert "invalid client credentials" in str(error) and "consumer secret" in error.fix
    assert "Not-The-S3cret-99" not in f"{error} {error.fix}"


def test_client_credentials_without_a_run_as_user(sf: SalesforceBackend,
                                                  key: SigningKey) -> None:
    world(sf, deals=1)
    sf.admin("POST", "oauth/apps", {"consumer_key": "cc-off", "consumer_secret": "cc-secret"})
    error = refused(sf, key, "client_credentials", client_id="cc-off", client_secret="cc-secret")
    assert "no client credentials user enabled" in str(error) and "Run As" in error.fix


def test_the_key_files_text_is_registered_as_a_secret(key: SigningKey) -> None:
    """Wiring a jwt connection makes every line of its key file a redacted value in logs."""
    from worker.service.wiring import default_connector
    from worker.settings.connections import SalesforceConnection
    from worker.telemetry.logs import scrub

    settings = SalesforceConnection.model_validate({
        "name": "sf", "kind": "salesforce", "login_url": "https://127.0.0.1:9",
        "auth": {"flow": "jwt", "username": USERNAME, "client_id": CLIENT_ID,
                 "private_key_file": str(key.key_path)}})
    default_connector(settings, lambda call: None).close()
    line = key.key_pem.splitlines()[3]
    assert scrub(f"oops: {line}") == "oops: [redacted]"
    assert scrub(f"key {key.key_path}") == f"key {key.key_path}"  # the path is no secret


def test_a_key_that_is_not_pem_is_named_without_its_text(sf: SalesforceBackend,
                                                         key: SigningKey) -> None:
    sf.reset_calls()
    error = refused(sf, key, "jwt", private_key_file=None,
                    private_key="Not-A-Key-S3cret-Text-123456")
    assert "private_key is not a PEM RSA private key" in str(error) and "openssl" in error.fix
    assert "Not-A-Key-S3cret" not in f"{error} {error.fix}" and sf.calls() == {}
