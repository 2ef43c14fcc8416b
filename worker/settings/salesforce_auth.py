"""`validate`'s warnings about legacy Salesforce logins (the facts: connectors.salesforce_flows)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.salesforce_flows import legacy_notice

if TYPE_CHECKING:
    from worker.settings.models import Config


def legacy_warnings(config: Config, file: str) -> list[str]:
    """One `validate` warning per enabled Salesforce connection on a legacy flow."""
    found = []
    for index, connection in enumerate(config.connections):
        if connection.kind != "salesforce":
            continue
        auth = connection.auth
        notice = legacy_notice(auth.effective_flow, inferred=auth.flow is None)
        if notice:
            found.append(f"warning: {file}: connections[{index}].auth ({connection.name}): "
                         f"{notice}")
    return found
