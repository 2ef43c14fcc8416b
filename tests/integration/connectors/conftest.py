"""One backend per CRM for the contract tests: the in-memory fake, and the real SDKs talking to
the Salesforce and HubSpot emulators over HTTP(S) on 127.0.0.1."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.hubspot import HubSpotEmulator, start_hubspot
from sandbox.server import EmulatorServer
from tests.integration.connectors.hubspot_backend import HIGH_LIMITS, HubSpotBackend
from tests.integration.connectors.memory_backend import MemoryBackend

BACKENDS = ["memory", "salesforce", "hubspot"]


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryBackend()
        return
    module = importlib.import_module(f"tests.integration.connectors.{request.param}_backend")
    started, stop = module.start_backend()
    try:
        yield started
    finally:
        stop()


@pytest.fixture(scope="module")
def hubspot_server() -> Iterator[tuple[EmulatorServer, HubSpotEmulator]]:
    """The HubSpot emulator for one test module, with limits that never slow a test."""
    started, emulator = start_hubspot(seed=3, **HIGH_LIMITS)
    yield started, emulator
    started.stop()


@pytest.fixture
def hs(hubspot_server: tuple[EmulatorServer, HubSpotEmulator]) -> Iterator[HubSpotBackend]:
    """A backend over an emptied emulator (data, limits, faults, clock), static token."""
    started, emulator = hubspot_server
    backend = HubSpotBackend(started.url, emulator=emulator, auth="static")
    backend.admin("POST", "reset")
    yield backend
    backend.close()
