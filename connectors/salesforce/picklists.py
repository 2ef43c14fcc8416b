"""The org's own Task Status and Priority values, read from the `TaskStatus` and `TaskPriority`
objects (one SOQL query each, once per connector) instead of fixed strings.

Both objects (Salesforce Object Reference, "TaskStatus" / "TaskPriority") are queryable and have
`ApiName` (the picklist value a record carries), `MasterLabel`, `IsDefault` and `SortOrder`;
TaskStatus adds `IsClosed` (several values may be closed), TaskPriority `IsHighPriority`
(several values may be high). An org may rename, add or remove values; Task.Status and
Task.Priority then refuse anything else with INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST.

What winback writes:
- new tasks: the default status (IsDefault, when it is open), else the first open one by
  SortOrder;
- closing a task: the only closed status; with several, the default one if it is closed, else
  the first closed one by SortOrder;
- priority high: the first IsHighPriority value by SortOrder; normal: the default priority;
  low: the last value by SortOrder that is neither high nor the default, if it sorts after the
  default (otherwise normal).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.models import Priority
from connectors.salesforce.client import Client

STATUS_SOQL = "SELECT ApiName, MasterLabel, IsDefault, IsClosed, SortOrder FROM TaskStatus"
PRIORITY_SOQL = ("SELECT ApiName, MasterLabel, IsDefault, IsHighPriority, SortOrder "
                 "FROM TaskPriority")


@dataclass(frozen=True)
class Value:
    name: str  # ApiName (MasterLabel when the org leaves it empty)
    default: bool
    flag: bool  # IsClosed for a status, IsHighPriority for a priority
    order: int


@dataclass(frozen=True)
class TaskValues:
    """What this org's picklists say winback should write; None where the org has no fit."""

    statuses: tuple[Value, ...]
    priorities: tuple[Value, ...]
    open_status: str | None
    closed_status: str | None
    priority: Mapping[Priority, str]

    @property
    def problems(self) -> list[str]:
        out = []
        if self.open_status is None:
            out.append("the org has no open Task status (TaskStatus with IsClosed = false)")
        if self.closed_status is None:
            out.append("the org has no closed Task status (TaskStatus with IsClosed = true)")
        if not self.priority:
            out.append("the org has no Task priority (TaskPriority is empty)")
        return out

    def describe(self) -> str:
        prio = ", ".join(f"{p.value} -> {v!r}" for p, v in self.priority.items())
        return (f"new tasks {self.open_status!r}, closed with {self.closed_status!r}; "
                f"priority {prio or 'none'}")


def _values(rows: Sequence[Mapping[str, Any]], flag: str) -> tuple[Value, ...]:
    out = []
    for i, row in enumerate(rows):
        name = row.get("ApiName") or row.get("MasterLabel")
        if not isinstance(name, str) or not name:
            continue
        order = row.get("SortOrder")
        out.append(Value(name, bool(row.get("IsDefault")), bool(row.get(flag)),
                         order if isinstance(order, int) else 10_000 + i))
    return tuple(sorted(out, key=lambda v: v.order))


def _pick(values: Sequence[Value], *, flag: bool) -> str | None:
    matching = [v for v in values if v.flag == flag]
    if not matching:
        return None
    default = next((v for v in matching if v.default), None)
    return (default or matching[0]).name


def _priorities(values: Sequence[Value]) -> dict[Priority, str]:
    if not values:
        return {}
    high = next((v for v in values if v.flag), None)
    normal = next((v for v in values if v.default and not v.flag), None) \
        or next((v for v in values if not v.flag), None) or values[0]
    lower = [v for v in values if not v.flag and v is not normal and v.order > normal.order]
    low = lower[-1] if lower else normal
    return {Priority.HIGH: (high or normal).name, Priority.NORMAL: normal.name,
            Priority.LOW: low.name}


def task_values(status_rows: Sequence[Mapping[str, Any]],
                priority_rows: Sequence[Mapping[str, Any]]) -> TaskValues:
    statuses = _values(status_rows, "IsClosed")
    priorities = _values(priority_rows, "IsHighPriority")
    return TaskValues(statuses, priorities, _pick(statuses, flag=False),
                      _pick(statuses, flag=True), _priorities(priorities))


def load(client: Client) -> TaskValues:
    """Two queries (a handful of rows each): the org's task statuses and priorities."""
    return task_values(*load_rows(client))


Rows = tuple[list[dict[str, Any]], list[dict[str, Any]]]


def load_rows(client: Client) -> Rows:
    """The TaskStatus and TaskPriority rows (what `task_values` reads; kept by the setup
    cache)."""
    return ([dict(r) for r in client.query_all(STATUS_SOQL)],
            [dict(r) for r in client.query_all(PRIORITY_SOQL)])
