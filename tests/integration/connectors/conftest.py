"""One backend per CRM for the contract tests: the in-memory fake, and the real SDKs talking to
the Salesforce and HubSpot emulators over HTTP(S) on 127.0.0.1."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest

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
