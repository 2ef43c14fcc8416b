"""`winback owners CONFIG`: each connection's owners (id, name, active, time zone, country), what
ops need to fill a connection's `owners:` overrides and `fallback_owner`; and the ledger's view
of which tracked deals belong to inactive owners (`winback doctor` reads it)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy import Engine

from connectors.errors import ConnectorError
from connectors.models import Owner
from worker.cli.app import ConfigArg, app, config_or_exit, err, table_console
from worker.ledger.queries import OwnerCounts, owner_counts
from worker.settings.connections import HubSpotConnection, SalesforceConnection

Settings = SalesforceConnection | HubSpotConnection


class OwnersFormat(StrEnum):
    table = "table"
    json = "json"


def list_owners(settings: Settings, *, retry_budget: float = 20.0) -> list[Owner]:
    """Every owner of one connection, active ones first, then by name (one connector, closed
    after). Raises ConnectorError when the CRM cannot be reached or refuses the login."""
    from worker.service.wiring import default_connector

    connector = default_connector(settings, lambda call: None, retry_budget=retry_budget)
    try:
        owners = connector.owners()
    finally:
        connector.close()
    return sorted(owners, key=lambda o: (not o.active, (o.name or "").lower(), o.id))


def owner_row(settings: Settings, owner: Owner) -> dict[str, Any]:
    override = settings.owners.get(owner.id)
    return {"connection": settings.name, "id": owner.id, "name": owner.name,
            "email": owner.email, "active": owner.active, "timezone": owner.timezone,
            "country": owner.country, "fallback_owner": owner.id in settings.fallback_owners,
            "override": override is not None}


TrackedByOwner = OwnerCounts  # what the ledger tracks for some owners (worker/ledger/queries.py)


def tracked_by_owner(engine: Engine, connection: str, owner_ids: list[str]) -> TrackedByOwner:
    with engine.connect() as conn:
        return owner_counts(conn, connection, owner_ids)


@app.command()
def owners(
    config: ConfigArg,
    connection: Annotated[str | None, typer.Option(help="Only this connection.")] = None,
    output_format: Annotated[OwnersFormat, typer.Option("--format")] = OwnersFormat.table,
) -> None:
    """List each connection's owners (id, name, active, time zone, country): the ids to use in
    a connection's `owners:` overrides and `fallback_owner`. Reads the CRM, writes nothing."""
    from worker.telemetry.logs import configure

    configure("WARNING")
    settings = config_or_exit(config)
    chosen = [c for c in settings.connections if connection is None or c.name == connection]
    if connection is not None and not chosen:
        names = ", ".join(c.name for c in settings.connections) or "none"
        err.print(f"--connection: no connection named {connection!r} (configured: {names})",
                  markup=False)
        raise typer.Exit(2)
    rows: list[dict[str, Any]] = []
    failed = False
    for conn in chosen:
        try:
            rows += [owner_row(conn, o) for o in list_owners(conn)]
        except ConnectorError as exc:
            fix = getattr(exc, "fix", "")
            err.print(f"{conn.name}: cannot list the owners: {exc}"
                      + (f" ({fix})" if fix else "") + f"; `winback doctor {config}` checks "
                      "the connection", markup=False)
            failed = True
    if output_format is OwnersFormat.json:
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
    else:
        _print(rows, config)
    if failed:
        raise typer.Exit(1)


def _print(rows: list[dict[str, Any]], config: Path) -> None:
    console = table_console()
    table = Table(title="Owners", title_justify="left")
    for column in ("connection", "id", "name", "active", "time zone", "country", "note"):
        table.add_column(column, no_wrap=column in ("id", "connection"))
    for row in rows:
        note = ", ".join(n for n, on in (("fallback_owner", row["fallback_owner"]),
                                         ("has an owners: override", row["override"])) if on)
        table.add_row(row["connection"], row["id"], row["name"] or "",
                      "yes" if row["active"] else "NO", row["timezone"] or "",
                      row["country"] or "", note)
    console.print(table)
    inactive = sum(not r["active"] for r in rows)
    console.print(f"{len(rows)} owner(s), {inactive} inactive. Tasks of an inactive owner's "
                  "deals go to the connection's fallback_owner (an active owner's id); without "
                  f"one the CRM refuses them (`winback doctor {config}` warns).")
