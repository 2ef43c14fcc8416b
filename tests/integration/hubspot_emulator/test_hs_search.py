"""Deal search through the real SDK: filters, operators, caps, sort, paging, the 10k cap."""

from __future__ import annotations

from typing import Any

import pytest
from hubspot.crm.deals import ApiException, Filter, FilterGroup, PublicObjectSearchRequest

from .conftest import HS, LOST_STAGES, body_of


def _search(api: Any, groups: list[list[dict[str, Any]]], **kw: Any) -> Any:
    request = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[Filter(**f) for f in g]) for g in groups], **kw)
    return api.crm.deals.search_api.do_search(public_object_search_request=request)


def _ids(page: Any) -> list[int]:
    return [int(r.id) for r in page.results]


@pytest.fixture
def deals(hs: HS) -> dict[str, str]:
    """Five deals with hand-picked values (amounts chosen so string order != number order)."""
    return hs.fixtures({
        "owners": [{"ref": "ann", "email": "ann@seller.example", "firstName": "Ann"}],
        "deals": [
            {"ref": "a", "dealname": "Acme Platform", "dealstage": "closedlost", "amount": "900",
             "closedate": "2024-01-10T00:00:00Z", "closed_lost_reason": "Lost to competitor",
             "competitor": "Globex", "hubspot_owner_id": "@ann"},
            {"ref": "b", "dealname": "Beta Renewal", "dealstage": "closedlost", "amount": "10000",
             "closedate": "2024-03-01T00:00:00Z", "contract_end_date": "2025-03-01"},
            {"ref": "c", "dealname": "Gamma Expansion", "dealstage": "closedwon", "amount": "5000",
             "closedate": "2024-02-01T00:00:00Z"},
            {"ref": "d", "dealname": "Delta Pilot", "pipeline": "1307720549",
             "dealstage": "1307720556", "closedate": "2024-04-01T00:00:00Z"},
            {"ref": "e", "dealname": "Epsilon Platform", "dealstage": "qualifiedtobuy",
             "amount": "75.5", "closedate": "2024-05-01T00:00:00Z"},
        ]})


def test_in_filter_with_sort_paging_and_total(hs: HS, deals: dict[str, str]) -> None:
    api = hs.client()
    page = _search(api, [[{"property_name": "dealstage", "operator": "IN",
                           "values": LOST_STAGES}]],
                   sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
                   properties=["dealname", "dealstage"], limit=2)
    assert page.total == 3
    assert _ids(page) == sorted(int(deals[k]) for k in ("a", "b"))
    assert page.paging.next.after == "2"
    assert set(page.results[0].properties) >= {"dealname", "dealstage", "hs_object_id",
                                               "hs_lastmodifieddate", "createdate"}
    last = _search(api, [[{"property_name": "dealstage", "operator": "IN",
                           "values": LOST_STAGES}]], limit=2, after="2")
    assert _ids(last) == [int(deals["d"])]
    assert last.paging is None


def test_numbers_compare_numerically_and_dates_as_epoch_ms(hs: HS, deals: dict[str, str]
                                                           ) -> None:
    api = hs.client()
    page = _search(api, [[{"property_name": "amount", "operator": "GT", "value": "1000"}]])
    assert sorted(_ids(page)) == sorted(int(deals[k]) for k in ("b", "c"))  # "900" > "1000" as text
    cutoff = "1706745600000"  # 2024-02-01T00:00:00Z
    page = _search(api, [[{"property_name": "closedate", "operator": "GTE", "value": cutoff}]])
    assert sorted(_ids(page)) == sorted(int(deals[k]) for k in ("b", "c", "d", "e"))
    page = _search(api, [[{"property_name": "closedate", "operator": "BETWEEN",
                           "value": "1704067200000", "high_value": "1706745600000"}]])
    assert sorted(_ids(page)) == sorted(int(deals[k]) for k in ("a", "c"))
    page = _search(api, [[{"property_name": "contract_end_date", "operator": "LT",
                           "value": "1767225600000"}]])
    assert _ids(page) == [int(deals["b"])]


@pytest.mark.parametrize(("flt", "expected"), [
    ({"operator": "EQ", "property_name": "dealstage", "value": "closedwon"}, "c"),
    ({"operator": "NEQ", "property_name": "pipeline", "value": "default"}, "d"),
    ({"operator": "LT", "property_name": "amount", "value": "100"}, "e"),
    ({"operator": "LTE", "property_name": "amount", "value": "900"}, "ae"),
    ({"operator": "NOT_IN", "property_name": "dealstage",
      "values": ["closedlost", "closedwon", "1307720556"]}, "e"),
    ({"operator": "HAS_PROPERTY", "property_name": "competitor"}, "a"),
    ({"operator": "NOT_HAS_PROPERTY", "property_name": "amount"}, "d"),
    ({"operator": "CONTAINS_TOKEN", "property_name": "dealname", "value": "platform"}, "ae"),
    ({"operator": "CONTAINS_TOKEN", "property_name": "dealname", "value": "*ansion"}, "c"),
    ({"operator": "NOT_CONTAINS_TOKEN", "property_name": "dealname", "value": "platform"}, "bcd"),
    ({"operator": "EQ", "property_name": "hs_is_closed_lost", "value": "true"}, "abd"),
])
def test_operators(hs: HS, deals: dict[str, str], flt: dict[str, Any], expected: str) -> None:
    page = _search(hs.client(), [[flt]], limit=50)
    assert sorted(_ids(page)) == sorted(int(deals[k]) for k in expected)


