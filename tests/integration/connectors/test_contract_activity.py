"""The port's activity contract (issue 13): `changed_activities` on every adapter (in-memory,
Salesforce Task/Event, HubSpot engagements), the real SDKs against the emulators."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from connectors.base import ActivityPage
from connectors.models import Activity, ActivityKind
from tests.integration.connectors.test_contract import NOW, drafts_for, small_world

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
ALL = frozenset(ActivityKind)
OVERLAP = timedelta(minutes=1)


def read(connector: Any, since: datetime, kinds: frozenset[ActivityKind] = ALL
         ) -> tuple[list[Activity], list[ActivityPage]]:
    pages = list(connector.changed_activities(since, kinds))
    return [a for p in pages for a in p.activities], pages


def used(backend: Any, before: dict[str, int]) -> int:
    return sum(backend.calls().values()) - sum(before.values())


def test_activity_links_and_incremental_read_with_overlap(backend: Any) -> None:
    """Logged activities come back with their deal, account, contact and owner; a read from
    the last watermark (less an overlap) brings the newer ones, oldest change first."""
    data, ids = small_world(backend, deals=6)
    deal = data.deals[0]
    contact = ids.contacts[deal.contacts[0][0]] if deal.contacts else None
    owner = ids.owners[next(o.index for o in data.owners if o.active)]
    connector = backend.connector()
    first_at = NOW - timedelta(days=2)
    [call] = backend.log_activities("call", first_at, deal=ids.deals[0], contact=contact,
                                    account=ids.accounts[deal.account], owner=owner)
    found, pages = read(connector, EPOCH)
    mine = {a.id: a for a in found}
    assert mine[call].kind == ActivityKind.CALL
    assert mine[call].deal_id == ids.deals[0]
    assert mine[call].account_id == ids.accounts[deal.account]
    assert mine[call].contact_ids == ((contact,) if contact else ())
    assert mine[call].owner_id == owner
    assert abs(mine[call].at - first_at) < timedelta(seconds=1)
    mark = pages[-1].watermark
    assert mark is not None
    backend.advance_clock(120)
    [meeting] = backend.log_activities("meeting", NOW, deal=ids.deals[1], owner=owner)
    again, pages = read(connector, mark - OVERLAP)
    assert meeting in [a.id for a in again]
    assert [a.modified_at for a in again] == sorted(a.modified_at for a in again)
    latest = pages[-1].watermark
    assert latest is not None and latest > mark
    assert meeting not in [a.id for a in read(connector, latest + timedelta(seconds=1))[0]]


def test_deleted_activity_is_flagged_or_gone(backend: Any) -> None:
    _, ids = small_world(backend, deals=3)
    connector = backend.connector()
    [call] = backend.log_activities("call", NOW, deal=ids.deals[0])
    backend.advance_clock(60)
    backend.delete_activity("call", call)
    found = {a.id: a for a in read(connector, EPOCH)[0]}
    if backend.reports_deleted_activities:
        assert found[call].deleted
    else:  # HubSpot search leaves archived engagements out
        assert call not in found


def test_completed_winback_task_gives_its_key_and_completion(backend: Any) -> None:
    data, ids = small_world(backend, deals=4)
    connector = backend.connector()
    connector.ensure_setup()
    [draft] = drafts_for(data, ids, 1)
    [result] = connector.write_tasks([draft])
    assert result.ok and result.crm_id
    done_at = (NOW - timedelta(hours=3)).replace(microsecond=0)
    backend.advance_clock(30)
    backend.complete_task(result.crm_id, done_at)
    found = {a.id: a for a in read(connector, EPOCH, frozenset({ActivityKind.TASK}))[0]}
    task = found[result.crm_id]
    assert task.kind == ActivityKind.TASK
    assert task.task_key == draft.key
    assert task.completed
    assert task.completed_at is not None and abs(task.completed_at - done_at) < timedelta(
        seconds=1)
    assert task.deal_id == draft.deal_id


def test_activity_read_pages_past_one_page(backend: Any) -> None:
    _, ids = small_world(backend, deals=3)
    connector = backend.connector()
    count = backend.activity_page + 3
    logged = backend.log_activities("email", NOW - timedelta(days=1), count, deal=ids.deals[0])
    found, pages = read(connector, EPOCH, frozenset({ActivityKind.EMAIL}))
    assert sorted(a.id for a in found) == sorted(logged)  # each once
    assert len(pages) >= 2
    marks = [p.watermark for p in pages]
    assert None not in marks and marks == sorted(m for m in marks if m is not None)
    assert all(a.deal_id == ids.deals[0] for a in found)


def test_kinds_filter_reads_only_what_is_asked(backend: Any) -> None:
    _, ids = small_world(backend, deals=3)
    connector = backend.connector()
    logged = {kind: backend.log_activities(kind, NOW, deal=ids.deals[0])[0]
              for kind in backend.activity_kinds}
    wanted = frozenset({ActivityKind.CALL, ActivityKind.MEETING})
    found = read(connector, EPOCH, wanted)[0]
    assert {a.kind for a in found} == wanted
    assert {a.id for a in found} >= {logged["call"], logged["meeting"]}
    _, pages = read(connector, EPOCH)
    mark = pages[-1].watermark
    assert mark is not None
    before = backend.calls()
    assert read(connector, mark + timedelta(seconds=1), wanted)[0] == []
    idle = used(backend, before)
    # one query / search per object read: SF Task + Event, HubSpot calls + meetings
    assert idle == {"memory": 1, "salesforce": 2, "hubspot": 2}[backend.kind]
    before = backend.calls()
    assert read(connector, mark + timedelta(seconds=1), frozenset({ActivityKind.CALL}))[0] == []
    assert used(backend, before) == 1  # SF: Task only (no Event query); HubSpot: calls only
    before = backend.calls()
    assert read(connector, mark + timedelta(seconds=1))[0] == []
    assert used(backend, before) == {"memory": 1, "salesforce": 2, "hubspot": 5}[backend.kind]


def test_deal_opt_out_and_pause_fields(backend: Any) -> None:
    _, ids = small_world(backend, deals=3)
    connector = backend.connector(fields=backend.activity_fields)
    pause = date(2027, 3, 1)
    backend.set_deal_flags(ids.deals[0], opted_out=True, paused_until=pause)
    first, second = connector.deals_by_id(ids.deals[:2])
    assert first.opted_out and first.paused_until == pause
    assert not second.opted_out and second.paused_until is None
    if backend.wrong_opt_out is None:
        return
    report = backend.connector(fields=backend.activity_fields.model_copy(
        update={"opt_out": backend.wrong_opt_out})).ensure_setup()
    bad = [c for c in report.checks if not c.ok and backend.wrong_opt_out in c.name]
    assert bad and "fields.opt_out" in bad[0].detail and bad[0].fix


@pytest.mark.parametrize("kinds", [frozenset()])
def test_no_kinds_reads_nothing(backend: Any, kinds: frozenset[ActivityKind]) -> None:
    connector = backend.connector()
    before = backend.calls()
    assert read(connector, EPOCH, kinds)[0] == []
    assert used(backend, before) == 0
