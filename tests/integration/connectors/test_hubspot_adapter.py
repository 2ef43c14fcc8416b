"""HubSpot-specific behaviour of `connectors.hubspot.HubSpotConnector`, with the real SDK over
real HTTP to the HubSpot emulator (the shared port contract lives in test_contract.py)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import structlog
from structlog.testing import capture_logs

from connectors.base import MAX_REAUTH, ApiUsage, CallRecord, FieldMap
from connectors.errors import (
    AuthError,
    BudgetExhausted,
    FatalConnectionError,
    Interrupted,
    RetryableError,
    SetupError,
)
from connectors.hubspot import HubSpotConnector
from connectors.hubspot.limits import Limiter, Window
from connectors.models import Channel, Priority, TaskDraft
from sandbox.hubspot import HubSpotEmulator
from sandbox.server import EmulatorServer
from sandbox.tls import make_ca
from tests.integration.connectors.hubspot_backend import HIGH_LIMITS, OAUTH, HubSpotBackend

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
STAMP = "2025-03-01T10:00:00.000Z"


@pytest.fixture
def crm(hs: HubSpotBackend) -> dict[str, str]:
    """A small hand-made portal: owners (one deactivated), a company, contacts, deals."""
    ids: dict[str, str] = hs.admin("POST", "seed", {"objects": {
        "owners": [{"ref": "ann", "email": "ann@seller.example", "firstName": "Ann",
                    "lastName": "Rep"},
                   {"ref": "gone", "email": "gone@seller.example", "firstName": "Gus",
                    "archived": True}],
        "companies": [{"ref": "zeta", "name": "Zeta"}, {"ref": "acme", "name": "Acme"}],
        "contacts": [{"ref": "cy", "firstname": "Cy", "lastname": "Buyer",
                      "email": "cy@acme.example", "associations": {"companies": ["@acme"]}},
                     {"ref": "out", "firstname": "Opal", "email": "opal@acme.example",
                      "hs_email_optout": "true", "associations": {"companies": ["@acme"]}}],
        "deals": [
            {"ref": "lost", "dealname": "Acme Platform", "dealstage": "closedlost",
             "amount": "12000", "closedate": "2025-02-20T00:00:00.000Z",
             "closed_lost_reason": "Price", "competitor": "Globex",
             "contract_end_date": "2026-02-20", "closed_won_reason": "n/a",
             "hubspot_owner_id": "@ann", "hs_lastmodifieddate": STAMP,
             "associations": {"contacts": ["@cy", "@out"],
                              "companies": [{"id": "@zeta", "typeId": 341},
                                            {"id": "@acme", "typeId": 5}]}},
            {"ref": "churned", "dealname": "Acme Renewal", "pipeline": "1307720549",
             "dealstage": "1307720556", "hubspot_owner_id": "@gone",
             "hs_lastmodifieddate": STAMP, "associations": {"companies": ["@acme"]}},
            {"ref": "onhold", "dealname": "Acme Hold", "pipeline": "1307720549",
             "dealstage": "1307720554", "hs_lastmodifieddate": STAMP},
            {"ref": "renewed", "dealname": "Acme Renewed", "pipeline": "1307720549",
             "dealstage": "1307720553", "hs_lastmodifieddate": STAMP},
        ]}})["ids"]
    return ids


def drafts(crm: dict[str, str], count: int, *, owner: str | None = None,
           prefix: str | None = None) -> list[TaskDraft]:
    run = prefix or uuid.uuid4().hex[:8]
    due = date(2030, 5, 16)
    return [TaskDraft(key=f"{run}-{i:05d}", deal_id=crm["lost"], owner_id=owner or crm["ann"],
                      subject=f"Follow-up {i}", body=f"Body {i}\nAsk <why>", due_date=due,
                      remind_at=datetime(2030, 5, 16, 9, tzinfo=UTC) + timedelta(minutes=i),
                      channel=(Channel.CALL, Channel.EMAIL, Channel.TODO)[i % 3],
                      priority=(Priority.HIGH, Priority.NORMAL, Priority.LOW)[i % 3],
                      contact_id=crm["cy"], account_id=crm["acme"])
            for i in range(count)]


def stored_tasks(hs: HubSpotBackend) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = hs.admin("GET", "tasks")["results"]
    return tasks


def pull(connector: HubSpotConnector, since: datetime = EPOCH) -> list[Any]:
    return list(connector.changed_deals(since))


def key_property(hs: HubSpotBackend, unique: bool) -> None:
    hs.admin("POST", "properties", {"objectType": "tasks", "name": hs.key_property,
                                    "hasUniqueValue": unique})


# -- reading ---------------------------------------------------------------------------------
def test_pull_restarts_before_the_search_cap_and_yields_each_deal_once(hs: HubSpotBackend
                                                                       ) -> None:
    """10,300 changed deals come out oldest first in pages, past the 10,000-result cap."""
    assert hs.generate(10_300, seed=5) > 0
    connector = hs.connector()
    pages = connector.changed_deals(EPOCH)
    first = next(pages)
    # streamed: five search pages buffered (for full association/company batches), no more
    assert hs.calls()["deals.search"] == 5
    assert len(first.deals) >= 800
    rest = list(pages)
    ids = [d.id for p in [first, *rest] for d in p.deals]
    assert len(ids) == len(set(ids)) == 10_300
    marks = [p.watermark for p in [first, *rest]]
    assert marks == sorted(marks)
    stamps = [d.modified_at for p in [first, *rest] for d in p.deals]
    assert stamps == sorted(stamps)
    # 200 a page, re-read from 5 rows back, one restart near the cap
    assert hs.calls()["deals.search"] <= 10_300 // 195 + 3


def test_one_stamp_shared_past_the_cap_is_walked_by_id(hs: HubSpotBackend) -> None:
    """Deals sharing one modification stamp beyond a query's reach are still all read."""
    deals = [{"dealname": f"D{i}", "hs_lastmodifieddate": STAMP} for i in range(450)]
    deals += [{"dealname": f"L{i}", "hs_lastmodifieddate": "2025-03-02T10:00:00.000Z"}
              for i in range(30)]
    hs.admin("POST", "seed", {"objects": {"deals": deals}})
    connector = hs.connector()
    connector._deals.search_cap = 400  # what 10,000 is to HubSpot, scaled down
    ids = [d.id for p in pull(connector) for d in p.deals]
    assert len(ids) == len(set(ids)) == 480


