"""The HubSpot activity read past the search cap: each engagement search restarts from the
newest stamp seen before its offset would pass the cap, and a window sharing one stamp is
walked by id (the cap scaled down, as for deals in test_hubspot_adapter)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from connectors.models import Activity, ActivityKind
from tests.integration.connectors.hubspot_backend import HubSpotBackend

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
STAMP = "2025-03-01T10:00:00.000Z"


def read(hs: HubSpotBackend, kinds: frozenset[ActivityKind], cap: int) -> list[Activity]:
    connector = hs.connector()
    reader = connector._activities
    reader.search_cap = cap  # what 10,000 is to HubSpot, scaled down
    search, offsets = reader._search, []

    def spy(object_type: str, filters: Any, sort: str, after: int) -> Any:
        offsets.append(after)
        return search(object_type, filters, sort, after)

    reader._search = spy  # type: ignore[method-assign]
    pages = list(connector.changed_activities(EPOCH, kinds))
    assert max(offsets) + 200 <= cap  # no search asked past the cap
    marks = [p.watermark for p in pages]
    assert None not in marks and marks == sorted(m for m in marks if m is not None)
    return [a for p in pages for a in p.activities]


def test_activity_search_restarts_before_the_cap(hs: HubSpotBackend) -> None:
    hs.admin("POST", "seed", {"generate": {"deals": 30, "seed": 2, "activities": 2_500}})
    found = read(hs, frozenset({ActivityKind.CALL, ActivityKind.NOTE}), cap=400)
    ids = [(a.kind, a.id) for a in found]
    assert len(ids) == len(set(ids)) == 1_000  # 500 of each, none twice
    assert [a.modified_at for a in found] == sorted(a.modified_at for a in found)
    assert all(a.deal_id and a.account_id for a in found)
    calls = hs.calls()
    # 500 a kind, 200 a page: 3 pages, 4 with the restart; never a 400 past the cap
    assert calls["calls.search"] <= 5 and calls["notes.search"] <= 5


def test_one_stamp_shared_past_the_cap_is_walked_by_id(hs: HubSpotBackend) -> None:
    notes = [{"hs_timestamp": STAMP, "hs_note_body": f"n{i}", "hs_lastmodifieddate": STAMP}
             for i in range(450)]
    notes += [{"hs_timestamp": STAMP, "hs_note_body": f"l{i}",
               "hs_lastmodifieddate": "2025-03-02T10:00:00.000Z"} for i in range(30)]
    hs.admin("POST", "seed", {"objects": {"notes": notes}})
    found = read(hs, frozenset({ActivityKind.NOTE}), cap=400)
    ids = [a.id for a in found]
    assert len(ids) == len(set(ids)) == 480


def test_an_engagement_changed_during_the_read_skips_no_other(hs: HubSpotBackend) -> None:
    """The first note is modified after the first search page: it moves to the end of the
    result set and every later note one place left; the overlap keeps none from being
    skipped."""
    notes = [{"hs_timestamp": STAMP, "hs_note_body": f"n{i}",
              "hs_lastmodifieddate": f"2025-03-01T10:{i // 60:02d}:{i % 60:02d}.000Z"}
             for i in range(450)]
    ids = hs.admin("POST", "seed", {"objects": {"notes": [
        {"ref": f"n{i}", **note} for i, note in enumerate(notes)]}})["ids"]
    connector = hs.connector()
    reader = connector._activities
    search, calls = reader._search, []

    def spy(object_type: str, filters: Any, sort: str, after: int) -> Any:
        page = search(object_type, filters, sort, after)
        calls.append(after)
        if len(calls) == 1:
            hs.admin("PATCH", f"objects/notes/{ids['n0']}", {"properties": {
                "hs_note_body": "edited"}})
        return page

    reader._search = spy  # type: ignore[method-assign]
    found = [a.id for p in connector.changed_activities(EPOCH, frozenset({ActivityKind.NOTE}))
             for a in p.activities]
    assert set(found) == set(ids.values())
