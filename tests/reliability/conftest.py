"""Fixtures for the reliability scenarios: a sandbox, a config, a ledger, real processes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select

from tests.reliability.harness import Stack
from worker.ledger.schema import task


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    s = Stack(tmp_path, database_url)
    yield s
    s.stop()


@pytest.fixture
def sqlite_stack(tmp_path: Path) -> Iterator[Stack]:
    s = Stack(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}")
    yield s
    s.stop()


@pytest.fixture
def pg_stack(tmp_path: Path, pg_url: str) -> Iterator[Stack]:
    s = Stack(tmp_path, pg_url)
    yield s
    s.stop()


def wait_until(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def ledger_counts(url: str) -> dict[str, int]:
    """Tasks per status in the ledger. Raises when the ledger cannot be read (no database, no
    tables): an empty answer would make "no row left sending" pass by itself."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(task.c.status, func.count()).group_by(task.c.status))
            return {str(status): int(n) for status, n in rows}
    finally:
        engine.dispose()
