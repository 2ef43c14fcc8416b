"""Logins (SOAP, OAuth password, JWT bearer) and session expiry, seen through simple-salesforce."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from simple_salesforce import Salesforce, SalesforceAuthenticationFailed, SalesforceExpiredSession

from .conftest import CLIENT_ID, CLIENT_SECRET, PASSWORD, TOKEN, USERNAME, SfEnv


def test_soap_login_returns_a_session_on_the_emulator_host(sf: SfEnv) -> None:
    """The SOAP login answer gives a session id and a serverUrl with host:port."""
    client = sf.login()
    assert client.sf_instance == sf.url.removeprefix("https://")
    assert client.session_id.startswith("00D")
    assert client.query("SELECT Id FROM User")["totalSize"] >= 1


def test_soap_login_with_a_wrong_password_is_invalid_login(sf: SfEnv) -> None:
    """A bad password raises SalesforceAuthenticationFailed with code INVALID_LOGIN."""
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        sf.login(password="nope")
    assert info.value.code == "INVALID_LOGIN"


def test_soap_login_without_the_security_token_is_refused(sf: SfEnv) -> None:
    """Password alone, from an untrusted network, asks for the security token."""
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        sf.login(token="")
    assert info.value.code == "LOGIN_MUST_USE_SECURITY_TOKEN"


def test_soap_login_of_a_deactivated_user_fails(sf: SfEnv) -> None:
    """An inactive user cannot log in."""
    sf.admin("POST", "users", {"username": "temp@sandbox.example", "password": "pw",
                               "security_token": "T", "is_active": False})
    with pytest.raises(SalesforceAuthenticationFailed):
        sf.login(username="temp@sandbox.example", password="pw", token="T")


def test_oauth_password_flow_logs_in(sf: SfEnv) -> None:
    """The OAuth username-password flow returns access_token and instance_url."""
    client = sf.oauth_login()
    assert client.sf_instance == sf.url.removeprefix("https://")
    assert client.query("SELECT Id FROM User")["totalSize"] >= 1


def test_oauth_token_endpoint_answers_the_real_shapes(sf: SfEnv) -> None:
    """Success has access_token/instance_url without a trailing slash; failures are invalid_*."""
    url = f"{sf.url}/services/oauth2/token"
    form = {"grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "username": USERNAME, "password": PASSWORD + TOKEN}
    ok = requests.post(url, data=form, verify=str(sf.ca.ca_path), timeout=10).json()
    assert ok["instance_url"] == sf.url and ok["token_type"] == "Bearer"
    assert ok["id"].endswith("/" + sf.emulator.default_user_id)
    bad = requests.post(url, data={**form, "password": "x"}, verify=str(sf.ca.ca_path),
                        timeout=10)
    assert bad.status_code == 400
    assert bad.json() == {"error": "invalid_grant", "error_description": "authentication failure"}
    wrong_app = requests.post(url, data={**form, "client_id": "other"},
                              verify=str(sf.ca.ca_path), timeout=10)
    assert wrong_app.json()["error"] == "invalid_client_id"


def test_jwt_bearer_flow_logs_in_with_the_registered_certificate(sf: SfEnv) -> None:
    """A JWT signed with the connected app's key logs in; another key is refused."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    sf.admin("POST", "oauth/apps", {"consumer_key": "jwt-app", "consumer_secret": "s",
                                    "jwt_public_key": public.decode(),
                                    "preauthorized": [USERNAME]})
    client = Salesforce(username=USERNAME, consumer_key="jwt-app", privatekey=pem,
                        session=sf.session(), version="68.0")
    assert client.query("SELECT Id FROM User")["totalSize"] >= 1
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({"iss": "jwt-app", "sub": USERNAME, "aud": "https://login.salesforce.com",
                         "exp": int((datetime.now(UTC) + timedelta(minutes=3)).timestamp())},
                        other, algorithm="RS256")
    refused = requests.post(f"{sf.url}/services/oauth2/token", verify=str(sf.ca.ca_path),
                            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                  "assertion": forged}, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"


def test_expired_session_is_refreshed_by_a_login_mode_client(sf: SfEnv) -> None:
    """After an admin expires every session, a login-mode client re-logs in and carries on."""
    client = sf.login()
    old = client.session_id
    sf.admin("POST", "sessions/expire")
    assert client.query("SELECT Id FROM User")["totalSize"] >= 1
    assert client.session_id != old
    created = client.Task.create({"Subject": "after refresh"})
    assert created["success"] is True


def test_oauth_client_logs_in_again_after_expiry(sf: SfEnv) -> None:
    """An OAuth password-flow client also refreshes on INVALID_SESSION_ID."""
    client = sf.oauth_login()
    old = client.session_id
    sf.admin("POST", "sessions/expire", {"username": USERNAME})
    assert client.query("SELECT Id FROM User")["totalSize"] >= 1
    assert client.session_id != old
    assert sf.admin("GET", "calls")["calls"]["oauth_token"] == 2