def test_incremental_pull_sees_only_changed_and_new_deals(hs: HubSpotBackend,
                                                          crm: dict[str, str]) -> None:
    """After the watermark: the reopened, the won and the new deal; not the deleted one."""
    connector = hs.connector()
    watermark = max(p.watermark for p in pull(connector))
    hs.advance_clock(3600)
    hs.set_stage(crm["lost"], "open")
    hs.set_stage(crm["onhold"], "won")
    hs.delete_deal(crm["renewed"])
    new = hs.admin("POST", "objects/deals", {"properties": {"dealname": "Fresh",
                                                            "dealstage": "closedlost"}})
    found = {d.id: d for p in pull(connector, watermark + timedelta(milliseconds=1))
             for d in p.deals}
    assert set(found) == {crm["lost"], crm["onhold"], new["id"]}
    assert not found[crm["lost"]].is_closed
    assert found[crm["onhold"]].is_won
    assert found[new["id"]].is_lost


def test_closed_lost_comes_from_pipeline_metadata(hs: HubSpotBackend,
                                                  crm: dict[str, str]) -> None:
    """Lost = closed with probability 0 in any pipeline; an open 0% stage is not lost."""
    connector = hs.connector(fields=FieldMap(
        loss_reason="closed_lost_reason", competitor="competitor",
        contract_end="contract_end_date", custom={"won_note": "closed_won_reason"}))
    deals = {d.id: d for p in pull(connector) for d in p.deals}
    churned, onhold, renewed, lost = (deals[crm[k]] for k in
                                      ("churned", "onhold", "renewed", "lost"))
    assert (churned.stage, churned.pipeline, churned.is_lost) == ("Churned", "Renewals", True)
    assert (onhold.stage, onhold.is_closed, onhold.is_lost) == ("On Hold", False, False)
    assert (renewed.is_closed, renewed.is_won) == (True, True)
    assert (lost.stage, lost.pipeline, lost.is_lost) == ("Closed Lost", "Sales Pipeline", True)
    assert (lost.loss_reason, lost.competitor, lost.contract_end) == \
        ("Price", "Globex", date(2026, 2, 20))
    assert lost.custom == {"won_note": "n/a"} and lost.amount == 12000.0
    assert lost.closed_at == datetime(2025, 2, 20, tzinfo=UTC)
    assert (lost.account_id, lost.account_name) == (crm["acme"], "Acme")  # the primary one
    assert lost.owner is not None and (lost.owner.name, lost.owner.active) == ("Ann Rep", True)
    assert churned.owner is not None and churned.owner.active is False
    assert deals[crm["onhold"]].account_id is None


