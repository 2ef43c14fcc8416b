"""Each adapter's settings are defined once (connectors.settings); a connection in the
configuration is those settings plus the worker's own keys, handed to the adapter as it is."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.base import CallRecord
from connectors.settings import HubSpotSettings, SalesforceSettings
from worker.service.wiring import default_connector
from worker.settings.connections import HubSpotConnection, SalesforceConnection, WorkerKeys

CONNECTIONS: list[tuple[type[Any], type[Any], dict[str, Any]]] = [
    (SalesforceConnection, SalesforceSettings,
     {"kind": "salesforce", "name": "acme-sf", "timeout": "5s",
      "auth": {"username": "u@example.com", "password": "pw-123", "security_token": "tok"}}),
    (HubSpotConnection, HubSpotSettings,
     {"kind": "hubspot", "name": "acme-hs", "timeout": "5s",
      "auth": {"access_token": "pat-na1-0000"}}),
]


@pytest.mark.parametrize(("connection", "adapter", "raw"), CONNECTIONS)
def test_a_connection_is_its_adapters_settings(connection: type[Any], adapter: type[Any],
                                               raw: dict[str, Any]) -> None:
    """The configuration model composes the adapter's settings: every key it adds is the
    worker's own (or the CRM discriminator), so no CRM setting is declared twice."""
    settings = connection.model_validate(raw)
    assert isinstance(settings, adapter)
    own = set(connection.model_fields) - set(adapter.model_fields)
    assert own == set(WorkerKeys.model_fields) | {"kind"}
    for name, info in adapter.model_fields.items():
        assert connection.model_fields[name].description == info.description


@pytest.mark.parametrize(("connection", "adapter", "raw"), CONNECTIONS)
def test_wiring_hands_the_connection_to_the_adapter_uncopied(
        connection: type[Any], adapter: type[Any], raw: dict[str, Any]) -> None:
    settings = connection.model_validate(raw)
    seen: list[CallRecord] = []
    connector: Any = default_connector(settings, seen.append, retry_budget=3.0)
    try:
        assert connector.settings is settings
        assert connector.settings.timeout == 5.0
    finally:
        connector.close()


def test_adapter_settings_never_show_credentials() -> None:
    settings = SalesforceConnection.model_validate(CONNECTIONS[0][2])
    hub = HubSpotConnection.model_validate(CONNECTIONS[1][2])
    for text in (repr(settings), repr(settings.auth), repr(hub), repr(hub.auth)):
        assert "pw-123" not in text and "tok" not in text and "pat-na1" not in text
