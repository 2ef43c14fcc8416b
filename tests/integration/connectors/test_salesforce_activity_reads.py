"""The Salesforce activity read when a query locator dies midway: both queries re-run from
the last stamp served, and every activity still comes out exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from connectors.base import CallRecord
from connectors.models import ActivityKind
from tests.integration.connectors.salesforce_backend import SalesforceBackend, start_backend

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sf() -> Iterator[SalesforceBackend]:
    backend, stop = start_backend()
    yield backend
    stop()


def test_an_expired_cursor_restarts_the_activity_read_from_the_last_stamp(
        sf: SalesforceBackend) -> None:
    sf.admin("POST", "reset")
    sf.admin("POST", "seed", {"generate": {"deals": 200, "seed": 4, "activities": 5_000}})
    sf.admin("POST", "options", {"cursor_ttl_seconds": 5})
    seen: list[CallRecord] = []
    try:
        connector = sf.connector(observer=seen.append)
        connector.ensure_setup()
        sf.reset_calls()
        pages = connector.changed_activities(EPOCH, frozenset(ActivityKind))
        first = next(pages)
        sf.advance_clock(60)
        rest = list(pages)
    finally:
        sf.admin("POST", "options", {"cursor_ttl_seconds": 900})
    ids = [a.id for p in [first, *rest] for a in p.activities]
    assert len(ids) == len(set(ids)) == 5_000
    marks = [p.watermark for p in [first, *rest]]
    assert marks == sorted(m for m in marks if m is not None)
    assert sf.calls()["query_all"] == 4  # Task and Event, twice
    assert "INVALID_QUERY_LOCATOR" in [c.error for c in seen if c.error]
    assert sum(c.items for c in seen) < 5_000 + 2_100  # not re-read from the start
