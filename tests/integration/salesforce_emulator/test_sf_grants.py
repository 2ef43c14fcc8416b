"""The emulator's JWT bearer and client credentials grants, as Salesforce answers them: the
real simple-salesforce logs in with its own JWT and client-credentials modes, and every
refusal is the 400 body Salesforce sends (error + error_description)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from simple_salesforce import Salesforce, SalesforceAuthenticationFailed

from sandbox.keys import SigningKey, make_signing_key

from .conftest import CLIENT_ID, CLIENT_SECRET, USERNAME, SfEnv

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@pytest.fixture
def key(tmp_path: Path) -> SigningKey:
    return make_signing_key(tmp_path)


@pytest.fixture
def app(sf: SfEnv, key: SigningKey) -> str:
    """The sandbox app with the key's certificate uploaded, USERNAME pre-authorised and as
    the client credentials Run As user."""
    sf.admin("POST", "oauth/apps", {"consumer_key": CLIENT_ID, "consumer_secret": CLIENT_SECRET,
                                    "certificate": key.certificate_pem,
                                    "preauthorized": [USERNAME], "run_as": USERNAME})
    return CLIENT_ID


def assertion(key: SigningKey, **claims: Any) -> str:
    body = {"iss": CLIENT_ID, "sub": USERNAME, "aud": "https://login.salesforce.com",
            "exp": int((datetime.now(UTC) + timedelta(minutes=3)).timestamp()), **claims}
    return jwt.encode(body, key.key_pem, algorithm="RS256")


def token(sf: SfEnv, form: dict[str, str], **kwargs: Any) -> requests.Response:
    return requests.post(f"{sf.url}/services/oauth2/token", data=form,
                         verify=str(sf.ca.ca_path), timeout=10, **kwargs)


def refusal(response: requests.Response) -> tuple[str, str]:
    assert response.status_code == 400, response.text
    body = response.json()
    return body["error"], body["error_description"]


def test_simple_salesforce_jwt_mode_logs_in_and_writes(sf: SfEnv, app: str,
                                                       key: SigningKey) -> None:
    """simple-salesforce's own JWT mode (string exp, aud login.salesforce.com) is accepted."""
    client = Salesforce(username=USERNAME, consumer_key=app, privatekey_file=str(key.key_path),
                        session=sf.session(), version="68.0")
    assert client.query("SELECT Id FROM User")["totalSize"] >= 1
    assert client.Task.create({"Subject": "jwt"})["success"] is True


def test_simple_salesforce_client_credentials_mode_on_my_domain(sf: SfEnv, app: str) -> None:
    """domain='acme.my' posts grant_type=client_credentials with Basic auth to the My Domain;
    the token is the Run As user's."""
    client = Salesforce(consumer_key=app, consumer_secret=CLIENT_SECRET, domain="acme.my",
                        session=sf.session(), version="68.0")
    me = client.query(f"SELECT Id FROM User WHERE Username = '{USERNAME}'")["records"][0]["Id"]
    created = client.Task.create({"Subject": "client credentials"})
    task = client.Task.get(created["id"])
    assert task["CreatedById"] == me


def test_a_jwt_client_logs_in_again_with_a_fresh_assertion_after_revocation(
        sf: SfEnv, app: str, key: SigningKey) -> None:
    client = Salesforce(username=USERNAME, consumer_key=app, privatekey=key.key_pem,
                        session=sf.session(), version="68.0")
    old = client.session_id
    sf.admin("POST", "sessions/expire")
    assert client.query("SELECT Id FROM User")["totalSize"] >= 1
    assert client.session_id != old
    assert sf.admin("GET", "calls")["calls"]["oauth_token"] == 2