def test_stakeholders_treat_no_associations_as_none_and_flag_opt_outs(
        hs: HubSpotBackend, crm: dict[str, str]) -> None:
    """HubSpot's 207 NO_ASSOCIATIONS_FOUND means no contacts; opted-out contacts are flagged."""
    calls: list[CallRecord] = []
    connector = hs.connector(observer=calls.append)
    found = connector.stakeholders([crm["lost"], crm["churned"], "987654321"])
    assert set(found) == {crm["lost"], crm["churned"], "987654321"}
    assert found[crm["churned"]] == [] and found["987654321"] == []
    people = {c.name: c for c in found[crm["lost"]]}
    assert set(people) == {"Cy Buyer", "Opal"}
    assert people["Opal"].opted_out and not people["Cy Buyer"].opted_out
    assert [c.status for c in calls if c.endpoint == "associations.v4.batch.read"] == [207]


def test_owners_include_archived_ones_as_inactive(hs: HubSpotBackend) -> None:
    """Owners are read active and archived, 100 a page; archived means inactive."""
    hs.admin("POST", "seed", {"objects": {"owners": [
        *({"email": f"rep{i}@seller.example"} for i in range(150)),
        {"email": "left@seller.example", "archived": True}]}})
    owners = hs.connector().owners()
    assert len(owners) == 151
    assert [o.email for o in owners if not o.active] == ["left@seller.example"]
    assert all(o.timezone is None for o in owners)
    assert hs.calls()["owners.list"] == 3


def test_owners_call_sends_archived_false_not_python_false(hs: HubSpotBackend) -> None:
    """The query string HubSpot receives: `archived=false` / `archived=true`, as documented,
    not the SDK's str(bool) `False` / `True`."""
    hs.admin("POST", "seed", {"objects": {"owners": [
        {"email": "ann@seller.example"}, {"email": "left@seller.example", "archived": True}]}})
    assert len(hs.connector().owners()) == 2
    seen = hs.admin("GET", "queries?endpoint=owners.list")["queries"]
    assert [q["archived"] for q in seen] == [["false"], ["true"]]


def test_deals_by_id_flags_deleted_and_unknown_deals(hs: HubSpotBackend,
                                                     crm: dict[str, str]) -> None:
    """Archived or unknown ids come back as deleted deals, the rest as they are now."""
    hs.delete_deal(crm["renewed"])
    deals = hs.connector().deals_by_id([crm["lost"], crm["renewed"], "987654321"])
    assert [(d.id, d.deleted) for d in deals] == [
        (crm["lost"], False), (crm["renewed"], True), ("987654321", True)]
    assert deals[0].is_lost and deals[0].account_name == "Acme"
    with pytest.raises(ValueError):
        hs.connector().deals_by_id(["12; DROP"])