def test_expired_session_in_direct_mode_raises_expired_session(sf: SfEnv) -> None:
    """With a bare session id there is no refresh: 401 INVALID_SESSION_ID surfaces."""
    token = sf.login().session_id
    client = sf.direct(token)
    client.query("SELECT Id FROM User")
    sf.admin("POST", "sessions/expire")
    with pytest.raises(SalesforceExpiredSession) as info:
        client.query("SELECT Id FROM User")
    assert info.value.status == 401
    assert info.value.content[0]["errorCode"] == "INVALID_SESSION_ID"
    assert info.value.content[0]["message"] == "Session expired or invalid"


def test_session_times_out_after_idle_ttl_on_the_emulator_clock(make_sf: object) -> None:
    """Advancing the clock past the session TTL expires an idle session."""
    env: SfEnv = make_sf(session_ttl_seconds=60)  # type: ignore[operator]
    client = env.direct(env.login().session_id)
    client.query("SELECT Id FROM User")
    env.admin("POST", "clock", {"advance_seconds": 30})
    client.query("SELECT Id FROM User")  # used within the TTL: still alive, and renewed
    env.admin("POST", "clock", {"advance_seconds": 61})
    with pytest.raises(SalesforceExpiredSession):
        client.query("SELECT Id FROM User")


def test_deactivating_the_api_user_kills_its_sessions(sf: SfEnv) -> None:
    """Sessions of a user who is deactivated stop working."""
    sf.admin("POST", "users", {"username": "second@sandbox.example", "password": "pw",
                               "security_token": "T"})
    client = sf.direct(sf.login(username="second@sandbox.example", password="pw",
                                token="T").session_id)
    user_id = client.query("SELECT Id FROM User WHERE Username = 'second@sandbox.example'")[
        "records"][0]["Id"]
    sf.admin("PATCH", f"records/User/{user_id}", {"IsActive": False})
    with pytest.raises(SalesforceExpiredSession):
        client.query("SELECT Id FROM User")


def test_missing_or_unknown_bearer_token_is_401(sf: SfEnv) -> None:
    """Calls without a valid session get the JSON array body with INVALID_SESSION_ID."""
    response = requests.get(f"{sf.url}/services/data/v68.0/limits/", verify=str(sf.ca.ca_path),
                            headers={"Authorization": "Bearer nope"}, timeout=10)
    assert response.status_code == 401
    assert response.json() == [{"message": "Session expired or invalid",
                                "errorCode": "INVALID_SESSION_ID"}]


def test_sandbox_domain_test_logs_in_too(sf: SfEnv) -> None:
    """domain='test' (test.salesforce.com) works like production login."""
    client = sf.login(domain="test")
    assert client.query("SELECT Id FROM User")["totalSize"] >= 1


def test_soap_login_is_not_offered_from_api_65(sf: SfEnv) -> None:
    """SOAP login() at API 65.0 or later is INVALID_OPERATION, as in a current org."""
    with pytest.raises(SalesforceAuthenticationFailed) as info:
        sf.login(version="68.0")
    assert info.value.code == "INVALID_OPERATION"
    assert "not available in the API version specified (68.0)" in str(info.value.auth_message)


def test_the_identity_url_points_at_the_emulator_and_is_served(sf: SfEnv) -> None:
    """The token answer's `id` is the emulator's own /id/{org}/{user}; a GET with the access
    token (header or oauth_token parameter) answers the identity service's fields, its URLs on
    the emulator; a bad token is 403 Bad_OAuth_Token."""
    form = {"grant_type": "password", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
            "username": USERNAME, "password": PASSWORD + TOKEN}
    verify = str(sf.ca.ca_path)
    token = requests.post(f"{sf.url}/services/oauth2/token", data=form, verify=verify,
                          timeout=10).json()
    user_id = sf.emulator.default_user_id
    assert token["id"] == f"{sf.url}/id/{sf.emulator.org_id}/{user_id}"
    got = requests.get(token["id"], headers={"Authorization": f"Bearer {token['access_token']}"},
                       verify=verify, timeout=10)
    assert got.status_code == 200, got.text
    info = got.json()
    assert info["id"] == token["id"] and info["user_id"] == user_id
    assert info["organization_id"] == sf.emulator.org_id and info["username"] == USERNAME
    assert info["active"] is True and info["user_type"] == "STANDARD"
    assert info["asserted_user"] is True
    assert all(url.startswith(sf.url) for url in info["urls"].values())
    assert info["urls"]["rest"] == f"{sf.url}/services/data/v{{version}}/"
    by_param = requests.get(token["id"], params={"oauth_token": token["access_token"],
                                                 "version": "62.0"}, verify=verify, timeout=10)
    assert by_param.json()["urls"]["rest"] == f"{sf.url}/services/data/v62.0/"
    bad = requests.get(token["id"], headers={"Authorization": "Bearer nope"}, verify=verify,
                       timeout=10)
    assert (bad.status_code, bad.text) == (403, "Bad_OAuth_Token")
