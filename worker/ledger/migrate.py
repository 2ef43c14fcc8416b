"""Schema migrations (Alembic), run by `winback migrate`; a start checks the schema is current.

Starting the service does not import Alembic (it costs memory in every replica): the check
reads `alembic_version` with plain SQL and compares it with `HEAD`, which a test keeps equal
to the newest revision in `migrations/versions`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, text

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
HEAD = "0010"


class SchemaOutOfDate(Exception):
    """The ledger's schema is not the one this version of winback needs."""


def _alembic(engine: Engine) -> Any:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The newest revision in the migration scripts (what HEAD must say)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return str(head)


def current_revision(engine: Engine) -> str | None:
    if "alembic_version" not in inspect(engine).get_table_names():
        return None
    with engine.connect() as conn:
        value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return str(value) if value is not None else None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Apply migrations up to `revision`; returns (before, after)."""
    from alembic import command

    before = current_revision(engine)
    config = _alembic(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return before, current_revision(engine) or ""


def check(engine: Engine, *, create_if_empty: bool) -> None:
    """Raise SchemaOutOfDate unless the schema is at HEAD. An empty database is created when
    `create_if_empty` (the default SQLite file); otherwise `winback migrate` must run first."""
    current = current_revision(engine)
    if current == HEAD:
        return
    if current is None and not inspect(engine).get_table_names() and create_if_empty:
        upgrade(engine)
        return
    if current is None:
        raise SchemaOutOfDate(
            "the ledger database has no winback schema yet: run `winback migrate CONFIG` first")
    raise SchemaOutOfDate(
        f"the ledger schema is at revision {current}, this winback needs {HEAD}: run "
        "`winback migrate CONFIG` (a separate step when several replicas share the database)")
