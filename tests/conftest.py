"""Suite-wide options: `--long` runs the soak/chaos forms marked `slow`."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False,
                     help="also run the long (soak/chaos) forms of the reliability tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--long"):
        return
    skip = pytest.mark.skip(reason="long form: run with --long (make test-long)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


# -- PostgreSQL -------------------------------------------------------------------------------
PG_ADMIN_URL = os.environ.get("WINBACK_TEST_PG",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _pg_admin() -> Any:
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_size=1)


@pytest.fixture(scope="session")
def pg_available() -> bool:
    try:
        engine = _pg_admin()
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
        return True
    except Exception:
        return False


@pytest.fixture
def pg_url(pg_available: bool) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    if not pg_available:
        pytest.skip(f"no PostgreSQL at {PG_ADMIN_URL} (set WINBACK_TEST_PG); .ci/run starts one")
    name = f"winback_test_{uuid.uuid4().hex[:12]}"
    engine = _pg_admin()
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ledger URL for a test that must hold on both databases."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("pg_url"))
