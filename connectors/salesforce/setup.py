"""The Salesforce set-up report's field checks: every configured deal field against the
Opportunity describe, and the Task fields and picklist values winback writes against the
Task describe and the org's TaskStatus / TaskPriority values.

A describe lists only the fields the calling user can see (field-level security hides the
rest), so "no such field" also covers "not readable"; each failure says which.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from connectors.base import SetupCheck
from connectors.models import Channel
from connectors.salesforce.picklists import TaskValues
from connectors.salesforce.soql import DealFields
from connectors.salesforce.tasks import SUBTYPES

Described = Mapping[str, Mapping[str, Any]]  # lower-case field name -> describe entry
TEXT_TYPES = frozenset({"string", "textarea", "picklist", "multipicklist", "combobox", "email",
                        "url", "phone", "reference", "id"})
DATE_TYPES = frozenset({"date", "datetime"})
# What each setting is read as (custom fields: any type, the rules compare values as read).
ROLE_TYPES = {"fields.loss_reason": ("text", TEXT_TYPES),
              "fields.competitor": ("text", TEXT_TYPES),
              "fields.contract_end": ("a date", DATE_TYPES),
              "fields.opt_out": ("a checkbox", frozenset({"boolean"})),
              "fields.pause_until": ("a date", frozenset({"date"}))}
# Task fields winback sends: on create, and on update (re-plans, closing) too.
CREATE_UPDATE = ("Subject", "Description", "ActivityDate", "ReminderDateTime", "IsReminderSet",
                 "Priority", "OwnerId", "WhatId", "WhoId", "Status")
CREATE_ONLY = ("TaskSubtype",)
FLS_FIX = ("in Salesforce Setup > Object Manager > {obj} > Fields, give the integration "
           "user's profile or permission set {access} access to {names}")


def by_name(described: Any) -> dict[str, dict[str, Any]]:
    fields = described.get("fields") if isinstance(described, dict) else None
    return {str(f.get("name", "")).lower(): f for f in fields or [] if isinstance(f, dict)}


def _suggest(name: str, known: Described) -> str | None:
    close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.75)
    return str(known[close[0]].get("name")) if close else None


def deal_field_checks(fields: DealFields, opportunity: Described) -> list[SetupCheck]:
    """One check per configured Opportunity field: exists (and is visible), right type."""
    checks = []
    for setting, name in fields.settings():
        found = opportunity.get(name.lower())
        label = f"deal field {name}"
        if found is None:
            near = _suggest(name, opportunity)
            hint = f"; did you mean {near}?" if near else ""
            fix = (f"set {setting}: {near} in the connection's config" if near else
                   f"correct {setting}, or create the field {name} on Opportunity")
            checks.append(SetupCheck(
                label, False, f"no field {name} on Opportunity ({setting}){hint}",
                fix + "; if the field exists, " + FLS_FIX.format(
                    obj="Opportunity", access="read", names=name)))
            continue
        kind = str(found.get("type", ""))
        real = str(found.get("name", name))
        what, allowed = ROLE_TYPES.get(setting, ("any value", frozenset()))
        if allowed and kind not in allowed:
            checks.append(SetupCheck(
                label, False, f"Opportunity.{real} ({setting}) is a {kind} field; winback reads "
                f"{what} from it", f"point {setting} at a {what} field of Opportunity"))
            continue
        checks.append(SetupCheck(label, True, f"{setting} reads Opportunity.{real} ({kind})"))
    return checks


def task_field_check(task: Described, key_field: str | None) -> SetupCheck:
    """The Task fields winback writes exist and may be written (created, updated)."""
    wanted = [*CREATE_UPDATE, *CREATE_ONLY, *([key_field] if key_field else [])]
    missing = [n for n in wanted if n.lower() not in task]
    no_create = [n for n in wanted if n.lower() in task
                 and not task[n.lower()].get("createable", True)]
    no_update = [n for n in (*CREATE_UPDATE, *([key_field] if key_field else []))
                 if n.lower() in task and not task[n.lower()].get("updateable", True)]
    problems = []
    if missing:
        problems.append("not visible: " + ", ".join(missing))
    if no_create:
        problems.append("not createable: " + ", ".join(no_create))
    if no_update:
        problems.append("not updateable: " + ", ".join(no_update))
    if problems:
        names = ", ".join(dict.fromkeys(missing + no_create + no_update))
        return SetupCheck("task fields", False, "Task fields winback writes are "
                          + "; ".join(problems),
                          FLS_FIX.format(obj="Task (Activity)", access="edit", names=names))
    return SetupCheck("task fields", True, f"{len(wanted)} Task fields winback writes are "
                      "createable and updateable")


def _active(field: Mapping[str, Any] | None) -> list[str]:
    values = field.get("picklistValues") if field else None
    return [str(v.get("value")) for v in values or []
            if isinstance(v, dict) and v.get("active", True) and v.get("value") is not None]


def picklist_check(task: Described, values: TaskValues, channels: tuple[Channel, ...]
                   ) -> SetupCheck:
    """The Status, Priority and TaskSubtype values winback will send are in the org's
    picklists (a restricted picklist refuses anything else)."""
    problems = list(values.problems)
    wanted = {"Status": [v for v in (values.open_status, values.closed_status) if v],
              "Priority": list(dict.fromkeys(values.priority.values())),
              "TaskSubtype": [SUBTYPES[c] for c in channels]}
    for name, sent in wanted.items():
        field = task.get(name.lower())
        if field is None:
            continue  # reported by the task fields check
        allowed = _active(field)
        refused = [v for v in sent if allowed and v not in allowed]
        if refused:
            problems.append(f"Task.{name} has no value {', '.join(map(repr, refused))} "
                            f"(it has: {', '.join(allowed)})")
    if problems:
        return SetupCheck(
            "task picklists", False, "; ".join(problems),
            "in Salesforce Setup > Object Manager > Task > Fields, make the Task Status values "
            "include an open default and a closed value, and Task Priority a default (and a "
            "high-priority one); activate the TaskSubtype values Email, Call and Task "
            "(or use only the channels the org has)")
    return SetupCheck("task picklists", True, values.describe())
