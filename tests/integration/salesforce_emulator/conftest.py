"""Fixtures: the Salesforce emulator over HTTPS on 127.0.0.1 and the real simple-salesforce client.

`sf` is a shared emulator, reset before each test; `make_sf(**options)` starts a dedicated
one. Clients log in through `LoginRedirect`, a `requests.Session` that sends the fixed login
hosts to the emulator (reference §6), so simple-salesforce itself runs unmodified.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce

from sandbox.salesforce import SalesforceEmulator, start_salesforce
from sandbox.server import EmulatorServer
from sandbox.tls import TestCA

USERNAME = "winback@sandbox.example"
PASSWORD = "sandbox-password"
TOKEN = "SANDBOXTOKEN"
CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"
SOAP_VERSION = "64.0"  # SOAP login() is refused from API 65.0 on
MY_DOMAIN = "https://acme.my.salesforce.com"  # the emulated org's My Domain (domain="acme.my")
LOGIN_HOSTS = ("https://login.salesforce.com", "https://test.salesforce.com", MY_DOMAIN)


class LoginRedirect(requests.Session):
    """Sends login.salesforce.com / test.salesforce.com / the My Domain to the emulator;
    everything else (the instance URL the login returned) is already 127.0.0.1. Refuses any
    other host."""

    def __init__(self, base_url: str, ca_path: Path, timeout: Any = None) -> None:
        super().__init__()
        self.base_url = base_url
        self.verify = str(ca_path)
        self.trust_env = False
        self.default_timeout = timeout
        self.urls: list[str] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any,  # type: ignore[override]
                **kwargs: Any) -> requests.Response:
        text = url.decode() if isinstance(url, bytes) else url
        for host in LOGIN_HOSTS:
            if text.startswith(host):
                text = self.base_url + text[len(host):]
        assert text.startswith("https://127.0.0.1:"), f"refusing to leave 127.0.0.1: {text}"
        self.urls.append(text)
        if self.default_timeout is not None:
            kwargs.setdefault("timeout", self.default_timeout)
        return super().request(method, text, *args, **kwargs)


@dataclass
class SfEnv:
    server: EmulatorServer
    ca: TestCA
    emulator: SalesforceEmulator
    sessions: list[requests.Session] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.server.url

    def session(self, timeout: Any = None) -> LoginRedirect:
        session = LoginRedirect(self.url, self.ca.ca_path, timeout)
        self.sessions.append(session)
        return session

    def admin(self, method: str, path: str, body: Any = None, *, expect: int | None = None,
              **kwargs: Any) -> Any:
        response = requests.request(method, f"{self.url}/__sandbox/{path}", json=body,
                                    verify=str(self.ca.ca_path), timeout=30, **kwargs)
        if expect is not None:
            assert response.status_code == expect, response.text
        else:
            assert response.status_code < 400, response.text
        return response.json() if response.content else None

    def login(self, *, username: str = USERNAME, password: str = PASSWORD, token: str = TOKEN,
              timeout: Any = None, **kwargs: Any) -> Salesforce:
        """SOAP username/password/security-token login, as simple-salesforce does it: at API
        64.0, the last version that has login() (the REST calls use it too)."""
        kwargs.setdefault("version", SOAP_VERSION)
        return Salesforce(username=username, password=password, security_token=token,
                          session=self.session(timeout), **kwargs)

    def oauth_login(self, **kwargs: Any) -> Salesforce:
        return Salesforce(username=USERNAME, password=PASSWORD + TOKEN, consumer_key=CLIENT_ID,
                          consumer_secret=CLIENT_SECRET, session=self.session(), version="68.0",
                          **kwargs)

    def direct(self, session_id: str) -> Salesforce:
        return Salesforce(instance_url=self.url, session_id=session_id, session=self.session(),
                          version="68.0")

    def raw(self, method: str, path: str, sf: Salesforce, **kwargs: Any) -> requests.Response:
        """A request with the client's session, bypassing simple-salesforce's error mapping."""
        headers = {"Authorization": f"Bearer {sf.session_id}", **kwargs.pop("headers", {})}
        return requests.request(method, f"{self.url}{path}", headers=headers,
                                verify=str(self.ca.ca_path), timeout=30, **kwargs)

    def seed(self, records: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
        """Load fixtures; returns the ref -> id map."""
        refs: dict[str, str] = self.admin("POST", "seed", {"records": records})["refs"]
        return refs

    def close(self) -> None:
        for session in self.sessions:
            session.close()
        self.server.stop()


def _start(directory: Path, **options: Any) -> SfEnv:
    server, ca, emulator = start_salesforce(ca_dir=directory, **options)
    return SfEnv(server, ca, emulator)


@pytest.fixture(scope="session")
def _shared_sf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SfEnv]:
    env = _start(tmp_path_factory.mktemp("sf-ca"))
    yield env
    env.close()


@pytest.fixture
def sf(_shared_sf: SfEnv) -> SfEnv:
    """The shared emulator, reset to an empty org (just the integration user)."""
    _shared_sf.admin("POST", "reset")
    return _shared_sf


@pytest.fixture
def make_sf(tmp_path: Path) -> Iterator[Callable[..., SfEnv]]:
    started: list[SfEnv] = []

    def make(**options: Any) -> SfEnv:
        env = _start(tmp_path / f"ca{len(started)}", **options)
        started.append(env)
        return env

    yield make
    for env in started:
        env.close()


@pytest.fixture
def org(sf: SfEnv) -> dict[str, str]:
    """A small org: two owners (one inactive), an account, contacts, a lead and deals."""
    return sf.seed({
        "User": [
            {"ref": "rep", "FirstName": "Ada", "LastName": "Rep", "Email": "ada@seller.example",
             "IsActive": True},
            {"ref": "gone", "FirstName": "Old", "LastName": "Rep", "Email": "old@seller.example",
             "IsActive": False},
        ],
        "Account": [{"ref": "acme", "Name": "Acme Corp", "OwnerId": "@rep"}],
        "Contact": [
            {"ref": "c1", "AccountId": "@acme", "FirstName": "Cy", "LastName": "Buyer",
             "Email": "cy@acme.example"},
            {"ref": "c2", "AccountId": "@acme", "FirstName": "Di", "LastName": "User",
             "Email": "di@acme.example"},
        ],
        "Lead": [{"ref": "lead", "LastName": "Prospect", "Company": "Newco"}],
        "Opportunity": [
            {"ref": "lost", "Name": "Acme - Platform", "AccountId": "@acme", "OwnerId": "@rep",
             "StageName": "Closed Lost", "CloseDate": "2024-05-31", "Amount": 12000,
             "Loss_Reason__c": "Price"},
            {"ref": "lost_gone", "Name": "Acme - Pilot", "AccountId": "@acme",
             "OwnerId": "@gone", "StageName": "Closed - No Budget", "CloseDate": "2024-04-30"},
            {"ref": "won", "Name": "Acme - Expansion", "AccountId": "@acme", "OwnerId": "@rep",
             "StageName": "Closed Won", "CloseDate": "2024-03-31", "Amount": 5000},
            {"ref": "open", "Name": "Acme - Renewal", "AccountId": "@acme", "OwnerId": "@rep",
             "StageName": "Prospecting", "CloseDate": "2024-09-30"},
        ],
        "OpportunityContactRole": [
            {"OpportunityId": "@lost", "ContactId": "@c1", "Role": "Decision Maker",
             "IsPrimary": True},
            {"OpportunityId": "@lost", "ContactId": "@c2", "Role": "Evaluator"},
        ],
    })
