"""Engines for the ledger: SQLite (WAL, busy timeout, BEGIN IMMEDIATE) or PostgreSQL (psycopg 3).

`WINBACK_DATABASE_URL` picks the database; by default a SQLite file next to the config.
SQLite means ONE process (threads are fine); several replicas need PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

ENV_VAR = "WINBACK_DATABASE_URL"
WRITE_OPTION = "winback_write"


def database_url(config_path: Path, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    url = env.get(ENV_VAR, "").strip()
    if not url:
        return f"sqlite:///{config_path.resolve().parent / 'winback.db'}"
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def shown_url(url: str) -> str:
    """The URL without its password, for logs and messages."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                               pool_size=pool_size, max_overflow=pool_size)
        _sqlite_events(engine)
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=2, pool_pre_ping=True,
                         pool_recycle=1800)


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so that BEGIN IMMEDIATE is ours (see the
        # SQLAlchemy sqlite dialect docs): writers queue on the lock at BEGIN instead of
        # failing with "database is locked" in the middle of a transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # Writers (see `write`) take the lock at BEGIN; readers start deferred, so that a
        # read never waits behind a write in WAL mode.
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def write(engine: Engine) -> AbstractContextManager[Connection]:
    """A write transaction (`with write(engine) as conn:`): BEGIN IMMEDIATE on SQLite."""
    return engine.execution_options(**{WRITE_OPTION: True}).begin()


def is_postgres(conn: Connection | Engine) -> bool:
    return conn.dialect.name == "postgresql"


def db_now(conn: Connection) -> datetime:
    """The clock leases are judged by: the database's on PostgreSQL (replica clocks may
    disagree), the process's on SQLite (one process)."""
    if is_postgres(conn):
        value = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
        assert isinstance(value, datetime)
        return value.astimezone(UTC)
    return datetime.now(UTC)
