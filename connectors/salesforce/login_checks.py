"""Set-up checks about the login itself: the flow in use (legacy ones warned about, with the
retirement facts) and whether the org offers the configured API version (GET /services/data/,
which lists the versions an org serves, oldest first)."""

from __future__ import annotations

from typing import Any

from simple_salesforce.api import Salesforce

from connectors.base import SalesforceSettings, SetupCheck
from connectors.errors import ConnectorError
from connectors.salesforce_flows import DESCRIPTIONS, LEGACY_FLOWS, MOVE_TO_JWT, RETIREMENT


def flow_check(s: SalesforceSettings) -> SetupCheck:
    flow = s.login_flow
    detail = f"{flow}: {DESCRIPTIONS.get(flow, flow)}"
    if s.auth.flow is None:
        detail += " (inferred: auth has no flow)"
    if flow in LEGACY_FLOWS:
        return SetupCheck("login flow", True, f"{detail}; {RETIREMENT[flow]}", MOVE_TO_JWT,
                          warn=True)
    return SetupCheck("login flow", True, detail)


def fetch_versions(sf: Salesforce) -> list[str]:
    """The versions the org offers (GET /services/data/ on the instance)."""
    response = sf.session.get(f"https://{sf.sf_instance}/services/data/",
                              headers=sf.headers)
    if response.status_code != 200:
        raise ConnectorError(f"GET /services/data/ answered HTTP {response.status_code}",
                             endpoint="versions", status=response.status_code)
    body: Any = response.json()
    return [str(v["version"]) for v in body if isinstance(v, dict) and "version" in v] \
        if isinstance(body, list) else []


def version_check(configured: str, offered: list[str]) -> SetupCheck:
    if not offered:
        return SetupCheck("API version", True, f"{configured}; the org listed no versions")
    newest = max(offered, key=float)
    if configured in offered:
        later = "" if configured == newest else f" (the newest it offers is {newest})"
        return SetupCheck("API version", True, f"{configured} is offered by the org{later}")
    return SetupCheck("API version", False,
                      f"api_version {configured} is not offered by the org (it offers "
                      f"{min(offered, key=float)} to {newest})",
                      f"set api_version: \"{newest}\" on the connection (or remove it: the "
                      f"default is the newest release winback knows)")