def test_groups_are_or_filters_are_and(hs: HS, deals: dict[str, str]) -> None:
    page = _search(hs.client(), [
        [{"property_name": "dealstage", "operator": "EQ", "value": "closedlost"},
         {"property_name": "amount", "operator": "GT", "value": "1000"}],
        [{"property_name": "dealstage", "operator": "EQ", "value": "closedwon"}]])
    assert sorted(_ids(page)) == sorted(int(deals[k]) for k in ("b", "c"))


def test_one_sort_is_honoured_and_descending_works(hs: HS, deals: dict[str, str]) -> None:
    page = _search(hs.client(), [], limit=10,
                   sorts=[{"propertyName": "amount", "direction": "DESCENDING"},
                          {"propertyName": "dealname", "direction": "ASCENDING"}])
    assert _ids(page) == [int(deals[k]) for k in ("b", "c", "a", "e", "d")]  # no amount: last


def test_caps_and_bad_requests_answer_400(hs: HS, deals: dict[str, str]) -> None:
    api = hs.client()
    f = {"property_name": "amount", "operator": "GT", "value": "1"}
    cases: list[tuple[list[list[dict[str, Any]]], dict[str, Any]]] = [
        ([[f]] * 6, {}),  # 6 groups
        ([[f] * 7], {}),  # 7 filters in a group
        ([[f] * 6] * 4, {}),  # 24 filters in total (4 groups of 6)
        ([[f]], {"limit": 201}),
        ([[f]], {"after": "9900", "limit": 101}),  # past the 10,000th result
        ([[{"property_name": "no_such_prop", "operator": "EQ", "value": "x"}]], {}),
        ([[{"property_name": "amount", "operator": "ROUGHLY", "value": "1"}]], {}),
        ([[{"property_name": "closedate", "operator": "GT", "value": "yesterday"}]], {}),
    ]
    for groups, kw in cases:
        with pytest.raises(ApiException) as info:
            _search(api, groups, **kw)
        assert info.value.status == 400, (groups, kw)
        assert body_of(info.value)["category"] == "VALIDATION_ERROR"
    # the caps themselves are fine: 5 groups, 6 per group, 18 in total
    _search(api, [[f] * 6, [f] * 6, [f] * 6])
    _search(api, [[f]] * 5, after="9800", limit=200)


def test_search_without_properties_returns_the_default_set(hs: HS, deals: dict[str, str]) -> None:
    page = _search(hs.client(), [[{"property_name": "hs_object_id", "operator": "EQ",
                                   "value": deals["a"]}]])
    assert set(page.results[0].properties) == {
        "dealname", "amount", "closedate", "pipeline", "dealstage", "createdate",
        "hs_lastmodifieddate", "hs_object_id"}
    assert page.results[0].properties["amount"] == "900"
    assert page.results[0].properties["closedate"] == "2024-01-10T00:00:00.000Z"


def test_requested_but_empty_properties_are_null(hs: HS, deals: dict[str, str]) -> None:
    page = _search(hs.client(), [[{"property_name": "hs_object_id", "operator": "EQ",
                                   "value": deals["d"]}]], properties=["amount", "competitor"])
    props = page.results[0].properties
    assert props["amount"] is None and props["competitor"] is None
    assert all(v is None or isinstance(v, str) for v in props.values())


def test_ten_thousand_cap_and_keyset_restart(hs: HS) -> None:
    seeded = hs.seed(12_500, lost_share=0.9)
    api = hs.client()
    lost = [[{"property_name": "dealstage", "operator": "IN", "values": LOST_STAGES}]]
    first = _search(api, lost, limit=200, after="9800")
    assert first.total == seeded["closed_lost"] > 10_000
    assert first.paging.next.after == "10000"
    with pytest.raises(ApiException) as info:
        _search(api, lost, limit=200, after="10000")
    assert info.value.status == 400
    assert "10000" in body_of(info.value)["message"]
    last_id = int(first.results[-1].id)
    sorts = [{"propertyName": "hs_object_id", "direction": "ASCENDING"}]
    restart = _search(api, [[*lost[0], {"property_name": "hs_object_id", "operator": "GT",
                                        "value": str(last_id)}]], limit=200, sorts=sorts)
    assert restart.total == first.total - 10_000
    assert int(restart.results[0].id) > last_id
