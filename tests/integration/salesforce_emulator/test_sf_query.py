"""SOQL through query/queryAll: record shapes, filters, ordering, paging and query errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from simple_salesforce import SalesforceMalformedRequest, format_soql

from .conftest import SfEnv

CLOSED_LOST = "SELECT Id FROM Opportunity WHERE IsClosed = true AND IsWon = false"


def _ids(result: dict[str, Any]) -> set[str]:
    return {r["Id"] for r in result["records"]}


def _error(info: pytest.ExceptionInfo[SalesforceMalformedRequest]) -> dict[str, Any]:
    assert info.value.status == 400
    content: dict[str, Any] = info.value.content[0]
    return content


def test_records_carry_attributes_parents_and_children(sf: SfEnv, org: dict[str, str]) -> None:
    """Parent paths nest with their own attributes; children come as a sub-result."""
    client = sf.login()
    result = client.query(
        "SELECT Id, Name, StageName, CloseDate, Amount, Owner.IsActive, Account.Name, "
        "SystemModstamp, (SELECT ContactId, Role, IsPrimary, Contact.Email "
        "FROM OpportunityContactRoles ORDER BY IsPrimary DESC) "
        f"FROM Opportunity WHERE Id = '{org['lost']}'")
    assert result["totalSize"] == 1 and result["done"] is True
    record = result["records"][0]
    url = f"/services/data/v64.0/sobjects/Opportunity/{org['lost']}"
    assert record["attributes"] == {"type": "Opportunity", "url": url}
    assert list(record)[:5] == ["attributes", "Id", "Name", "StageName", "CloseDate"]
    assert record["Amount"] == 12000.0 and record["CloseDate"] == "2024-05-31"
    assert record["Owner"]["attributes"]["type"] == "User" and record["Owner"]["IsActive"] is True
    assert record["Account"]["Name"] == "Acme Corp"
    datetime.strptime(record["SystemModstamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert record["SystemModstamp"].endswith("+0000")
    roles = record["OpportunityContactRoles"]
    assert roles["totalSize"] == 2 and roles["done"] is True
    first = roles["records"][0]
    assert first["IsPrimary"] is True and first["ContactId"] == org["c1"]
    assert first["attributes"]["type"] == "OpportunityContactRole"
    assert first["Contact"] == {"attributes": {"type": "Contact", "url": first["Contact"][
        "attributes"]["url"]}, "Email": "cy@acme.example"}


def test_empty_child_relationship_and_missing_parent_are_null(sf: SfEnv,
                                                              org: dict[str, str]) -> None:
    """No child rows gives null (not an empty object); a null lookup gives a null parent."""
    client = sf.login()
    task = client.Task.create({"Subject": "no who"})
    record = client.query(
        "SELECT Id, (SELECT Id FROM OpportunityContactRoles) FROM Opportunity "
        f"WHERE Id = '{org['won']}'")["records"][0]
    assert record["OpportunityContactRoles"] is None
    task_record = client.query(f"SELECT Who.Name, What.Name FROM Task WHERE Id = '{task['id']}'")[
        "records"][0]
    assert task_record["Who"] is None and task_record["What"] is None


def test_closed_lost_filter_uses_derived_flags(sf: SfEnv, org: dict[str, str]) -> None:
    """IsClosed = true AND IsWon = false finds standard and custom lost stages."""
    client = sf.login()
    assert _ids(client.query(CLOSED_LOST)) == {org["lost"], org["lost_gone"]}
    stages = client.query("SELECT MasterLabel FROM OpportunityStage WHERE IsClosed = true "
                          "AND IsWon = false ORDER BY SortOrder")
    assert [r["MasterLabel"] for r in stages["records"]] == ["Closed Lost", "Closed - No Budget"]


def test_where_supports_boolean_logic_in_like_and_null(sf: SfEnv, org: dict[str, str]) -> None:
    """AND/OR/NOT, parentheses, IN, NOT IN, LIKE, null and case-insensitive strings."""
    client = sf.login()
    q = client.query
    assert _ids(q("SELECT Id FROM Opportunity WHERE Name = 'acme - platform'")) == {org["lost"]}
    assert _ids(q("SELECT Id FROM Opportunity WHERE (StageName = 'Closed Won' OR "
                  "StageName = 'Prospecting') AND NOT Amount = null")) == {org["won"]}
    assert _ids(q("SELECT Id FROM Opportunity WHERE StageName IN ('Closed Won', 'Prospecting')"
                  )) == {org["won"], org["open"]}
    assert _ids(q("SELECT Id FROM Opportunity WHERE StageName NOT IN ('Closed Won', "
                  "'Prospecting', 'Closed Lost')")) == {org["lost_gone"]}
    assert _ids(q("SELECT Id FROM Opportunity WHERE Name LIKE '%pil_t'")) == {org["lost_gone"]}
    assert _ids(q("SELECT Id FROM Opportunity WHERE Amount = null")) == {org["lost_gone"],
                                                                        org["open"]}
    assert _ids(q("SELECT Id FROM Opportunity WHERE Loss_Reason__c != 'Price'")) == {
        org["lost_gone"], org["won"], org["open"]}  # != matches nulls in SOQL
    assert _ids(q("SELECT Id FROM Opportunity WHERE Amount > 6000 AND Amount <= 12000")) == {
        org["lost"]}
    assert _ids(q(f"SELECT Id FROM Opportunity WHERE Id = '{org['lost'][:15]}'")) == {org["lost"]}


def test_string_escapes_and_like_wildcards_are_literal_when_escaped(sf: SfEnv) -> None:
    """Backslash escapes in literals; \\% and \\_ in LIKE match the characters themselves."""
    client = sf.login()
    a = client.Task.create({"Subject": "Follow up: O'Brien [fu:ab_1]"})["id"]
    b = client.Task.create({"Subject": "Follow up: O'Brien [fu:abX1]"})["id"]
    c = client.Task.create({"Subject": "100% done"})["id"]
    q = client.query
    assert _ids(q(format_soql("SELECT Id FROM Task WHERE Subject = {}",
                              "Follow up: O'Brien [fu:ab_1]"))) == {a}
    assert _ids(q(format_soql("SELECT Id FROM Task WHERE Subject LIKE '%{:like}%'",
                              "[fu:ab_1"))) == {a}
    assert _ids(q("SELECT Id FROM Task WHERE Subject LIKE '%[fu:ab_1]'")) == {a, b}
    assert _ids(q("SELECT Id FROM Task WHERE Subject LIKE '100\\% %'")) == {c}
    assert _ids(q("SELECT Id FROM Task WHERE Subject LIKE '%o\\'brien%'")) == {a, b}


def test_date_datetime_and_relative_literals(sf: SfEnv, org: dict[str, str]) -> None:
    """Unquoted date and datetime literals, TODAY / LAST_N_DAYS, and format_soql datetimes."""
    client = sf.login()
    q = client.query
    assert _ids(q("SELECT Id FROM Opportunity WHERE CloseDate >= 2024-05-01 AND "
                  "CloseDate < 2024-06-01")) == {org["lost"]}
    since = datetime.now(UTC) - timedelta(hours=1)
    assert len(q(format_soql("SELECT Id FROM Opportunity WHERE SystemModstamp >= {}",
                             since))["records"]) == 4
    assert q("SELECT Id FROM Opportunity WHERE SystemModstamp > 2999-01-01T00:00:00Z")[
        "totalSize"] == 0
    assert q("SELECT Id FROM Opportunity WHERE CreatedDate = TODAY")["totalSize"] == 4
    assert q("SELECT Id FROM Opportunity WHERE CreatedDate = LAST_N_DAYS:3")["totalSize"] == 4
    assert q("SELECT Id FROM Opportunity WHERE CreatedDate = YESTERDAY")["totalSize"] == 0
    assert q("SELECT Id FROM Opportunity WHERE SystemModstamp >= 2024-06-01T00:00:00+02:00")[
        "totalSize"] == 4


def test_order_by_several_keys_nulls_limit_and_offset(sf: SfEnv, org: dict[str, str]) -> None:
    """ORDER BY with directions and NULLS FIRST/LAST, then LIMIT and OFFSET."""
    client = sf.login()
    rows = client.query("SELECT Id, Amount FROM Opportunity ORDER BY Amount DESC NULLS LAST, "
                        "Name ASC")["records"]
    assert [r["Id"] for r in rows] == [org["lost"], org["won"], org["lost_gone"], org["open"]]
    rows = client.query("SELECT Id FROM Opportunity ORDER BY Amount ASC NULLS FIRST, Name DESC "
                        "LIMIT 2 OFFSET 1")["records"]
    assert [r["Id"] for r in rows] == [org["lost_gone"], org["won"]]
    count = client.query("SELECT COUNT() FROM Opportunity WHERE IsClosed = true")
    assert count["totalSize"] == 3 and count["records"] == []


def test_semi_join_and_task_relationships(sf: SfEnv, org: dict[str, str]) -> None:
    """Id IN (SELECT ...) and polymorphic Who/What paths."""
    client = sf.login()
    contacts = client.query("SELECT Id FROM Contact WHERE Id IN (SELECT ContactId FROM "
                            "OpportunityContactRole WHERE IsPrimary = true)")
    assert _ids(contacts) == {org["c1"]}
    client.Task.create({"Subject": "s", "WhoId": org["c1"], "WhatId": org["lost"]})
    task = client.query("SELECT Who.Name, Who.Type, What.Name, Account.Name FROM Task")[
        "records"][0]
    assert task["Who"]["Name"] == "Cy Buyer" and task["Who"]["Type"] == "Contact"
    assert task["Who"]["attributes"]["type"] == "Contact"
    assert task["What"]["Name"] == "Acme - Platform"
    assert task["Account"]["Name"] == "Acme Corp"


def test_query_all_includes_soft_deleted_rows(sf: SfEnv, org: dict[str, str]) -> None:
    """query hides deleted rows; queryAll shows them with IsDeleted = true."""
    client = sf.login()
    client.Opportunity.delete(org["open"])
    assert org["open"] not in _ids(client.query("SELECT Id FROM Opportunity"))
    everything = client.query_all("SELECT Id, IsDeleted FROM Opportunity", include_deleted=True)
    deleted = [r for r in everything["records"] if r["Id"] == org["open"]]
    assert deleted and deleted[0]["IsDeleted"] is True


def test_paging_follows_next_records_url_with_batch_size(sf: SfEnv) -> None:
    """2,000 rows per page by default; batchSize=200 shrinks pages; all rows arrive once."""
    sf.admin("POST", "seed", {"generate": {"deals": 2500, "seed": 3}})
    client = sf.login()
    first = client.query("SELECT Id FROM Opportunity ORDER BY Id")
    assert first["totalSize"] == 2500 and first["done"] is False
    assert len(first["records"]) == 2000
    assert first["nextRecordsUrl"].startswith("/services/data/v64.0/query/01g")
    second = client.query_more(first["nextRecordsUrl"], identifier_is_url=True)
    assert len(second["records"]) == 500 and second["done"] is True
    assert "nextRecordsUrl" not in second
    ids = [r["Id"] for r in first["records"] + second["records"]]
    assert len(set(ids)) == 2500 and ids == sorted(ids)
    headers = {"Sforce-Query-Options": "batchSize=200"}
    small = client.query("SELECT Id FROM Opportunity", headers=headers)
    assert len(small["records"]) == 200
    streamed = list(client.query_all_iter("SELECT Id FROM Opportunity", headers=headers))
    assert len({r["Id"] for r in streamed}) == 2500
    tiny = client.query("SELECT Id FROM Opportunity", headers={"Sforce-Query-Options":
                                                               "batchSize=10"})
    assert len(tiny["records"]) == 200  # the minimum
    every = client.query("SELECT Id FROM Opportunity", include_deleted=True)
    assert "/query/" in every["nextRecordsUrl"]  # queryAll locators also say /query/


def test_child_rows_count_toward_the_batch_size(sf: SfEnv) -> None:
    """A page with subquery rows holds fewer parents than batchSize."""
    sf.admin("POST", "seed", {"generate": {"deals": 600, "seed": 4}})
    client = sf.login()
    q = "SELECT Id, (SELECT Id FROM OpportunityContactRoles) FROM Opportunity"
    page = client.query(q, headers={"Sforce-Query-Options": "batchSize=200"})
    children = sum((r["OpportunityContactRoles"] or {"totalSize": 0})["totalSize"]
                   for r in page["records"])
    assert len(page["records"]) + children >= 200
    assert len(page["records"]) < 200
    assert len(list(client.query_all_iter(q, headers={"Sforce-Query-Options":
                                                     "batchSize=200"}))) == 600


def test_oldest_cursor_is_released_after_ten(sf: SfEnv) -> None:
    """An 11th open cursor releases the first: its locator gives INVALID_QUERY_LOCATOR."""
    sf.admin("POST", "seed", {"generate": {"deals": 450, "seed": 5}})
    client = sf.login()
    headers = {"Sforce-Query-Options": "batchSize=200"}
    pages = [client.query("SELECT Id FROM Opportunity", headers=headers) for _ in range(11)]
    assert sf.admin("GET", "cursors")["open"] == 10
    with pytest.raises(SalesforceMalformedRequest) as info:
        client.query_more(pages[0]["nextRecordsUrl"], identifier_is_url=True)
    assert _error(info)["errorCode"] == "INVALID_QUERY_LOCATOR"
    assert len(client.query_more(pages[1]["nextRecordsUrl"], identifier_is_url=True)[
        "records"]) == 200


def test_finished_and_expired_cursors_are_invalid(sf: SfEnv) -> None:
    """A cursor closes after its last page and expires after 15 idle minutes."""
    sf.admin("POST", "seed", {"generate": {"deals": 450, "seed": 6}})
    client = sf.login()
    headers = {"Sforce-Query-Options": "batchSize=200"}
    first = client.query("SELECT Id FROM Opportunity", headers=headers)
    second = client.query_more(first["nextRecordsUrl"], identifier_is_url=True, headers=headers)
    last = client.query_more(second["nextRecordsUrl"], identifier_is_url=True, headers=headers)
    assert last["done"] is True
    with pytest.raises(SalesforceMalformedRequest):
        client.query_more(second["nextRecordsUrl"], identifier_is_url=True)
    again = client.query("SELECT Id FROM Opportunity", headers=headers)
    sf.admin("POST", "clock", {"advance_seconds": 16 * 60})  # sessions live 2 h, cursors 15 min
    with pytest.raises(SalesforceMalformedRequest) as info:
        client.query_more(again["nextRecordsUrl"], identifier_is_url=True)
    assert _error(info)["errorCode"] == "INVALID_QUERY_LOCATOR"


@pytest.mark.parametrize(("soql", "code", "fragment"), [
    ("SELECT Id FROM Opportunity WHERE", "MALFORMED_QUERY", "unexpected token: '<EOF>'"),
    ("SELECT Id FROM Opportunity WHERE IsClosed = true AND IsWon = false OR Amount > 1",
     "MALFORMED_QUERY", "unexpected token: 'OR'"),
    ("SELECT Id FROM Opportunity WHERE Name = 'a\\qb'", "MALFORMED_QUERY", "Illegal character"),
    ("SELECT Idx FROM Opportunity", "INVALID_FIELD",
     "No such column 'Idx' on entity 'Opportunity'"),
    ("SELECT Ownr.Name FROM Opportunity", "INVALID_FIELD", "Didn't understand relationship 'Ownr'"),
    ("SELECT Id FROM Opportunty", "INVALID_TYPE", "sObject type 'Opportunty' is not supported"),
    ("SELECT Id, (SELECT Id FROM Foos) FROM Opportunity", "INVALID_TYPE",
     "Didn't understand relationship 'Foos'"),
    ("SELECT Id FROM Opportunity WHERE CloseDate > 2024-01-01T00:00:00Z", "INVALID_FIELD",
     "must be of type date"),
    ("SELECT Id FROM Opportunity WHERE SystemModstamp > 2024-01-01", "INVALID_FIELD",
     "must be of type dateTime"),
    ("SELECT Id FROM Opportunity WHERE IsClosed = 'true'", "INVALID_FIELD",
     "must be of type boolean"),
    ("SELECT Id FROM Task WHERE Description LIKE '%x%'", "INVALID_FIELD",
     "can not be filtered"),
    ("SELECT Id FROM Opportunity WHERE SystemModstamp >= 2024-06-01 08:00:00", "MALFORMED_QUERY",
     "unexpected token"),
    ("SELECT Id FROM Opportunity WHERE Id = 'abc'", "INVALID_QUERY_FILTER_OPERATOR",
     "invalid ID field: abc"),
])
def test_bad_queries_give_the_real_error_codes(sf: SfEnv, soql: str, code: str,
                                               fragment: str) -> None:
    """Malformed SOQL, unknown fields and objects, and wrong literal types are 400 errors."""
    client = sf.login()
    with pytest.raises(SalesforceMalformedRequest) as info:
        client.query(soql)
    error = _error(info)
    assert error["errorCode"] == code
    assert fragment in error["message"]


def test_malformed_query_message_points_at_the_column(sf: SfEnv) -> None:
    """The message repeats the query with a caret and Row/Column, as Salesforce does."""
    client = sf.login()
    with pytest.raises(SalesforceMalformedRequest) as info:
        client.query("SELECT Id, FROM Opportunity WHERE")
    message = _error(info)["message"]
    assert message.startswith("\nSELECT Id, FROM Opportunity WHERE\n")
    assert "ERROR at Row:1:Column:" in message
