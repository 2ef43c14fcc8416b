"""Salesforce-specific behaviour of `SalesforceConnector`: the real simple-salesforce over HTTPS
against the Salesforce emulator (logins, paging, cursors, key modes, retries, budget, secrets).
The port's shared behaviour is in test_contract.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from connectors.base import MAX_REAUTH, CallRecord, Connector, DealPage, FieldMap
from connectors.errors import AuthError, BudgetExhausted, Interrupted, SetupError
from connectors.models import Channel, Priority, TaskDraft
from connectors.salesforce import SalesforceConnector
from sandbox.seed import SeedAccount, SeedContact, SeedData, SeedDeal, SeedOwner, generate
from tests.integration.connectors.backend import Ids
from tests.integration.connectors.salesforce_backend import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    TOKEN,
    SalesforceBackend,
    start_backend,
)

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
NOW = datetime.now(UTC)
FIX = "create a Text(80) External ID + Unique field Winback_Key__c on Activity"


@pytest.fixture(scope="module")
def sf() -> Iterator[SalesforceBackend]:
    backend, stop = start_backend()
    yield backend
    stop()


@pytest.fixture(scope="module")
def marker_sf() -> Iterator[SalesforceBackend]:
    """An org without the External ID field on Task: keys go into the Subject."""
    backend, stop = start_backend(key_field=None)
    yield backend
    stop()


def world(backend: SalesforceBackend, deals: int = 30) -> tuple[SeedData, Ids]:
    data = generate(deals, seed=3, now=NOW, owners=4, inactive_owners=1)
    return data, backend.seed(data)


def drafts(data: SeedData, ids: Ids, count: int, *, key_prefix: str | None = None,
           owner: str | None = None) -> list[TaskDraft]:
    active = [ids.owners[o.index] for o in data.owners if o.active]
    run = key_prefix or uuid.uuid4().hex[:8]
    out = []
    for i in range(count):
        deal = data.deals[i % len(data.deals)]
        due = NOW.date() + timedelta(days=3 + i % 20)
        out.append(TaskDraft(
            key=f"{run}-{i:06d}", deal_id=ids.deals[deal.index],
            owner_id=owner or active[i % len(active)], subject=f"Follow up {i} on {deal.name}",
            body="Ask how the new vendor is working out.", due_date=due,
            remind_at=datetime.combine(due, datetime.min.time(), tzinfo=UTC)
            + timedelta(hours=15, milliseconds=250),
            channel=(Channel.EMAIL, Channel.CALL, Channel.TODO)[i % 3],
            priority=(Priority.HIGH, Priority.NORMAL, Priority.LOW)[i % 3],
            contact_id=ids.contacts[deal.contacts[0][0]] if deal.contacts else None))
    return out


def pull(connector: SalesforceConnector, since: datetime = EPOCH) -> list[DealPage]:
    return list(connector.changed_deals(since))


def raw_tasks(backend: SalesforceBackend) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = backend.admin("GET", "tasks")["records"]
    return records


# -- login -------------------------------------------------------------------------------------
def test_soap_login_is_one_login_call_then_rest(sf: SalesforceBackend) -> None:
    """Username + password + security token log in once over SOAP; later calls reuse it."""
    world(sf)
    connector = sf.connector()
    assert isinstance(connector, Connector)
    sf.reset_calls()
    assert connector.owners() and connector.owners()
    assert sf.calls() == {"soap_login": 1, "query": 2}
    assert connector.calls_made == 3


def test_oauth_login_with_a_connected_app(sf: SalesforceBackend) -> None:
    """With a client id and secret the OAuth username-password flow is used, not SOAP."""
    world(sf)
    connector = sf.connector(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    sf.reset_calls()
    assert connector.owners()
    assert sf.calls() == {"oauth_token": 1, "query": 1}


def test_a_refused_login_is_an_auth_error_without_the_password(sf: SalesforceBackend) -> None:
    """A wrong password raises AuthError at once (no retry), and the message hides secrets."""
    world(sf)
    secret = "Wrong-Password-4711"
    connector = sf.connector(password=secret)
    sf.reset_calls()
    with pytest.raises(AuthError) as info:
        connector.owners()
    assert sf.calls() == {"soap_login": 1}
    assert "INVALID_LOGIN" in str(info.value)
    assert secret not in str(info.value) and TOKEN not in str(info.value)


# -- pulling -----------------------------------------------------------------------------------
def test_pull_pages_of_1000_past_ten_thousand(sf: SalesforceBackend) -> None:
    """10,500 deals arrive in 1,000-row pages through queryAll + nextRecordsUrl, each page
    carrying its newest stamp as watermark; one CallRecord per page with its row count."""
    lost = sf.generate(10_500, seed=9)
    calls: list[CallRecord] = []
    connector = sf.connector(observer=calls.append, bulk_threshold=None)  # REST paging
    sf.reset_calls()
    pages = pull(connector)
    assert [len(p.deals) for p in pages] == [1000] * 10 + [500]
    assert len({d.id for p in pages for d in p.deals}) == 10_500
    assert sum(d.is_lost for p in pages for d in p.deals) == lost
    for page in pages:
        assert page.watermark == max(d.modified_at for d in page.deals if d.modified_at)
    marks = [p.watermark for p in pages if p.watermark is not None]
    assert len(marks) == 11 and marks == sorted(marks)
    assert sf.calls() == {"soap_login": 1, "query_all": 1, "query_more": 10}
    assert [(c.endpoint, c.items) for c in calls] == [("login.soap", 0), ("queryAll", 1000)] \
        + [("query_more", 1000)] * 9 + [("query_more", 500)]


def test_incremental_pull_returns_only_later_changes(sf: SalesforceBackend) -> None:
    """After the watermark only deals changed since come back, in stamp order, deleted ones
    flagged: reopened, won and deleted deals all show up."""
    data, ids = world(sf)
    connector = sf.connector()
    watermark = pull(connector)[-1].watermark
    assert watermark is not None
    lost = [ids.deals[d.index] for d in data.deals if d.state == "lost"]
    sf.advance_clock(300)
    sf.set_stage(lost[0], "open")
    sf.advance_clock(1)
    sf.set_stage(lost[1], "won")
    sf.advance_clock(1)
    sf.delete_deal(lost[2])
    deals = [d for p in pull(connector, watermark + timedelta(seconds=1)) for d in p.deals]
    assert [d.id for d in deals] == lost[:3]
    assert [(d.is_closed, d.is_won, d.deleted) for d in deals] == [
        (False, False, False), (True, True, False), (True, False, True)]
    assert not any(d.is_lost for d in deals)


def test_deals_by_id_flags_deleted_and_unknown_ids(sf: SalesforceBackend) -> None:
    """A deleted deal, an id that matches nothing and a non-id all come back deleted; a
    15-character id is read like its 18-character form."""
    _, ids = world(sf)
    sf.delete_deal(ids.deals[0])
    unknown = ids.deals[1][:5] + "Zz9Zz9Zz9Z" + "AAA"
    found = {d.id: d for d in sf.connector().deals_by_id(
        [ids.deals[0], ids.deals[1][:15], unknown, "x' OR Id != '"])}
    assert found[ids.deals[0]].deleted and found[unknown].deleted
    assert found["x' OR Id != '"].deleted
    assert not found[ids.deals[1]].deleted and found[ids.deals[1]].owner is not None


def test_an_expired_query_cursor_restarts_from_the_last_stamp(sf: SalesforceBackend) -> None:
    """When the locator dies between pages (INVALID_QUERY_LOCATOR), the pull re-runs the query
    from the last stamp served and still yields every deal exactly once."""
    sf.generate(5_000, seed=4)
    sf.admin("POST", "options", {"cursor_ttl_seconds": 5})
    seen: list[CallRecord] = []
    try:
        connector = sf.connector(observer=seen.append, bulk_threshold=None)  # REST cursors
        sf.reset_calls()
        pages = connector.changed_deals(EPOCH)
        first = next(pages)
        sf.advance_clock(60)
        rest = list(pages)
    finally:
        sf.admin("POST", "options", {"cursor_ttl_seconds": 900})
    ids = [d.id for p in [first, *rest] for d in p.deals]
    assert len(ids) == len(set(ids)) == 5_000
    assert sf.calls()["query_all"] == 2
    assert [c.error for c in seen if c.error] == ["INVALID_QUERY_LOCATOR"]
    assert sum(c.items for c in seen) < 5_000 + 100  # not re-read from the start


def test_a_missing_configured_field_is_a_setup_error_naming_it(sf: SalesforceBackend) -> None:
    """A configured Opportunity field the org lacks stops the pull with SetupError naming the
    field and the setting."""
    world(sf)
    connector = sf.connector(fields=FieldMap(loss_reason="Why_Lost__c"))
    with pytest.raises(SetupError) as info:
        pull(connector)
    assert "Why_Lost__c" in str(info.value) and "fields.loss_reason" in str(info.value)


# -- people ------------------------------------------------------------------------------------
def people_world(backend: SalesforceBackend) -> Ids:
    seen = NOW - timedelta(days=3)
    data = SeedData(
        owners=[SeedOwner(0, "Ada", "Rep", "ada@seller.example", True, "Europe/Berlin", "DE"),
                SeedOwner(1, "Old", "Rep", "old@seller.example", False, "America/Chicago", "US")],
        accounts=[SeedAccount(0, "Acme", "acme.example"), SeedAccount(1, "Globex", "gx.example")],
        contacts=[SeedContact(0, 0, "Cy", "Buyer", "cy@acme.example", False),
                  SeedContact(1, 0, "Di", "User", "di@acme.example", True),
                  SeedContact(2, 1, "Ed", "Boss", "ed@gx.example", False),
                  SeedContact(3, 1, "Flo", "Ops", "flo@gx.example", False)],
        deals=[SeedDeal(0, "Acme - Platform", 0, 0, "lost", NOW.date(), 1000.0, "Price", None,
                        None, ((1, "Evaluator"), (0, "Decision Maker")), seen, seen),
               SeedDeal(1, "Globex - Pilot", 1, 1, "lost", NOW.date(), None, "Timing", None,
                        None, (), seen, seen)])
    ids = backend.seed(data)
    backend.admin("PATCH", f"records/Contact/{ids.contacts[3]}", {"DoNotCall": True})
    return ids


def test_stakeholders_come_from_contact_roles_primary_first(sf: SalesforceBackend) -> None:
    """Roles give the contacts, primary first, opted-out flagged; with the account fallback off,
    a deal without roles and an unknown id map to []."""
    ids = people_world(sf)
    unknown = ids.deals[0][:3] + "000000000000000"
    found = sf.connector(account_contacts_fallback=False).stakeholders(
        [ids.deals[0], ids.deals[1], unknown])
    assert set(found) == {ids.deals[0], ids.deals[1], unknown}
    assert [(c.id, c.role, c.opted_out) for c in found[ids.deals[0]]] == [
        (ids.contacts[1], "Evaluator", True), (ids.contacts[0], "Decision Maker", False)]
    assert found[ids.deals[0]][0].email == "di@acme.example"
    assert found[ids.deals[1]] == [] and found[unknown] == []


def test_account_contacts_are_the_fallback_by_default(sf: SalesforceBackend) -> None:
    """By default a deal without roles gets its account's contacts (DoNotCall counts as opted
    out); a deal with roles keeps just those."""
    ids = people_world(sf)
    found = sf.connector().stakeholders(ids.deals[:2])
    assert [(c.id, c.role, c.opted_out) for c in found[ids.deals[1]]] == [
        (ids.contacts[2], None, False), (ids.contacts[3], None, True)]
    assert len(found[ids.deals[0]]) == 2


def test_owners_carry_zone_country_and_active_flag(sf: SalesforceBackend) -> None:
    """Every user comes back with time zone, country and IsActive."""
    ids = people_world(sf)
    owners = {o.id: o for o in sf.connector().owners()}
    ada, old = owners[ids.owners[0]], owners[ids.owners[1]]
    assert (ada.timezone, ada.country, ada.active, ada.email) == (
        "Europe/Berlin", "DE", True, "ada@seller.example")
    assert (old.timezone, old.active) == ("America/Chicago", False)


# -- writing in upsert mode --------------------------------------------------------------------
def test_1000_tasks_cost_five_collection_calls_and_four_setup_calls(
        sf: SalesforceBackend) -> None:
    """ensure_setup is four calls after the login (describe Task and Opportunity, the org's
    TaskStatus and TaskPriority values); 1,000 tasks are five upserts of 200, each task
    carrying the Salesforce fields the draft maps to."""
    data, ids = world(sf)
    connector = sf.connector()
    sf.reset_calls()
    report = connector.ensure_setup()
    results = connector.write_tasks(drafts(data, ids, 1000))
    assert report.ok and report.key_mode == "upsert"
    assert all(r.ok and r.created for r in results)
    assert sf.calls() == {"soap_login": 1, "sobject_describe": 2, "query": 2,
                          "collections_upsert": 5}
    assert connector.calls_made == 10
    task = next(t for t in raw_tasks(sf) if t["Winback_Key__c"].endswith("-000000"))
    assert (task["Status"], task["Priority"], task["TaskSubtype"], task["IsReminderSet"]) == (
        "Not Started", "High", "Email", True)
    assert task["ReminderDateTime"].endswith("T15:00:00.250+0000")
    assert task["Description"] == "Ask how the new vendor is working out."


def test_rewriting_in_upsert_mode_creates_nothing_and_reopens_nothing(
        sf: SalesforceBackend) -> None:
    """Same keys again: no new task, same ids, created=False; a task the rep completed in the
    meantime stays completed (Status is only set on create)."""
    data, ids = world(sf)
    connector = sf.connector()
    batch = drafts(data, ids, 250)
    first = connector.write_tasks(batch)
    done = first[0].crm_id
    sf.admin("PATCH", f"records/Task/{done}", {"Status": "Completed"})
    second = connector.write_tasks(batch)
    assert [r.crm_id for r in first] == [r.crm_id for r in second]
    assert all(r.ok and r.created is False for r in second)
    assert len(sf.tasks()) == 250
    assert next(t for t in sf.tasks() if t.crm_id == done).completed


def test_an_inactive_owner_fails_only_its_record(sf: SalesforceBackend) -> None:
    """One INACTIVE_OWNER_OR_USER in a batch: that record fails (not retryable), the other
    nine are written, all in one call."""
    data, ids = world(sf)
    connector = sf.connector()
    connector.ensure_setup()
    inactive = ids.owners[next(o.index for o in data.owners if not o.active)]
    good = drafts(data, ids, 9)
    bad = drafts(data, ids, 1, owner=inactive)[0]
    sf.reset_calls()
    results = connector.write_tasks([*good[:4], bad, *good[4:]])
    assert [r.key for r in results] == [d.key for d in [*good[:4], bad, *good[4:]]]
    assert results[4].error_code == "INACTIVE_OWNER_OR_USER" and not results[4].retryable
    assert all(r.ok for r in results[:4] + results[5:])
    assert sf.calls() == {"collections_upsert": 1}


def test_locked_rows_are_retried_for_those_records_only(sf: SalesforceBackend) -> None:
    """UNABLE_TO_LOCK_ROW on three records: they are re-sent (one more call) and all land."""
    data, ids = world(sf)
    connector = sf.connector()
    connector.ensure_setup()
    sf.admin("POST", "locks", {"next": 3})
    sf.reset_calls()
    with capture_logs() as logs:
        results = connector.write_tasks(drafts(data, ids, 10))
    assert all(r.ok for r in results)
    assert len(sf.tasks()) == 10
    assert sf.calls() == {"collections_upsert": 2}
    assert [e["error"] for e in logs if e["event"] == "crm.retry"] == ["UNABLE_TO_LOCK_ROW"]


def test_rows_that_stay_locked_come_back_retryable(sf: SalesforceBackend) -> None:
    """When the lock outlasts the retry budget the record fails retryable; others are kept."""
    data, ids = world(sf)
    connector = sf.connector(retry_budget=1.0)
    connector.ensure_setup()
    batch = drafts(data, ids, 5)
    sf.admin("POST", "locks", {"ids": [batch[2].deal_id]})
    try:
        results = connector.write_tasks(batch)
    finally:
        sf.admin("POST", "locks", {"clear": True})
    locked = [r for r in results if not r.ok]
    assert locked and all(r.error_code == "UNABLE_TO_LOCK_ROW" and r.retryable for r in locked)
    assert len(sf.tasks()) == 5 - len(locked)


@pytest.mark.parametrize(("fault", "code"), [
    ({"error_rate": 0.3, "error_status": 500}, "UNKNOWN_EXCEPTION"),
    ({"error_rate": 0.3, "error_status": 503}, "SERVER_UNAVAILABLE"),
    ({"rate_429": 0.3}, "REQUEST_LIMIT_EXCEEDED"),  # 403 ConcurrentRequests
])
def test_a_storm_of_transient_failures_converges_with_each_task_once(
        sf: SalesforceBackend, fault: dict[str, Any], code: str) -> None:
    """30% of calls refused (500, 503, concurrent-request 403): twenty writes all land, each
    task exactly once, after logged retries."""
    data, ids = world(sf)
    connector = sf.connector()
    connector.ensure_setup()
    batch = drafts(data, ids, 400)
    sf.reset_calls()
    sf.fault(**fault)
    try:
        with capture_logs() as logs:
            results = [r for i in range(0, 400, 20) for r in connector.write_tasks(batch[i:i + 20])]
    finally:
        sf.clear_faults()
    assert all(r.ok for r in results)
    keys = [t.key or "" for t in sf.tasks()]
    assert sorted(keys) == sorted(d.key for d in batch)
    retries = [e for e in logs if e["event"] == "crm.retry"]
    assert retries and all(e["error"] == code for e in retries)
    assert sf.calls()["collections_upsert"] == 20 + len(retries)


def test_an_expired_session_is_renewed_once(sf: SalesforceBackend) -> None:
    """401 INVALID_SESSION_ID: one fresh login, the call repeated, work goes on."""
    world(sf)
    connector = sf.connector()
    connector.owners()
    sf.expire_sessions()
    sf.reset_calls()
    with capture_logs() as logs:
        assert connector.owners()
    assert sf.calls() == {"query": 2, "soap_login": 1}
    assert [e["event"] for e in logs if e["event"].startswith("crm.re")] == ["crm.relogin"]


def test_a_session_revoked_right_after_the_relogin_is_survived(sf: SalesforceBackend) -> None:
    """The fresh session is revoked before its first use (an admin, another process): one
    more login, and the call still goes through."""
    world(sf)
    connector = sf.connector()
    connector.owners()
    sf.admin("POST", "sessions/expire", {"and_next": 1})
    sf.reset_calls()
    with capture_logs() as logs:
        assert connector.owners()
    assert sf.calls() == {"query": 3, "soap_login": 2}
    assert [e["event"] for e in logs if e["event"] == "crm.relogin"] == ["crm.relogin"] * 2


def test_a_session_refused_after_every_fresh_login_is_an_auth_error(sf: SalesforceBackend
                                                                    ) -> None:
    """If new sessions keep being refused, the connector stops with AuthError after
    MAX_REAUTH logins: no login loop."""
    world(sf)
    connector = sf.connector()
    sf.admin("POST", "options", {"session_ttl_seconds": 0})
    sf.reset_calls()
    try:
        with pytest.raises(AuthError):
            connector.owners()
    finally:
        sf.admin("POST", "options", {"session_ttl_seconds": 7200})
    assert MAX_REAUTH == 2
    assert sf.calls() == {"soap_login": 1 + MAX_REAUTH, "query": 1 + MAX_REAUTH}


# -- budget ------------------------------------------------------------------------------------
def test_request_limit_exceeded_is_budget_exhausted_at_once(sf: SalesforceBackend) -> None:
    """403 REQUEST_LIMIT_EXCEEDED (TotalRequests) is BudgetExhausted, never retried."""
    world(sf)
    sf.set_budget(limit=1000, used=1000)
    connector = sf.connector(api_budget_share=1.0)
    sf.reset_calls()
    with pytest.raises(BudgetExhausted) as info:
        connector.owners()
    assert sf.calls() == {"soap_login": 1, "query": 1}
    assert "TotalRequests" in str(info.value)


def test_the_budget_guard_stops_before_the_share(sf: SalesforceBackend) -> None:
    """With a 50% share of 10,000 the call that would start at 5,000 used is never sent."""
    world(sf)
    sf.set_budget(limit=10_000, used=4_998)
    connector = sf.connector(api_budget_share=0.5)
    connector.owners()
    connector.owners()
    usage = connector.api_usage()
    assert usage is not None and (usage.used, usage.limit) == (5_000, 10_000)
    sf.reset_calls()
    with pytest.raises(BudgetExhausted) as info:
        connector.owners()
    assert sf.calls() == {}
    assert "5000 of 10000" in str(info.value)


# -- marker mode -------------------------------------------------------------------------------
def test_marker_mode_is_reported_with_the_fix(marker_sf: SalesforceBackend) -> None:
    """Without the External ID field ensure_setup reports marker mode and the exact fix."""
    world(marker_sf)
    report = marker_sf.connector(task_key_field="Winback_Key__c").ensure_setup()
    assert report.key_mode == "marker" and not report.ok
    check = next(c for c in report.checks if c.name == "task key field")
    assert not check.ok and check.fix == FIX


def test_rewriting_in_marker_mode_creates_nothing(marker_sf: SalesforceBackend) -> None:
    """Keys ride in the Subject (kept whole when the subject is trimmed to 255); writing the
    same drafts again finds them and creates no task."""
    data, ids = world(marker_sf)
    connector = marker_sf.connector()
    batch = drafts(data, ids, 250)
    batch.append(replace(batch[0], key="long-" + uuid.uuid4().hex, subject="x" * 400))
    first = connector.write_tasks(batch)
    second = connector.write_tasks(batch)
    assert all(r.ok for r in first + second)
    assert all(r.created for r in first) and not any(r.created for r in second)
    assert [r.crm_id for r in first] == [r.crm_id for r in second]
    tasks = marker_sf.tasks()
    assert sorted(t.key or "" for t in tasks) == sorted(d.key for d in batch)
    trimmed = next(t for t in tasks if t.key == batch[-1].key)
    assert len(trimmed.subject) == 255 and trimmed.subject.endswith(f"[wb:{batch[-1].key}]")
    found = connector.find_tasks([d.key for d in batch])
    assert {k: v.crm_id for k, v in found.items()} == {r.key: r.crm_id for r in first}


def test_a_lost_answer_is_looked_up_before_anything_is_resent(
        marker_sf: SalesforceBackend) -> None:
    """The create times out but the server carries it out: the retry looks the keys up,
    finds the tasks and sends nothing again."""
    data, ids = world(marker_sf)
    connector = marker_sf.connector(timeout=1.0)
    connector.ensure_setup()
    batch = drafts(data, ids, 20)
    marker_sf.reset_calls()
    marker_sf.fault(endpoint="collections_create", slow_rate=1.0, slow_seconds=1.6)
    try:
        results = connector.write_tasks(batch)
    finally:
        marker_sf.clear_faults()
    assert all(r.ok and r.created for r in results)
    assert sorted(t.key or "" for t in marker_sf.tasks()) == sorted(d.key for d in batch)
    assert marker_sf.calls() == {"query_all": 2, "collections_create": 1}


# -- escaping and secrets ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Loss_Reason__c' OR Name != '", "Bad\\Field", "A.B", ""])
def test_bad_field_names_are_refused_before_any_call(sf: SalesforceBackend, name: str) -> None:
    """A configured field name that is not an API name never reaches a query."""
    fields = FieldMap(loss_reason="Loss_Reason__c", custom={"x": name})
    connector = sf.connector(fields=fields)
    sf.reset_calls()
    with pytest.raises(SetupError):
        pull(connector)
    with pytest.raises(SetupError):
        connector.write_tasks([])
    assert sf.calls() == {}


@pytest.mark.parametrize("mode", ["upsert", "marker"])
def test_keys_with_quotes_and_wildcards_are_matched_exactly(
        sf: SalesforceBackend, marker_sf: SalesforceBackend, mode: str) -> None:
    """Keys with quotes, backslashes, % and _ are written and found exactly: no broken query,
    no wildcard match on a look-alike key."""
    backend = sf if mode == "upsert" else marker_sf
    data, ids = world(backend)
    connector = backend.connector()
    odd = [r"o'brien\%_1", "o'brien\\%_2' OR Subject != '", 'say "hi"\n']
    batch = [replace(d, key=k) for d, k in zip(drafts(data, ids, 3), odd, strict=True)]
    assert all(r.ok for r in connector.write_tasks(batch))
    found = connector.find_tasks([*odd, r"o'brien\%a1", "o'brien%"])
    assert sorted(found) == sorted(odd)
    assert len(backend.tasks()) == 3


def test_secrets_never_reach_logs_or_errors(sf: SalesforceBackend) -> None:
    """Logins, a re-login, retries and a refused login log nothing secret, and no error text
    carries the password, token or session id."""
    data, ids = world(sf)
    connector = sf.connector()
    with capture_logs() as logs:
        connector.owners()
        first_session = connector._client.sf().session_id
        sf.expire_sessions()
        sf.fault(error_rate=0.5, error_status=503)
        try:
            connector.write_tasks(drafts(data, ids, 30))
        finally:
            sf.clear_faults()
        second_session = connector._client.sf().session_id
        with pytest.raises(AuthError) as info:
            sf.connector(password="Not-The-Password-99").owners()
    text = repr(logs) + str(info.value) + repr(info.value.__dict__)
    assert logs and any(e["event"] == "crm.call" for e in logs)
    for secret in (PASSWORD, TOKEN, CLIENT_SECRET, "Not-The-Password-99", first_session,
                   second_session, first_session.split("!")[1]):
        assert secret not in text


def test_every_call_is_tagged_with_the_run_and_observed(sf: SalesforceBackend) -> None:
    """begin_run sends X-Winback-Run on later calls (the emulator sees two runs overlap) and
    every HTTP request becomes a CallRecord."""
    world(sf)
    seen: list[CallRecord] = []
    first, second = sf.connector(observer=seen.append), sf.connector()
    first.begin_run("run-a")
    first.owners()
    second.begin_run("run-b")
    second.owners()
    first.owners()
    overlaps = sf.admin("GET", "violations")["overlapping_runs"]
    assert [sorted(o["runs"]) for o in overlaps] == [["run-a", "run-b"]]
    assert [(c.endpoint, c.status) for c in seen] == [("login.soap", 200), ("query", 200),
                                                       ("query", 200)]
    assert seen[1].items >= 4 and all(c.connection == "sf-sandbox" for c in seen)


def test_the_run_guard_runs_before_every_request(sf: SalesforceBackend) -> None:
    """The worker's lease check (begin_run's guard) runs before each HTTP request, the
    login and the setup's describes included; a guard that raises stops the request."""
    world(sf)
    connector = sf.connector()
    seen: list[int] = []
    connector.begin_run("run-a", lambda: seen.append(1))
    connector.ensure_setup()
    assert connector.calls_made >= 3
    assert len(seen) == connector.calls_made

    class Stop(Interrupted):
        pass

    def refuse() -> None:
        raise Stop

    connector.begin_run("run-b", refuse)
    made = connector.calls_made
    with pytest.raises(Stop):
        connector.owners()
    assert connector.calls_made == made


def test_closing_tasks_marks_them_completed_and_rejects_non_ids(sf: SalesforceBackend) -> None:
    """close_tasks completes tasks by CRM id in one call; a malformed id fails alone, unsent."""
    data, ids = world(sf)
    connector = sf.connector()
    written = connector.write_tasks(drafts(data, ids, 3))
    sf.reset_calls()
    results = connector.close_tasks([r.crm_id or "" for r in written] + ["bogus'"])
    assert [r.ok for r in results] == [True, True, True, False]
    assert results[3].error_code == "MALFORMED_ID"
    assert sf.calls() == {"collections_update": 1}
    assert all(t.completed for t in sf.tasks())
    found = connector.find_tasks([r.key for r in written])
    assert len(found) == 3 and all(ref.completed for ref in found.values())


def test_due_date_is_the_draft_date(sf: SalesforceBackend) -> None:
    """ActivityDate is the draft's date as is: no time-zone shift."""
    data, ids = world(sf)
    draft = replace(drafts(data, ids, 1)[0], due_date=date(2031, 12, 31))
    sf.connector().write_tasks([draft])
    assert sf.tasks()[0].due_date == date(2031, 12, 31)