# -- writing ---------------------------------------------------------------------------------
def test_writing_1000_tasks_costs_ten_write_calls(hs: HubSpotBackend,
                                                  crm: dict[str, str]) -> None:
    """After set-up, 1,000 tasks take exactly 10 batch creates and nothing else."""
    connector = hs.connector()
    report = connector.ensure_setup()
    assert report.key_mode == "upsert"
    hs.reset_calls()
    results = connector.write_tasks(drafts(crm, 1000))
    assert all(r.ok and r.created for r in results)
    assert hs.calls() == {"tasks.batch.create": 10}
    task = next(t for t in stored_tasks(hs) if t["properties"][hs.key_property].endswith("00001"))
    props = task["properties"]
    assert props["hs_timestamp"] == "2030-05-16T09:01:00.000Z"
    assert props["hs_task_reminders"] == str(int(datetime(2030, 5, 16, 9, 1,
                                                          tzinfo=UTC).timestamp() * 1000))
    assert (props["hs_task_type"], props["hs_task_priority"], props["hs_task_status"]) == \
        ("EMAIL", "MEDIUM", "NOT_STARTED")
    assert props["hs_task_body"] == "Body 1<br>Ask &lt;why&gt;"  # the notes field is HTML
    assert task["associations"] == {"deals": [crm["lost"]], "contacts": [crm["cy"]],
                                    "companies": [crm["acme"]]}


def test_rewriting_keys_with_a_unique_property_creates_no_task(hs: HubSpotBackend,
                                                               crm: dict[str, str]) -> None:
    """A unique key turns a repeated create into a conflict naming the existing task."""
    connector = hs.connector()
    batch = drafts(crm, 150)
    first = connector.write_tasks(batch)
    hs.reset_calls()
    second = connector.write_tasks(batch)
    assert [r.crm_id for r in first] == [r.crm_id for r in second]
    assert all(r.ok and r.created is False for r in second)
    assert hs.calls() == {"tasks.batch.create": 2}
    # HubSpot may instead reject the whole batch on a conflict (409): look the keys up
    hs.admin("POST", "settings", {"batch_conflicts": "whole"})
    hs.reset_calls()
    mixed = [*batch[:50], *drafts(crm, 50)]
    third = connector.write_tasks(mixed)
    assert all(r.ok for r in third)
    assert [r.crm_id for r in third[:50]] == [r.crm_id for r in first[:50]]
    assert hs.calls() == {"tasks.batch.create": 2, "tasks.batch.read": 1}
    assert len(stored_tasks(hs)) == 200


def test_rewriting_keys_with_a_plain_property_searches_before_creating(
        hs: HubSpotBackend, crm: dict[str, str]) -> None:
    """Without uniqueness the keys are searched first: a second write creates nothing."""
    key_property(hs, unique=False)
    connector = hs.connector()
    assert connector.ensure_setup().key_mode == "create+search"
    batch = drafts(crm, 150)
    first = connector.write_tasks(batch)
    hs.reset_calls()
    second = connector.write_tasks(batch)
    assert all(r.ok for r in first + second)
    assert [r.crm_id for r in first] == [r.crm_id for r in second]
    assert hs.calls() == {"tasks.search": 2}
    by_id = {t["id"]: t["properties"][hs.key_property] for t in stored_tasks(hs)}
    assert len(by_id) == 150
    assert all(by_id[r.crm_id] == r.key for r in first)


def test_results_are_matched_by_key_although_the_answer_is_reordered(
        hs: HubSpotBackend, crm: dict[str, str]) -> None:
    """The emulator answers in another order; each result still names its own task."""
    batch = drafts(crm, 60)
    results = hs.connector().write_tasks(batch)
    assert [r.key for r in results] == [d.key for d in batch]
    stored = {t["id"]: t["properties"] for t in stored_tasks(hs)}
    for draft, result in zip(batch, results, strict=True):
        assert result.crm_id is not None
        assert stored[result.crm_id][hs.key_property] == draft.key
        assert stored[result.crm_id]["hs_task_subject"] == draft.subject


