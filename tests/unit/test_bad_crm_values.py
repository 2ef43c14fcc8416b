"""CRM values no emulator can hold (it validates like the CRM) still cannot break a sync:
unparseable dates and numbers, unknown stages. Each maps to "missing", and the planner then
skips the deal with a reason instead of failing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.base import FieldMap
from connectors.hubspot.mapping import deal_from
from tests.unit.planning import default_config
from worker.cadence.engine import Planner


@pytest.mark.parametrize(("props", "check"), [
    ({"closedate": "not a date"}, lambda d: d.closed_at is None),
    ({"closedate": "2027-13-45T99:00:00Z"}, lambda d: d.closed_at is None),
    ({"amount": "twelve"}, lambda d: d.amount is None),
    ({"contract_end_date": "someday"}, lambda d: d.contract_end is None),
    ({"dealstage": "lost-in-space"}, lambda d: not d.is_closed and not d.is_lost),
    ({"hs_lastmodifieddate": "yesterday"}, lambda d: d.modified_at is None),
])
def test_unparseable_hubspot_values_become_missing(props: dict[str, str],
                                                   check: object) -> None:
    """A value the CRM should never send maps to None, not to an exception."""
    base = {"dealname": "D", "dealstage": "closedlost", "closedate": "2027-11-12T10:00:00Z"}
    deal = deal_from("1", {**base, **props}, stages={}, owner=None, account=None,
                     fields=FieldMap(contract_end="contract_end_date"))
    assert check(deal)  # type: ignore[operator]


def test_a_lost_deal_without_a_usable_close_date_is_skipped_with_a_reason() -> None:
    """The planner names the problem; nothing raises."""
    deal = deal_from("1", {"dealname": "D", "closedate": "garbage"}, stages={}, owner=None,
                     account=None, fields=FieldMap())
    deal = deal.model_copy(update={"is_closed": True, "owner": None})
    plan = Planner(default_config(), "acme-hs").plan(deal, datetime.now(UTC))
    assert plan.tasks == () and plan.reason is not None
