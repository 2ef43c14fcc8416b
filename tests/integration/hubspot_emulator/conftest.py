"""Fixtures for the HubSpot emulator tests: one emulator per session on 127.0.0.1, reset
before every test, driven through its /__sandbox/ admin API and the real hubspot-api-client.

Rate limits are raised far out of the way by default; tests about limits set their own
through the admin API (a reset puts the constructor values back)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from hubspot import HubSpot
from urllib3.util.retry import Retry

from sandbox.hubspot import HubSpotEmulator, start_hubspot
from sandbox.server import EmulatorServer

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
OTHER_APP_TOKEN = "pat-another-app"  # a second private app of the portal (its own limits)
HIGH = {"burst": 1_000_000, "search_per_second": 1_000_000, "daily": 100_000_000}
LOST_STAGES = ["closedlost", "1307720556"]


@dataclass
class HS:
    server: EmulatorServer
    emulator: HubSpotEmulator
    session: requests.Session

    @property
    def url(self) -> str:
        return self.server.url

    def admin(self, method: str, path: str, body: Any = None, status: int | None = None) -> Any:
        resp = self.session.request(method, f"{self.url}/__sandbox/{path}",
                                    json=body, timeout=30)
        if status is not None:
            assert resp.status_code == status, resp.text
        else:
            assert resp.status_code < 300, resp.text
        return resp.json() if resp.content else None

    def client(self, token: str = TOKEN, *, retries: int | None = 0, **kw: Any) -> Any:
        """The real SDK pointed at the emulator; no urllib3 retries unless asked."""
        if retries is not None:
            kw["retry"] = Retry(total=retries, connect=retries, read=0, status=0,
                                respect_retry_after_header=False, raise_on_status=False)
        return HubSpot(access_token=token, host=self.url, **kw)

    def raw(self, method: str, path: str, token: str | None = TOKEN, **kw: Any
            ) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kw.pop("headers", {}))
        return self.session.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def seed(self, deals: int = 120, **kw: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.admin("POST", "seed", {"generate": {"deals": deals, **kw}})
        return result

    def fixtures(self, objects: dict[str, Any]) -> dict[str, str]:
        ids: dict[str, str] = self.admin("POST", "seed", {"objects": objects})["ids"]
        return ids

    def key_property(self, name: str = "followup_key", unique: bool = True) -> None:
        self.admin("POST", "properties", {"objectType": "tasks", "name": name,
                                          "hasUniqueValue": unique}, status=201)

    def calls(self) -> dict[str, int]:
        calls: dict[str, int] = self.admin("GET", "calls")["calls"]
        return calls


def body_of(exc: Any) -> dict[str, Any]:
    """The JSON body of an SDK ApiException."""
    data: dict[str, Any] = json.loads(exc.body)
    return data


@pytest.fixture(scope="session")
def hs_server() -> Iterator[tuple[EmulatorServer, HubSpotEmulator]]:
    server, emulator = start_hubspot(seed=7, tokens=[TOKEN, OTHER_APP_TOKEN], **HIGH)
    yield server, emulator
    server.stop()


@pytest.fixture
def hs(hs_server: tuple[EmulatorServer, HubSpotEmulator]) -> Iterator[HS]:
    server, emulator = hs_server
    with requests.Session() as session:
        helper = HS(server, emulator, session)
        helper.admin("POST", "reset")
        yield helper


@pytest.fixture
def seeded(hs: HS) -> HS:
    hs.seed(120)
    return hs