def test_a_bad_owner_fails_only_its_own_task(hs: HubSpotBackend, crm: dict[str, str]) -> None:
    """A whole-batch 400 naming one input is split: only that task fails, in two calls."""
    connector = hs.connector()
    batch = drafts(crm, 100)
    bad = drafts(crm, 1, owner="987654321", prefix="bad")[0]
    retired = drafts(crm, 1, owner=crm["gone"], prefix="retired")[0]
    batch[37:37] = [bad, retired]
    connector.ensure_setup()
    hs.reset_calls()
    results = {r.key: r for r in connector.write_tasks(batch)}
    assert (results[bad.key].error_code, results[bad.key].retryable) == ("INVALID_OWNER_ID",
                                                                       False)
    assert results[bad.key].fields == ("hubspot_owner_id",)
    assert results[retired.key].error_code == "INACTIVE_OWNER"  # never sent
    assert sum(r.ok for r in results.values()) == 100
    assert hs.calls() == {"tasks.batch.create": 3}  # 100 + 1 -> 400; 100; the 1 remaining
    assert len(stored_tasks(hs)) == 100


def test_a_429_storm_converges_with_every_task_written_once(hs: HubSpotBackend,
                                                            crm: dict[str, str]) -> None:
    """30% of calls answered 429 with Retry-After 1: all written once, Retry-After obeyed."""
    calls: list[CallRecord] = []
    connector = hs.connector(observer=calls.append)
    connector.ensure_setup()
    hs.fault(rate_429=0.3, retry_after=1)
    batch = drafts(crm, 600)
    with capture_logs() as logs:
        results = connector.write_tasks(batch)
        found = connector.find_tasks([d.key for d in batch])
    assert all(r.ok for r in results)
    assert {k: f.crm_id for k, f in found.items()} == {r.key: r.crm_id for r in results}
    keys = [t["properties"][hs.key_property] for t in stored_tasks(hs)]
    assert len(keys) == len(set(keys)) == 600
    assert any(c.status == 429 for c in calls)
    assert any(e["event"] == "crm.retry" for e in logs)
    assert hs.violations()["retry_after"] == []


def test_search_stays_under_five_per_second_without_a_429(hs: HubSpotBackend) -> None:
    """The client limiter keeps search under HubSpot's 5/s, so no search is refused."""
    key_property(hs, unique=False)
    hs.admin("POST", "limits", {"search_per_second": 5})
    calls: list[CallRecord] = []
    connector = hs.connector(search_per_second=5, observer=calls.append)
    keys = [f"k{i}" for i in range(1_500)]
    started = time.monotonic()
    assert connector.find_tasks(keys) == {}
    assert time.monotonic() - started >= 2.0  # 15 searches: 5, then 5, then 5
    assert [c.status for c in calls if c.endpoint == "tasks.search"] == [200] * 15
    # the same work without the client limit runs into the emulator's
    eager: list[CallRecord] = []
    hs.connector(search_per_second=100, observer=eager.append).find_tasks(keys[:500])
    assert 429 in {c.status for c in eager}


