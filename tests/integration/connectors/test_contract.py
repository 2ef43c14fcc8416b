"""The port's contract: the same tests, unchanged, for every adapter (in-memory, Salesforce,
HubSpot); the CRM adapters run the real SDKs against the emulators."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from connectors.base import Connector, SetupCheck
from connectors.errors import BudgetExhausted
from connectors.models import Channel, Priority, TaskDraft
from sandbox.seed import SeedData, generate
from tests.integration.connectors.backend import Ids

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
NOW = datetime.now(UTC)


def small_world(backend: Any, deals: int = 40, seed: int = 11) -> tuple[SeedData, Ids]:
    data = generate(deals, seed=seed, now=NOW, owners=5, inactive_owners=1)
    return data, backend.seed(data)


def drafts_for(data: SeedData, ids: Ids, count: int, *, owner: str | None = None
               ) -> list[TaskDraft]:
    """`count` drafts on the world's deals, owned by active owners, keyed uniquely."""
    active = [ids.owners[o.index] for o in data.owners if o.active]
    run = uuid.uuid4().hex[:8]
    out = []
    for i in range(count):
        deal = data.deals[i % len(data.deals)]
        contact = ids.contacts[deal.contacts[0][0]] if deal.contacts else None
        due = NOW.date() + timedelta(days=7 + i % 30)
        out.append(TaskDraft(
            key=f"{run}{i:024x}", deal_id=ids.deals[deal.index],
            owner_id=owner or active[i % len(active)], subject=f"Follow up #{i} on {deal.name}",
            body="Talking points: ask how the project is going.", due_date=due,
            remind_at=datetime.combine(due, datetime.min.time(), tzinfo=UTC) + timedelta(hours=14),
            channel=Channel.CALL if i % 2 else Channel.EMAIL,
            priority=Priority.HIGH if i % 5 == 0 else Priority.NORMAL,
            contact_id=contact, account_id=ids.accounts[deal.account]))
    return out


def pull_all(connector: Any, since: datetime = EPOCH) -> tuple[list[Any], list[Any]]:
    deals, pages = [], []
    for page in connector.changed_deals(since):
        pages.append(page)
        deals.extend(page.deals)
    return deals, pages


def write_calls(backend: Any) -> int:
    """Calls to task-write endpoints (whatever each CRM names them)."""
    return sum(n for endpoint, n in backend.calls().items()
               if any(w in endpoint for w in ("tasks.write", "composite.sobjects",
                                              "tasks.batch.create", "tasks.batch.upsert",
                                              "sobject.upsert", "collections")))


def test_pull_streams_every_deal_once_oldest_change_first(backend: Any) -> None:
    """A full pull returns each deal once, in pages, with a watermark that never goes back."""
    data, ids = small_world(backend, deals=2500)
    deals, pages = pull_all(backend.connector())
    assert sorted(d.id for d in deals) == sorted(ids.deals)
    assert len(pages) >= 2
    marks = [p.watermark for p in pages if p.watermark is not None]
    assert marks == sorted(marks)
    lost = {ids.deals[d.index] for d in data.deals if d.state == "lost"}
    assert {d.id for d in deals if d.is_lost} == lost


def test_pull_goes_past_ten_thousand_results(backend: Any) -> None:
    """More than 10,000 changed deals (HubSpot's search cap) are all read, none twice."""
    backend.generate(10_500, seed=5)
    deals, _ = pull_all(backend.connector())
    assert len(deals) == len({d.id for d in deals}) == 10_500


def test_incremental_pull_sees_only_changes(backend: Any) -> None:
    """After the watermark, only deals changed since are returned."""
    data, ids = small_world(backend)
    connector = backend.connector()
    _, pages = pull_all(connector)
    watermark = max(p.watermark for p in pages if p.watermark is not None)
    backend.advance_clock(120)
    changed = ids.deals[next(d.index for d in data.deals if d.state == "lost")]
    backend.set_stage(changed, "open")
    deals, _ = pull_all(connector, watermark + timedelta(seconds=1))
    assert [d.id for d in deals] == [changed]
    assert not deals[0].is_closed


