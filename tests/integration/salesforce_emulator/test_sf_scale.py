"""Scale: 50,000 seeded deals load, and a full paged pull returns each closed-lost once."""

from __future__ import annotations

from collections import Counter

import pytest

from .conftest import SfEnv

PULL = ("SELECT Id, Name, StageName, CloseDate, Amount, OwnerId, Owner.IsActive, AccountId, "
        "SystemModstamp, IsDeleted, Loss_Reason__c FROM Opportunity "
        "WHERE IsClosed = true AND IsWon = false ORDER BY SystemModstamp ASC, Id ASC")


# 50,000 deals: a long form (make test-long); the default run pulls past HubSpot's 10,000-result
# search cap and through several Salesforce pages in tests/integration/connectors/test_contract.py.
@pytest.mark.slow
def test_50k_deals_load_and_page_out_exactly_once(sf: SfEnv) -> None:
    """50,000 seeded deals: query_all_iter yields every closed-lost deal once, in watermark
    order, over 2,000-row pages (how fast is measured in bench/, not asserted here)."""
    seeded = sf.admin("POST", "seed", {"generate": {"deals": 50_000, "seed": 11}})
    assert seeded["counts"]["Opportunity"] == 50_000
    client = sf.login()
    sf.admin("POST", "calls/reset")
    seen = Counter()
    stamps = []
    for record in client.query_all_iter(PULL):
        seen[record["Id"]] += 1
        stamps.append((record["SystemModstamp"], record["Id"]))
        assert record["StageName"] in ("Closed Lost", "Closed - No Budget")
    assert len(seen) == seeded["deals"]["lost"]
    assert set(seen.values()) == {1}
    assert stamps == sorted(stamps)
    calls = sf.admin("GET", "calls")["calls"]
    pages = -(-len(seen) // 2000)
    assert calls == {"query": 1, "query_more": pages - 1}
