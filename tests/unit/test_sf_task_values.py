"""Which of an org's TaskStatus / TaskPriority values winback writes (connectors.salesforce.
picklists): rows as the REST query returns them."""

from __future__ import annotations

from typing import Any

from connectors.models import Priority
from connectors.salesforce.picklists import task_values


def status(name: str, order: int, *, closed: bool = False, default: bool = False,
           label: str | None = None) -> dict[str, Any]:
    return {"ApiName": name, "MasterLabel": label or name, "IsClosed": closed,
            "IsDefault": default, "SortOrder": order}


def priority(name: str, order: int, *, high: bool = False, default: bool = False
             ) -> dict[str, Any]:
    return {"ApiName": name, "MasterLabel": name, "IsHighPriority": high, "IsDefault": default,
            "SortOrder": order}


STANDARD_PRIORITIES = [priority("High", 1, high=True), priority("Normal", 2, default=True),
                       priority("Low", 3)]


def test_the_standard_org_gives_the_standard_values() -> None:
    values = task_values(
        [status("Not Started", 1, default=True), status("In Progress", 2),
         status("Completed", 3, closed=True), status("Waiting on someone else", 4),
         status("Deferred", 5)], STANDARD_PRIORITIES)
    assert (values.open_status, values.closed_status) == ("Not Started", "Completed")
    assert values.priority == {Priority.HIGH: "High", Priority.NORMAL: "Normal",
                               Priority.LOW: "Low"}
    assert values.problems == []


def test_sort_order_not_row_order_decides_and_api_name_is_the_value() -> None:
    """Rows in any order; the API name is written, not the (translatable) label; a default
    that is closed is not used for new tasks, but is the closed status of choice."""
    values = task_values(
        [status("Closed_Lost", 9, closed=True), status("Archived", 7, closed=True, default=True),
         status("Neu", 3, label="New (DE)"), status("Triage", 2)],
        [priority("Low", 5), priority("Urgent", 4, high=True), priority("Hot", 1, high=True),
         priority("Normal", 2, default=True)])
    assert values.open_status == "Triage"
    assert values.closed_status == "Archived"
    assert values.priority == {Priority.HIGH: "Hot", Priority.NORMAL: "Normal",
                               Priority.LOW: "Low"}


def test_several_closed_statuses_without_a_default_take_the_first_by_sort_order() -> None:
    values = task_values([status("Open", 1, default=True), status("Cancelled", 5, closed=True),
                          status("Done", 4, closed=True)], STANDARD_PRIORITIES)
    assert values.closed_status == "Done"


def test_priorities_without_a_high_or_a_lower_value_fall_back_to_normal() -> None:
    values = task_values([status("Open", 1, default=True), status("Done", 2, closed=True)],
                         [priority("Low", 1), priority("Standard", 2, default=True)])
    assert values.priority == {Priority.HIGH: "Standard", Priority.NORMAL: "Standard",
                               Priority.LOW: "Standard"}


def test_missing_values_are_problems_not_guesses() -> None:
    values = task_values([status("Open", 1, default=True), {"ApiName": None, "MasterLabel": ""}],
                         [])
    assert values.closed_status is None and values.priority == {}
    assert values.problems == [
        "the org has no closed Task status (TaskStatus with IsClosed = true)",
        "the org has no Task priority (TaskPriority is empty)"]