def test_deals_carry_stage_flags_owner_account_and_fields(backend: Any) -> None:
    """Lost/won/open come from the CRM's metadata; owner, account and loss fields are filled."""
    data, ids = small_world(backend)
    by_id = {d.id: d for d in pull_all(backend.connector())[0]}
    for seeded in data.deals:
        deal = by_id[ids.deals[seeded.index]]
        assert (deal.is_closed, deal.is_won) == {"lost": (True, False), "won": (True, True),
                                                 "open": (False, False)}[seeded.state]
        assert deal.owner is not None and deal.owner.id == ids.owners[seeded.owner]
        assert deal.owner.active == data.owners[seeded.owner].active
        assert deal.account_id == ids.accounts[seeded.account]
        assert deal.account_name == data.accounts[seeded.account].name
        if seeded.state == "lost":
            assert deal.loss_reason == seeded.loss_reason
            assert deal.competitor == seeded.competitor
            assert deal.contract_end == seeded.contract_end
            closed = deal.closed_at.date() if isinstance(deal.closed_at, datetime) \
                else deal.closed_at
            assert closed == seeded.close_date


def test_stakeholders_come_with_roles_and_opt_outs(backend: Any) -> None:
    """Contacts per deal, opted-out ones flagged; every deal asked for is a key."""
    data, ids = small_world(backend)
    wanted = [ids.deals[d.index] for d in data.deals]
    found = backend.connector().stakeholders(wanted)
    assert set(found) == set(wanted)
    for seeded in data.deals:
        contacts = found[ids.deals[seeded.index]]
        roles = [ids.contacts[c] for c, _ in seeded.contacts]
        if not roles and getattr(backend, "account_fallback", False):
            # Salesforce: a deal without contact roles gets its account's contacts
            roles = [ids.contacts[c.index] for c in data.contacts if c.account == seeded.account]
        assert sorted(c.id for c in contacts) == sorted(roles)
        for contact in contacts:
            index = ids.contacts.index(contact.id)
            assert contact.opted_out == data.contacts[index].opted_out


def test_owners_include_inactive_ones(backend: Any) -> None:
    """Every owner, the inactive flagged."""
    data, ids = small_world(backend)
    owners = {o.id: o for o in backend.connector().owners()}
    assert set(ids.owners) <= set(owners)
    for seeded in data.owners:
        assert owners[ids.owners[seeded.index]].active == seeded.active


def test_writing_1000_tasks_costs_the_protocol_minimum(backend: Any) -> None:
    """1,000 tasks in exactly ceil(1000 / batch) write calls and nothing else. The set-up
    check runs once per process (first tick), so it is counted apart."""
    data, ids = small_world(backend)
    connector = backend.connector()
    drafts = drafts_for(data, ids, 1000)
    connector.ensure_setup()
    backend.reset_calls()
    results = connector.write_tasks(drafts)
    assert all(r.ok for r in results), [r for r in results if not r.ok][:3]
    minimum = math.ceil(1000 / backend.write_batch)
    assert write_calls(backend) == minimum
    assert sum(backend.calls().values()) - _login_calls(backend) == minimum
    keys = [t.key for t in backend.tasks()]
    assert sorted(keys) == sorted(d.key for d in drafts)


def _login_calls(backend: Any) -> int:
    return sum(n for e, n in backend.calls().items() if "login" in e or "token" in e)


def test_rewriting_the_same_keys_creates_no_task(backend: Any) -> None:
    """Keyed writes: writing the same drafts again leaves exactly one task per key."""
    data, ids = small_world(backend)
    connector = backend.connector()
    connector.ensure_setup()
    drafts = drafts_for(data, ids, 250)
    first = connector.write_tasks(drafts)
    second = connector.write_tasks(drafts)
    assert all(r.ok for r in first + second)
    assert {r.key: r.crm_id for r in first} == {r.key: r.crm_id for r in second}
    assert len(backend.tasks()) == 250


def test_results_match_drafts_by_key_and_a_bad_record_fails_alone(backend: Any) -> None:
    """An inactive owner fails that one task; the rest of the batch is written."""
    data, ids = small_world(backend)
    connector = backend.connector()
    connector.ensure_setup()
    inactive = ids.owners[next(o.index for o in data.owners if not o.active)]
    drafts = drafts_for(data, ids, 20)
    bad = drafts_for(data, ids, 1, owner=inactive)[0]
    results = connector.write_tasks([*drafts[:10], bad, *drafts[10:]])
    by_key = {r.key: r for r in results}
    assert len(by_key) == 21
    assert all(by_key[d.key].ok for d in drafts)
    assert not by_key[bad.key].ok and by_key[bad.key].error_code
    assert len(backend.tasks()) == 20


def test_a_rate_limit_storm_converges_with_every_task_once(backend: Any) -> None:
    """30% of calls answered 429 (Retry-After 1 s): everything is written, exactly once."""
    data, ids = small_world(backend)
    connector = backend.connector()
    connector.ensure_setup()
    drafts = drafts_for(data, ids, 300)
    backend.fault(rate_429=0.3, retry_after=1)
    try:
        results = connector.write_tasks(drafts)
    finally:
        backend.clear_faults()
    assert all(r.ok for r in results)
    keys = [t.key for t in backend.tasks()]
    assert len(keys) == len(set(keys)) == 300


