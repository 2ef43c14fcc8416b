"""Suite-wide options: `--long` runs the soak/chaos forms marked `slow`."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ci import skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True)
def _logging_as_configured_by_no_one() -> Iterator[None]:
    """A command run in-process configures structlog for its own run (level, output); the next
    test starts from structlog's defaults, so `capture_logs()` sees every level again."""
    yield
    import structlog

    structlog.reset_defaults()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False,
                     help="also run the long (soak/chaos) forms of the reliability tests")


def pytest_configure(config: pytest.Config) -> None:
    # Read by `examples()` (tests/unit/planning.py) when the test modules are imported.
    if config.getoption("--long"):
        os.environ["WINBACK_TEST_LONG"] = "1"


RELIABILITY = ROOT / "tests" / "reliability"
# Two lanes of about equal length (measured with --durations): each runs its files one test
# after another on one worker; files not listed take lane 2.
LANE_1 = {"test_replicas.py", "test_crash.py", "test_lease_deadline.py", "test_injection.py",
          "test_activity_crash.py"}


# Fixture-parametrized twins that only `--long` runs (make test stays under 10 minutes): the
# simulated year on PostgreSQL (90 s; make test runs it on SQLite, and test_sync's year of
# ticks on both).
LONG_TWINS = {"tests/acceptance/test_year.py::"
              "test_a_simulated_year_writes_the_plan_exactly_once_on_the_right_dates[postgresql]"}


@pytest.hookimpl(wrapper=True)  # before pytest-xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(config: pytest.Config,
                                  items: list[pytest.Item]) -> Iterator[None]:
    # `make test` runs the suite on several pytest-xdist workers (the suite mostly waits on
    # sockets and subprocesses). The reliability scenarios (kill -9, pauses, fault storms,
    # replica churn) time their kills against live processes: they run in two lanes, one
    # test after another in each, while the other workers take the rest.
    # The other tests go by module, so that a module's fixtures (a demo run, a wheel build,
    # an emulator) are set up once, not once per worker.
    for item in items:
        if RELIABILITY in item.path.parents:
            lane = 1 if item.path.name in LANE_1 else 2
            item.add_marker(pytest.mark.xdist_group(f"reliability-{lane}"))
        else:
            item.add_marker(pytest.mark.xdist_group(item.path.relative_to(ROOT).as_posix()))
    # The lanes first: pytest-xdist hands out groups in collection order, and a lane handed
    # out after the first modules' groups ends minutes after everything else (seen: 771 s).
    items.sort(key=lambda item: RELIABILITY not in item.path.parents)  # (a stable sort)
    if not config.getoption("--long"):
        skip = pytest.mark.skip(reason="long form: run with --long (make test-long)")
        for item in items:
            if "slow" in item.keywords or item.nodeid in LONG_TWINS:
                item.add_marker(skip)
    yield


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook, on the controller
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    """Under --dist loadgroup the reliability tests must come back from the workers with their
    group (pytest-xdist appends it to the node id); run ungrouped they would time their kills
    against each other's load, so stop with the reason instead."""
    if node.config.getvalue("dist") != "loadgroup":
        return
    ungrouped = [nodeid for nodeid in ids
                 if nodeid.startswith("tests/reliability/") and "@reliability" not in nodeid]
    if ungrouped:
        pytest.exit(
            f"pytest-xdist did not group {len(ungrouped)} reliability tests (e.g. {ungrouped[0]}) "
            "into their lanes: this pytest / pytest-xdist pair ignores xdist_group (pytest-xdist "
            "issue #1386); install the versions pyproject.toml pins (make install), or run "
            "make test TEST_WORKERS=0", returncode=4)


# -- PostgreSQL -------------------------------------------------------------------------------
PG_ADMIN_URL = os.environ.get("WINBACK_TEST_PG",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _pg_admin() -> Any:
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_size=1)


@pytest.fixture(scope="session")
def pg_problem() -> str | None:
    """Why the test PostgreSQL server cannot be used, or None when it answers."""
    try:
        engine = _pg_admin()
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        engine.dispose()
        return None
    except Exception as exc:  # the reason is reported: connection refused, auth, ...
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


@pytest.fixture(scope="session")
def pg_available(pg_problem: str | None) -> bool:
    return pg_problem is None


@pytest.fixture
def pg_url(pg_problem: str | None) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    if pg_problem is not None:
        skip_or_fail(f"no PostgreSQL at {_shown(PG_ADMIN_URL)} ({pg_problem}); start one "
                     "(.ci/run does) or point WINBACK_TEST_PG at one")
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

