"""The setup cache (issue 15): a connection's setup results, kept until they expire, so that
a process start does not pay the setup calls again (worker/sync/tick.py reads and writes it)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, select

from worker.ledger.schema import setup_cache


def read(conn: Connection, connection: str, now: datetime) -> dict[str, Any] | None:
    """The kept setup state, None when there is none or it has expired."""
    row = conn.execute(select(setup_cache.c.payload, setup_cache.c.expires_at)
                       .where(setup_cache.c.connection == connection)).one_or_none()
    if row is None or row.expires_at <= now or not isinstance(row.payload, dict):
        return None
    return dict(row.payload)


def store(conn: Connection, connection: str, payload: Mapping[str, Any], now: datetime,
          expires_at: datetime) -> None:
    conn.execute(delete(setup_cache).where(setup_cache.c.connection == connection))
    conn.execute(setup_cache.insert().values(connection=connection, payload=dict(payload),
                                             stored_at=now, expires_at=expires_at))


def forget(conn: Connection, connection: str) -> int:
    return int(conn.execute(delete(setup_cache)
                            .where(setup_cache.c.connection == connection)).rowcount)