def test_jwt_refusals_use_salesforce_descriptions(sf: SfEnv, app: str, key: SigningKey,
                                                  tmp_path: Path) -> None:
    other = make_signing_key(tmp_path / "other", "other")
    cases = {
        "wrong key": jwt.encode({"iss": CLIENT_ID, "sub": USERNAME,
                                 "aud": "https://login.salesforce.com",
                                 "exp": int(datetime.now(UTC).timestamp()) + 180},
                                other.key_pem, algorithm="RS256"),
        "garbage": "not-a-jwt",
        "expired": assertion(key, exp=int(datetime.now(UTC).timestamp()) - 5),
        "audience": assertion(key, aud="https://login.example.com"),
        "unknown user": assertion(key, sub="nobody@sandbox.example"),
    }
    answers = {name: refusal(token(sf, {"grant_type": JWT_GRANT, "assertion": a}))
               for name, a in cases.items()}
    assert answers == {
        "wrong key": ("invalid_grant", "invalid assertion"),
        "garbage": ("invalid_grant", "invalid assertion"),
        "expired": ("invalid_grant", "expired authorization code"),
        "audience": ("invalid_grant", "audience is invalid"),
        "unknown user": ("invalid_grant", "user hasn't approved this consumer"),
    }
    unknown_app = assertion(key, iss="nobody")
    assert refusal(token(sf, {"grant_type": JWT_GRANT, "assertion": unknown_app})) == (
        "invalid_client_id", "client identifier invalid")


def test_jwt_needs_the_certificate_and_a_pre_authorised_user(sf: SfEnv, key: SigningKey
                                                             ) -> None:
    sf.admin("POST", "oauth/apps", {"consumer_key": "no-cert", "consumer_secret": "s",
                                    "preauthorized": [USERNAME]})
    sf.admin("POST", "oauth/apps", {"consumer_key": "self-authorize", "consumer_secret": "s",
                                    "certificate": key.certificate_pem})
    no_cert = refusal(token(sf, {"grant_type": JWT_GRANT,
                                 "assertion": assertion(key, iss="no-cert")}))
    not_approved = refusal(token(sf, {"grant_type": JWT_GRANT,
                                      "assertion": assertion(key, iss="self-authorize")}))
    assert no_cert == ("invalid_grant", "invalid assertion")
    assert not_approved == ("invalid_grant", "user hasn't approved this consumer")
    with pytest.raises(SalesforceAuthenticationFailed), pytest.warns(UserWarning):
        Salesforce(username=USERNAME, consumer_key="self-authorize", privatekey=key.key_pem,
                   session=sf.session(), version="68.0")


def test_jwt_audience_may_be_the_orgs_own_host(sf: SfEnv, app: str, key: SigningKey) -> None:
    """The org's My Domain (here: the emulator's URL) is an accepted audience too."""
    answer = token(sf, {"grant_type": JWT_GRANT, "assertion": assertion(key, aud=sf.url)})
    assert answer.status_code == 200 and answer.json()["instance_url"] == sf.url


def test_client_credentials_refusals(sf: SfEnv, app: str) -> None:
    def basic(client_id: str, secret: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(
            f"{client_id}:{secret}".encode()).decode()}

    grant = {"grant_type": "client_credentials"}
    shared = token(sf, grant, headers={**basic(app, CLIENT_SECRET),
                                       "Host": "login.salesforce.com"})
    assert refusal(shared) == ("invalid_grant", "request not supported on this domain")
    assert refusal(token(sf, grant, headers=basic(app, "wrong"))) == (
        "invalid_client", "invalid client credentials")
    assert refusal(token(sf, grant, headers=basic("nobody", "x"))) == (
        "invalid_client_id", "client identifier invalid")
    sf.admin("POST", "oauth/apps", {"consumer_key": "no-run-as", "consumer_secret": "s2"})
    assert refusal(token(sf, grant, headers=basic("no-run-as", "s2"))) == (
        "invalid_grant", "no client credentials user enabled")
    form = token(sf, {**grant, "client_id": app, "client_secret": CLIENT_SECRET})
    assert form.status_code == 200  # the key and secret as form fields work too