def test_a_timed_out_create_is_never_duplicated(hs: HubSpotBackend) -> None:
    """A create whose answer never came may have happened: it is not blindly sent again."""
    for unique in (True, False):
        hs.admin("POST", "reset")
        crm = hs.admin("POST", "seed", {"objects": {
            "owners": [{"ref": "ann", "email": "ann@seller.example"}],
            "companies": [{"ref": "acme", "name": "Acme"}],
            "contacts": [{"ref": "cy", "firstname": "Cy"}],
            "deals": [{"ref": "lost", "dealname": "D", "dealstage": "closedlost"}]}})["ids"]
        key_property(hs, unique)
        connector = hs.connector(timeout=0.3, retry_budget=1.5)
        batch = drafts(crm, 30)
        hs.fault(endpoint="tasks.batch.create", slow_rate=1.0, slow_seconds=0.6)
        with pytest.raises(RetryableError) as info:
            connector.write_tasks(batch)
        # unique key: retried until the budget ran out; plain key: unconfirmed after a search
        assert info.value.code == ("TIMEOUT" if unique else "UNCONFIRMED_WRITE")
        hs.clear_faults()
        time.sleep(0.7)  # the slow creates land
        results = connector.write_tasks(batch)
        assert all(r.ok for r in results)
        keys = [t["properties"][hs.key_property] for t in stored_tasks(hs)]
        assert sorted(keys) == sorted(d.key for d in batch), f"unique={unique}"


# -- auth, budget, limits -----------------------------------------------------------------
def test_an_expired_oauth_token_is_refreshed_once_and_the_call_replayed(
        hs: HubSpotBackend, crm: dict[str, str]) -> None:
    """EXPIRED_AUTHENTICATION: one refresh, the call replayed, the work goes on."""
    connector = hs.connector(auth="oauth")
    assert len(connector.owners()) == 2
    hs.expire_sessions()
    with capture_logs() as logs:
        assert len(connector.owners()) == 2
    assert hs.calls()["oauth.token"] == 2
    assert hs.calls()["owners.list"] == 5  # 2 + the refused one + 2
    assert connector.calls_made == 7
    assert [e["event"] for e in logs if e["event"] == "crm.token_refreshed"] == \
        ["crm.token_refreshed"]
    assert connector.api_usage() is None  # OAuth calls carry no daily headers


def test_a_token_expired_right_after_its_refresh_is_refreshed_again(
        hs: HubSpotBackend, crm: dict[str, str]) -> None:
    """The refreshed token is revoked before its first use: one more refresh, and the call
    still goes through."""
    connector = hs.connector(auth="oauth")
    assert len(connector.owners()) == 2
    hs.admin("POST", "tokens/expire", {"and_next": 1})
    hs.reset_calls()
    assert len(connector.owners()) == 2
    assert hs.calls() == {"owners.list": 4, "oauth.token": 2}  # 2 refused, then 2 pages


def test_tokens_refused_after_every_refresh_are_an_auth_error(
        hs: HubSpotBackend, crm: dict[str, str]) -> None:
    """If every new token is refused, the call stops with AuthError after MAX_REAUTH
    refreshes: no refresh loop."""
    connector = hs.connector(auth="oauth")
    assert len(connector.owners()) == 2
    hs.admin("POST", "tokens/expire", {"and_next": 10})
    hs.reset_calls()
    try:
        with pytest.raises(AuthError) as info:
            connector.owners()
    finally:
        hs.admin("POST", "tokens/expire", {"and_next": 0})
    assert info.value.status == 401
    assert MAX_REAUTH == 2
    assert hs.calls() == {"owners.list": 1 + MAX_REAUTH, "oauth.token": MAX_REAUTH}


def test_a_refused_static_token_is_an_auth_error_without_retry(hs: HubSpotBackend) -> None:
    """A static token gets no refresh: a 401 is final."""
    connector = hs.connector(access_token="sk-not-a-private-app-token")
    with pytest.raises(AuthError) as info:
        connector.owners()
    assert info.value.status == 401 and info.value.endpoint == "owners.list"
    assert hs.calls() == {"owners.list": 1}


def test_a_daily_429_raises_budget_exhausted_without_retrying(hs: HubSpotBackend) -> None:
    """policyName DAILY: the day's budget is gone, so the call is not retried."""
    hs.admin("POST", "limits", {"daily": 3})
    for _ in range(3):
        requests.get(f"{hs.url}/crm/v3/pipelines/deals", timeout=10,
                     headers={"Authorization": f"Bearer {hs.token}"})
    hs.reset_calls()
    with pytest.raises(BudgetExhausted) as info:
        hs.connector().owners()
    assert info.value.status == 429
    assert hs.calls() == {"owners.list": 1}


