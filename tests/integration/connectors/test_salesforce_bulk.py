"""Big pulls through Bulk API 2.0: the real `SalesforceConnector` (simple-salesforce's sf.bulk2)
against the Salesforce emulator over HTTPS. The first REST page's totalSize decides; above the
threshold the rest comes from a query job; the deals are the same as REST's; a refused job
falls back to REST (said once); a failed job is an error, never "no rows"."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from connectors.base import FieldMap
from connectors.models import Deal
from connectors.salesforce import SalesforceConnector
from connectors.salesforce.bulk import BulkJobFailed
from tests.integration.connectors.salesforce_backend import (
    USERNAME,
    SalesforceBackend,
    start_backend,
)

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
DEALS = 2600  # the first REST page has 1,000 rows, so more pages follow


@pytest.fixture(scope="module")
def sf() -> Iterator[SalesforceBackend]:
    backend, stop = start_backend()
    backend.generate(DEALS, seed=21)
    yield backend
    stop()


@pytest.fixture(autouse=True)
def _fresh_bulk(sf: SalesforceBackend) -> Iterator[None]:
    sf.admin("POST", "bulk", {"allow": [USERNAME], "fail_next": 0})
    sf.reset_calls()
    yield
    sf.admin("POST", "bulk", {"allow": [USERNAME], "fail_next": 0})


def deals(connector: SalesforceConnector) -> list[Deal]:
    return [d for page in connector.changed_deals(EPOCH) for d in page.deals]


def bulk_calls(sf: SalesforceBackend) -> dict[str, int]:
    return {k: v for k, v in sf.calls().items() if k.startswith("bulk2")}


def test_a_pull_above_the_threshold_reads_through_a_query_job(sf: SalesforceBackend) -> None:
    connector = sf.connector(bulk_threshold=2000)
    pulled = deals(connector)
    assert len(pulled) == len({d.id for d in pulled}) == DEALS
    calls = sf.calls()
    assert calls["query_all"] == 1 and "query_more" not in calls  # one REST page decided
    assert bulk_calls(sf) == {"bulk2_create": 1, "bulk2_job": 1, "bulk2_results": 1}
    stamps = [d.modified_at for d in pulled if d.modified_at is not None]
    assert stamps == sorted(stamps)


def test_a_pull_below_the_threshold_stays_on_rest(sf: SalesforceBackend) -> None:
    connector = sf.connector(bulk_threshold=DEALS)
    assert len(deals(connector)) == DEALS
    assert bulk_calls(sf) == {}
    assert sf.calls()["query_more"] == 2


def test_bulk_and_rest_pull_the_same_deals(sf: SalesforceBackend) -> None:
    """Dates, numbers, booleans, nulls, parents, deleted rows and configured fields read the
    same from Bulk's CSV as from REST's JSON."""
    records = sf.admin("GET", "records/Opportunity")["records"]
    first, second, third = (r["Id"] for r in records[:3])
    sf.delete_deal(first)  # IsDeleted through queryAll
    sf.admin("PATCH", f"records/Opportunity/{second}", {"Amount": None, "AccountId": None,
                                                        "Winback_Opt_Out__c": True})
    sf.deactivate_owner(next(r["OwnerId"] for r in records if r["Id"] == third))
    fields = FieldMap(loss_reason="Loss_Reason__c", competitor="Competitor__c",
                      contract_end="Contract_End__c", opt_out="Winback_Opt_Out__c",
                      pause_until="Winback_Pause_Until__c",
                      custom={"amount_again": "Amount", "won": "IsWon"})
    rest = deals(sf.connector(bulk_threshold=None, fields=fields))
    assert bulk_calls(sf) == {}
    via_bulk = deals(sf.connector(bulk_threshold=500, fields=fields))
    assert bulk_calls(sf)["bulk2_results"] == 1
    assert via_bulk == rest
    by_id = {d.id: d for d in via_bulk}
    assert by_id[first].deleted and by_id[second].amount is None and by_id[second].opted_out
    assert by_id[second].account_id is None and by_id[second].account_name is None
    owner = by_id[third].owner
    assert owner is not None and not owner.active
    assert isinstance(by_id[second].custom["won"], bool)


def test_without_bulk_permission_the_pull_falls_back_to_rest_and_says_so_once(
        sf: SalesforceBackend) -> None:
    sf.admin("POST", "bulk", {"deny": [USERNAME]})
    connector = sf.connector(bulk_threshold=500)
    with capture_logs() as logs:
        first = deals(connector)
        second = deals(connector)
    assert len(first) == len(second) == DEALS
    assert len({d.id for d in first}) == DEALS
    refused = [e for e in logs if e["event"] == "crm.bulk_unavailable"]
    assert len(refused) == 1 and refused[0]["fallback"] == "rest"
    assert bulk_calls(sf) == {"bulk2_create": 1}  # asked once, then never again
    check = connector.bulk_check()
    assert check.ok and check.warn and "fall back to REST" in check.detail


def test_doctor_says_bulk_is_allowed(sf: SalesforceBackend) -> None:
    check = sf.connector().bulk_check()
    assert check.ok and not check.warn and "allowed" in check.detail
    assert sf.admin("GET", "bulk")["states"].get("Aborted") == 1  # the probe job was stopped


def test_a_failed_job_is_an_error_not_an_empty_pull(sf: SalesforceBackend) -> None:
    sf.admin("POST", "bulk", {"fail_next": 1, "error": "QUERY_TIMEOUT: running too long"})
    pages = sf.connector(bulk_threshold=500).changed_deals(EPOCH)
    assert len(next(pages).deals) == 1000  # the REST page that decided
    with pytest.raises(BulkJobFailed, match="QUERY_TIMEOUT"):
        next(pages)