def test_an_expired_session_is_renewed_and_work_goes_on(backend: Any) -> None:
    """Sessions/tokens that expire mid-run are renewed without failing the call."""
    data, ids = small_world(backend)
    connector = backend.connector()
    pull_all(connector)
    backend.expire_sessions()
    connector.ensure_setup()
    results = connector.write_tasks(drafts_for(data, ids, 5))
    assert all(r.ok for r in results)


def test_budget_guard_stops_before_the_configured_share(backend: Any) -> None:
    """With 60% of the daily budget used and a 50% share, the connector refuses to go on."""
    small_world(backend)
    backend.set_budget(limit=10_000, used=6_000)
    connector = backend.connector(api_budget_share=0.5)
    with pytest.raises(BudgetExhausted):
        for _ in range(3):
            pull_all(connector)


def test_find_and_close_tasks_by_key(backend: Any) -> None:
    """Written tasks are found by key; closing marks them completed."""
    data, ids = small_world(backend)
    connector = backend.connector()
    connector.ensure_setup()
    drafts = drafts_for(data, ids, 12)
    written = {r.key: r.crm_id for r in connector.write_tasks(drafts)}
    found = connector.find_tasks([d.key for d in drafts] + ["f" * 32])
    assert {k: v.crm_id for k, v in found.items()} == written
    closed = connector.close_tasks([written[d.key] for d in drafts[:4]])
    assert all(r.ok for r in closed)
    again = connector.find_tasks([d.key for d in drafts])
    assert sum(ref.completed for ref in again.values()) == 4


def test_deleted_deals_are_reported_deleted(backend: Any) -> None:
    """deals_by_id flags a deleted deal instead of dropping it silently."""
    _, ids = small_world(backend)
    gone = ids.deals[0]
    backend.delete_deal(gone)
    deals = {d.id: d for d in backend.connector().deals_by_id([gone, ids.deals[1]])}
    assert deals[gone].deleted
    assert not deals[ids.deals[1]].deleted


def test_written_task_carries_due_date_owner_and_links(backend: Any) -> None:
    """The CRM task has the draft's due date, owner, deal and contact."""
    data, ids = small_world(backend)
    connector = backend.connector()
    connector.ensure_setup()
    draft = next(d for d in drafts_for(data, ids, 40) if d.contact_id)
    connector.write_tasks([draft])
    task = next(t for t in backend.tasks() if t.key == draft.key)
    assert (task.owner_id, task.deal_id, task.contact_id) == (draft.owner_id, draft.deal_id,
                                                              draft.contact_id)
    assert task.due_date == draft.due_date
    assert isinstance(task.due_date, date)


def test_the_connector_offers_the_whole_port(backend: Any) -> None:
    """Every member the worker uses is declared by the `Connector` protocol and present, so
    the worker never needs `getattr` with a default on a connector."""
    connector = backend.connector()
    assert isinstance(connector, Connector)
    assert connector.write_batch == backend.write_batch  # the CRM's own largest batch


def test_a_batch_of_write_batch_tasks_is_one_call(backend: Any) -> None:
    """`write_batch` drafts go in one write call, one more in two."""
    data, ids = small_world(backend)
    connector = backend.connector()
    connector.ensure_setup()
    drafts = drafts_for(data, ids, connector.write_batch + 1)
    backend.reset_calls()
    assert all(r.ok for r in connector.write_tasks(drafts[:-1]))
    assert write_calls(backend) == 1
    assert all(r.ok for r in connector.write_tasks(drafts[-1:]))
    assert write_calls(backend) == 2


def test_calls_made_counts_what_the_crm_saw(backend: Any) -> None:
    """`calls_made` grows by exactly the calls the CRM received (logins included)."""
    small_world(backend)
    connector = backend.connector()
    backend.reset_calls()
    before = connector.calls_made
    pull_all(connector)
    connector.owners()
    assert connector.calls_made - before == sum(backend.calls().values()) > 0


def test_login_checks_report_before_anything_else_runs(backend: Any) -> None:
    """The login checks are set-up checks that pass against a well-configured CRM."""
    small_world(backend)
    checks = list(backend.connector().login_checks())
    assert all(isinstance(c, SetupCheck) and c.ok for c in checks), checks
    if backend.kind == "salesforce":
        assert [c.name for c in checks] == ["login flow", "API version"]
    else:
        assert checks == []