def test_budget_guard_stops_at_the_configured_share(hs: HubSpotBackend,
                                                    crm: dict[str, str]) -> None:
    """With a 50% share of a 40-call day, the 21st call is never sent."""
    hs.admin("POST", "limits", {"daily": 40})
    connector = hs.connector(api_budget_share=0.5)
    with pytest.raises(BudgetExhausted) as info:
        for _ in range(30):
            connector.owners()
    assert "20 of 40" in str(info.value)
    assert sum(hs.calls().values()) == 20
    assert connector.api_usage() == ApiUsage(20, 40)


def test_limiter_spaces_calls_by_window_and_pauses_for_retry_after() -> None:
    """At most `limit` calls per window, counted from their answers; a pause holds all."""
    window = Window(3, 0.2)
    assert window.delay(0.0) == 0.0
    limiter = Limiter(1_000, 3, search_span=0.2)
    started = time.monotonic()
    for _ in range(7):
        with limiter.slot(search=True):
            pass
    assert time.monotonic() - started >= 0.4
    limiter.pause(0.3)
    started = time.monotonic()
    with limiter.slot(search=False):
        pass
    assert time.monotonic() - started >= 0.29


def test_run_id_is_sent_with_every_call(hs: HubSpotBackend, crm: dict[str, str]) -> None:
    """Two runs interleaving on one account are visible to HubSpot through X-Winback-Run."""
    first, second = hs.connector(), hs.connector()
    first.begin_run("run-1")
    second.begin_run("run-2")
    first.owners()
    second.owners()
    first.owners()
    overlaps = hs.violations()["overlapping_runs"]
    assert [o["runs"] for o in overlaps] == [["run-1", "run-2"]]


def test_the_run_guard_runs_before_every_call_setup_included(hs: HubSpotBackend,
                                                              crm: dict[str, str]) -> None:
    """The worker's lease check (begin_run's guard) runs before each HTTP call, the setup
    calls (pipelines, owners, properties) included; a guard that raises stops the call."""
    connector = hs.connector()
    seen: list[int] = []
    connector.begin_run("run-1", lambda: seen.append(1))
    before = connector.calls_made
    connector.ensure_setup()
    assert connector.calls_made - before >= 3
    assert len(seen) == connector.calls_made - before

    class Stop(Interrupted):
        pass

    def refuse() -> None:
        raise Stop

    connector.begin_run("run-2", refuse)
    with pytest.raises(Stop):
        connector.owners()
    assert connector.calls_made == before + len(seen)  # nothing sent


# -- set-up, secrets, TLS ------------------------------------------------------------------
def test_ensure_setup_creates_the_key_property_and_reports_missing_fields(
        hs: HubSpotBackend, crm: dict[str, str]) -> None:
    """The unique key property is created once; a missing deal field fails with its fix."""
    connector = hs.connector(fields=FieldMap(loss_reason="closed_lost_reason",
                                               competitor="rival_name"))
    report = connector.ensure_setup()
    checks = {c.name: c for c in report.checks}
    assert not report.ok and report.key_mode == "upsert"
    assert checks["closed-lost stages"].detail == \
        "closed-lost: Closed Lost (Sales Pipeline); Churned (Renewals)"
    assert checks["deal field closed_lost_reason"].ok
    missing = checks["deal field rival_name"]
    assert not missing.ok and "rival_name" in missing.fix and "fields.competitor" in missing.fix
    prop = requests.get(f"{hs.url}/crm/v3/properties/tasks/{hs.key_property}", timeout=10,
                        headers={"Authorization": f"Bearer {hs.token}"}).json()
    assert prop["hasUniqueValue"] is True and prop["groupName"] == "taskinformation"
    connector.ensure_setup()
    assert hs.calls()["properties.create"] == 1


