"""The SOQL grammar and evaluator on their own (no HTTP), including escaping properties that
tie simple-salesforce's format_soql to the emulator's parser."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from simple_salesforce import format_soql

from sandbox.salesforce import SalesforceEmulator
from sandbox.salesforce.errors import SFError
from sandbox.salesforce.evaluator import compile_query
from sandbox.salesforce.filters import day_range, like_to_regex
from sandbox.salesforce.soql import Compare, InList, Like, parse, unescape

NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


@given(st.text(max_size=40))
@settings(max_examples=200, deadline=None)
def test_format_soql_strings_parse_back_to_the_same_value(value: str) -> None:
    """Whatever format_soql quotes, the grammar reads back unchanged."""
    query = parse(format_soql("SELECT Id FROM Task WHERE Subject = {}", value))
    assert isinstance(query.where, Compare)
    assert query.where.value.value == value


@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("%_\\'"), max_size=20))
@settings(max_examples=200, deadline=None)
def test_like_escaping_matches_the_text_itself(value: str) -> None:
    """A {:like}-escaped value matches itself, and its % and _ are no wildcards."""
    import re

    query = parse(format_soql("SELECT Id FROM Task WHERE Subject LIKE '{:like}'", value))
    assert isinstance(query.where, Like)
    pattern = re.compile(like_to_regex(unescape(query.where.pattern, like=True)),
                         re.IGNORECASE | re.DOTALL)
    assert pattern.fullmatch(value)
    assert not pattern.fullmatch(value + "x")
    if "%" in value or "_" in value:
        assert not pattern.fullmatch(value.replace("%", "Z").replace("_", "Z"))


def test_keywords_are_case_insensitive_and_not_in_has_its_own_node() -> None:
    """select/from/where in any case; NOT IN parses as a negated IN list."""
    query = parse("select Id from Opportunity where StageName not in ('a', 'b') "
                  "order by Name desc nulls first limit 5")
    assert isinstance(query.where, InList) and query.where.negate
    assert query.order[0].descending and not query.order[0].nulls_last
    assert query.limit == 5


@pytest.mark.parametrize(("name", "n", "start", "end"), [
    ("TODAY", 0, date(2024, 6, 15), date(2024, 6, 16)),
    ("YESTERDAY", 0, date(2024, 6, 14), date(2024, 6, 15)),
    ("LAST_N_DAYS", 7, date(2024, 6, 8), date(2024, 6, 16)),
    ("NEXT_N_DAYS", 2, date(2024, 6, 16), date(2024, 6, 18)),
    ("THIS_MONTH", 0, date(2024, 6, 1), date(2024, 7, 1)),
    ("LAST_MONTH", 0, date(2024, 5, 1), date(2024, 6, 1)),
])
def test_relative_date_ranges(name: str, n: int, start: date, end: date) -> None:
    """Relative literals are [start, end) day ranges in UTC."""
    assert day_range(name, n, NOW) == (start, end)


def test_last_month_wraps_the_year() -> None:
    """LAST_MONTH in January is December of the previous year."""
    assert day_range("LAST_MONTH", 0, datetime(2024, 1, 10, tzinfo=UTC)) == (
        date(2023, 12, 1), date(2024, 1, 1))


def test_evaluator_runs_a_query_once_and_renders_pages_on_demand() -> None:
    """matching_ids() is computed once; render() turns only the asked ids into records."""
    emu = SalesforceEmulator()
    with emu.lock:
        from sandbox.salesforce.seeding import seed_generated

        seed_generated(emu, {"deals": 500, "seed": 1})
        compiled = compile_query(emu.store, "SELECT Id, Account.Name FROM Opportunity "
                                 "WHERE IsClosed = true ORDER BY CloseDate DESC, Id",
                                 include_deleted=False, now=NOW)
        ids = compiled.matching_ids()
        records = compiled.render(ids[:3], "68.0")
    assert len(records) == 3 and all(r["Account"]["Name"] for r in records)
    assert [r["Id"] for r in records] == ids[:3]


def test_unknown_relationship_after_a_polymorphic_hop_is_rejected() -> None:
    """What.Owner.Name goes past a polymorphic lookup: INVALID_FIELD."""
    emu = SalesforceEmulator()
    with pytest.raises(SFError) as info:
        compile_query(emu.store, "SELECT What.Owner.Name FROM Task", include_deleted=False,
                      now=NOW)
    assert info.value.errors[0].code == "INVALID_FIELD"


def test_offset_above_2000_is_out_of_range() -> None:
    """OFFSET is capped at 2,000 like the real API."""
    emu = SalesforceEmulator()
    with pytest.raises(SFError) as info:
        compile_query(emu.store, "SELECT Id FROM Task LIMIT 5 OFFSET 2001",
                      include_deleted=False, now=NOW)
    assert info.value.errors[0].code == "NUMBER_OUTSIDE_VALID_RANGE"
