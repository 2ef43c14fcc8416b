"""The setup cache (issue 15): a new process takes a connection's setup from the ledger
until it expires; a fatal connection error forgets it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.errors import SetupError
from tests.unit.harness import World
from worker.sync.tick import run_tick


@pytest.fixture
def world(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    w = World(tmp_path, database_url, monkeypatch)
    yield w
    w.close()


def restart(world: World, extra: str = "") -> None:
    world.reload(extra)  # a new process on the same ledger: nothing set up in memory


def test_a_restart_takes_the_setup_from_the_ledger_until_it_expires(world: World) -> None:
    world.tick()
    assert world.crm.calls["setup"] == 1
    restart(world)
    world.tick()
    assert world.crm.calls["setup"] == 1  # kept: no setup call
    world.advance(hours=6, minutes=1)  # past the default expiry (service.setup_cache: 6h)
    restart(world)
    world.tick()
    assert world.crm.calls["setup"] == 2


def test_the_cache_can_be_turned_off(world: World) -> None:
    off = "service: {setup_cache: 0s}\n"
    restart(world, off)
    world.tick()
    restart(world, off)
    world.tick()
    assert world.crm.calls["setup"] == 2


def test_a_fatal_connection_error_forgets_the_kept_setup(world: World) -> None:
    world.tick()
    world.crm.admin_fail_next("deals.changed", SetupError("a field is gone", connection="crm"))
    assert run_tick(world.ctx, ignore_schedule=True).result == "error"
    restart(world)
    world.tick()
    assert world.crm.calls["setup"] == 2
