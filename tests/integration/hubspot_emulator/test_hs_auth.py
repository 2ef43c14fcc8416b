"""Private-app tokens and the OAuth refresh flow, read the way production code reads them."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from hubspot import HubSpot
from hubspot.crm.deals.exceptions import UnauthorizedException
from hubspot.oauth import ApiException as OAuthApiException

from sandbox.hubspot import start_hubspot
from sandbox.hubspot.auth import SANDBOX_TOKEN

from .conftest import HS, body_of

CLIENT = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret"}


def _refresh(hs: HS, refresh_token: str = "sandbox-refresh-token") -> Any:
    api = HubSpot(host=hs.url)  # no access token: the token call sends no Authorization
    return api.oauth.tokens_api.create(grant_type="refresh_token", refresh_token=refresh_token,
                                       **CLIENT)


def test_missing_and_unknown_tokens_are_invalid_authentication(hs: HS) -> None:
    assert hs.raw("GET", "/crm/v3/owners/", token=None).json()["category"] == \
        "INVALID_AUTHENTICATION"
    with pytest.raises(UnauthorizedException) as info:
        hs.client("not-a-private-app-token").crm.deals.basic_api.get_page()
    assert info.value.status == 401
    assert body_of(info.value)["category"] == "INVALID_AUTHENTICATION"
    with pytest.raises(UnauthorizedException) as info:  # strict: an unregistered pat- token
        hs.client("pat-eu1-anything").crm.deals.basic_api.get_page()
    assert info.value.status == 401
    assert body_of(info.value)["category"] == "INVALID_AUTHENTICATION"


def test_the_published_sandbox_token_is_the_default_and_others_can_be_registered() -> None:
    """By default only `winback sandbox`'s published token is accepted; the admin route
    registers more (a bad body says what it needs)."""
    server, _ = start_hubspot()
    try:
        HubSpot(access_token=SANDBOX_TOKEN, host=server.url).crm.deals.basic_api.get_page()
        newcomer = HubSpot(access_token="pat-na1-newcomer", host=server.url)
        with pytest.raises(UnauthorizedException):
            newcomer.crm.deals.basic_api.get_page()
        admin = f"{server.url}/__sandbox/tokens/register"
        bad = requests.post(admin, json={"tokens": "pat-na1-newcomer"}, timeout=10)
        assert bad.status_code == 400 and "a list of non-empty strings" in bad.json()["message"]
        ok = requests.post(admin, json={"tokens": ["pat-na1-newcomer"]}, timeout=10)
        assert ok.status_code == 200
        newcomer.crm.deals.basic_api.get_page()
    finally:
        server.stop()


def test_static_token_option() -> None:
    server, _ = start_hubspot(tokens=["pat-only-this-one"])
    try:
        api = HubSpot(access_token="pat-only-this-one", host=server.url)
        api.crm.deals.basic_api.get_page()
        with pytest.raises(UnauthorizedException):
            HubSpot(access_token="pat-another", host=server.url).crm.deals.basic_api.get_page()
    finally:
        server.stop()


def test_oauth_refresh_expiry_and_refresh_again(hs: HS) -> None:
    token = _refresh(hs)
    assert token.token_type == "bearer" and token.expires_in == 1800
    assert token.refresh_token == "sandbox-refresh-token" and len(token.access_token) > 100
    deals = hs.client(token.access_token).crm.deals.basic_api  # cached API object
    deals.get_page()
    resp = hs.raw("GET", "/crm/v3/objects/deals", token=token.access_token)
    assert "X-HubSpot-RateLimit-Max" in resp.headers
    assert "X-HubSpot-RateLimit-Daily" not in resp.headers  # OAuth calls: no daily headers
    hs.admin("POST", "tokens/expire")
    with pytest.raises(UnauthorizedException) as info:
        deals.get_page()
    body = body_of(info.value)
    assert body["category"] == "EXPIRED_AUTHENTICATION"
    assert "expired" in body["message"] and body["context"]["expire time"]
    fresh = _refresh(hs)
    assert fresh.access_token != token.access_token
    deals.api_client.configuration.access_token = fresh.access_token
    assert deals.get_page().results == []


def test_token_ttl_runs_on_the_emulator_clock(hs: HS) -> None:
    hs.admin("POST", "tokens/ttl", {"seconds": 60})
    token = _refresh(hs)
    assert token.expires_in == 60
    api = hs.client(token.access_token).crm.deals.basic_api
    api.get_page()
    hs.admin("POST", "clock", {"advance_seconds": 61})
    with pytest.raises(UnauthorizedException) as info:
        api.get_page()
    assert body_of(info.value)["category"] == "EXPIRED_AUTHENTICATION"


def test_bad_refresh_requests(hs: HS) -> None:
    with pytest.raises(OAuthApiException) as info:
        _refresh(hs, "stolen-token")
    assert info.value.status == 400 and body_of(info.value)["status"] == "BAD_REFRESH_TOKEN"
    with pytest.raises(OAuthApiException) as info:
        HubSpot(host=hs.url).oauth.tokens_api.create(
            grant_type="refresh_token", refresh_token="sandbox-refresh-token",
            client_id="sandbox-client-id", client_secret="wrong")
    assert body_of(info.value)["status"] == "BAD_CLIENT_SECRET"
    resp = hs.raw("POST", "/oauth/v1/token", token=None, data={
        "grant_type": "authorization_code", "code": "sandbox-auth-code",
        "redirect_uri": "http://127.0.0.1/cb", **CLIENT})
    assert resp.status_code == 200 and resp.json()["access_token"]
    info_resp = hs.raw("GET", f"/oauth/v1/access-tokens/{resp.json()['access_token']}",
                       token=None)
    assert info_resp.json()["hub_id"] > 0
