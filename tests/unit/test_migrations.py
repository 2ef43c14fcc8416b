"""Migrations: the Alembic history builds exactly the declared schema, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from worker.ledger import migrate
from worker.ledger.db import make_engine
from worker.ledger.schema import metadata


def test_migrations_build_the_declared_schema(database_url: str) -> None:
    """Upgrading an empty database to head leaves no difference with schema.py."""
    engine = make_engine(database_url, pool_size=1)
    assert migrate.upgrade(engine) == (None, migrate.HEAD)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def test_a_database_behind_head_is_refused(database_url: str) -> None:
    """A start against an empty (non-SQLite-default) or old schema says what to run."""
    engine = make_engine(database_url, pool_size=1)
    try:
        migrate.check(engine, create_if_empty=False)
    except migrate.SchemaOutOfDate as exc:
        assert "winback migrate" in str(exc)
    else:
        raise AssertionError("an empty ledger was accepted")
    finally:
        engine.dispose()


def test_head_constant_names_the_newest_migration() -> None:
    """migrate.HEAD (checked at start without importing Alembic) is the scripts' head."""
    assert migrate.head_revision() == migrate.HEAD