def test_without_permission_to_create_the_key_property_writes_refuse(
        hs: HubSpotBackend, crm: dict[str, str]) -> None:
    """No key property and no leave to create it: set-up says how, writes raise SetupError."""
    connector = hs.connector(create_key_property=False)
    check = next(c for c in connector.ensure_setup().checks if c.name == "task key property")
    assert not check.ok and hs.key_property in check.fix
    with pytest.raises(SetupError):
        connector.write_tasks(drafts(crm, 1))
    assert "properties.create" not in hs.calls() and stored_tasks(hs) == []


def test_secrets_never_reach_logs_or_error_messages(hs: HubSpotBackend,
                                                    crm: dict[str, str]) -> None:
    """Tokens, refresh tokens and client secrets appear in no log line and no error."""
    connector = hs.connector(auth="oauth")
    with capture_logs() as logs:
        pull(connector)
        hs.expire_sessions()
        connector.write_tasks(drafts(crm, 3))
        secrets = [s for s in connector._transport.tokens.secrets() if s]
        bad = hs.connector(access_token="sk-secret-static-token-1234")
        with pytest.raises(AuthError) as info:
            bad.owners()
    secrets += [OAUTH["client_secret"], OAUTH["refresh_token"], "sk-secret-static-token-1234"]
    assert len(secrets) >= 5  # two access tokens were issued
    assert any(e["event"] == "crm.token_refreshed" for e in logs)
    text = repr(logs) + str(info.value) + repr(info.value) + repr(connector.settings)
    assert info.value.__cause__ is None
    for secret in secrets:
        assert secret not in text


def test_a_private_ca_bundle_is_trusted(tmp_path: Path) -> None:
    """`ca_bundle` makes the SDK trust the emulator's CA; without it TLS fails, unretried."""
    ca = make_ca(tmp_path)
    emulator = HubSpotEmulator(seed=1, **HIGH_LIMITS)
    server = EmulatorServer(emulator, 0, ssl_context=ca.server_context).start()
    try:
        backend = HubSpotBackend(server.url, auth="static", emulator=emulator)
        assert backend.connector(ca_bundle=str(ca.ca_path)).owners() == []
        with pytest.raises(FatalConnectionError) as info:
            backend.connector(retry_budget=5).owners()
        assert info.value.code == "TLS"
    finally:
        server.stop()


def test_calls_are_logged_and_observed_with_endpoint_status_and_items(
        hs: HubSpotBackend, crm: dict[str, str]) -> None:
    """Every HTTP call is a CallRecord and a `crm.call` event (debug), items counted."""
    calls: list[CallRecord] = []
    connector = hs.connector(observer=calls.append)
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(10))  # DEBUG
    try:
        with capture_logs() as logs:
            connector.stakeholders([crm["lost"]])
    finally:
        structlog.configure(**saved)
    assert [(c.endpoint, c.status, c.items) for c in calls] == [
        ("associations.v4.batch.read", 200, 1), ("contacts.batch.read", 200, 2)]
    assert [e["endpoint"] for e in logs if e["event"] == "crm.call"] == \
        [c.endpoint for c in calls]
    assert connector.calls_made == 2


def test_concurrent_calls_share_one_limiter(hs: HubSpotBackend, crm: dict[str, str]) -> None:
    """Threads of one connector share one burst window: 20 parallel calls, none refused."""
    hs.admin("POST", "limits", {"burst": 12, "burst_window_seconds": 1.0})
    statuses: list[int | None] = []
    connector = hs.connector(burst_limit=12, observer=lambda c: statuses.append(c.status))
    connector._transport.limiter.burst.span = 1.05  # the emulator's window, scaled down
    threads = [threading.Thread(target=connector.owners) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(statuses) == 20 and set(statuses) == {200}
