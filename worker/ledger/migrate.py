"""Schema migrations (Alembic), run by `winback migrate`; a start checks the schema is current."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class SchemaOutOfDate(Exception):
    """The ledger's schema is not the one this version of winback needs."""


def _alembic(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Apply migrations up to `revision`; returns (before, after)."""
    before = current_revision(engine)
    config = _alembic(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
    return before, current_revision(engine) or ""


def check(engine: Engine, *, create_if_empty: bool) -> None:
    """Raise SchemaOutOfDate unless the schema is at head. An empty database is created when
    `create_if_empty` (the default SQLite file); otherwise `winback migrate` must run first."""
    current = current_revision(engine)
    head = head_revision()
    if current == head:
        return
    if current is None and not inspect(engine).get_table_names() and create_if_empty:
        upgrade(engine)
        return
    if current is None:
        raise SchemaOutOfDate(
            "the ledger database has no winback schema yet: run `winback migrate CONFIG` first")
    raise SchemaOutOfDate(
        f"the ledger schema is at revision {current}, this winback needs {head}: run "
        "`winback migrate CONFIG` (a separate step when several replicas share the database)")
