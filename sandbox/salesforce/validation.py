"""Field-level checks of a write: JSON types, field permissions, lengths, picklists, lookups.

Error codes and messages follow the real API (reference §3.2, §4): JSON_PARSER_ERROR,
INVALID_FIELD, INVALID_FIELD_FOR_INSERT_UPDATE, REQUIRED_FIELD_MISSING, STRING_TOO_LONG,
INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST, MALFORMED_ID, FIELD_INTEGRITY_EXCEPTION,
INVALID_CROSS_REFERENCE_KEY, ENTITY_IS_DELETED, INACTIVE_OWNER_OR_USER.
"""

from __future__ import annotations

from typing import Any

from sandbox.salesforce.errors import ApiError, SFError, json_parser_error
from sandbox.salesforce.ids import normalize_id, parse_date, parse_datetime
from sandbox.salesforce.schema import IDISH, NUMERIC, STRINGISH, Field, SObjectType
from sandbox.salesforce.store import Draft, Row, Store, Table

LABELS = {"WhoId": "Contact/Lead ID", "WhatId": "Related To ID", "AccountId": "Account ID",
          "ContactId": "Contact ID", "OpportunityId": "Opportunity ID", "OwnerId": "Owner ID",
          "TaskSubtype": "Task Subtype", "StageName": "Stage", "ActivityDate": "Due Date Only"}
# Restricted picklists whose values live in a table (the org's picklist metadata).
PICKLIST_TABLES = {("Opportunity", "StageName"): "OpportunityStage",
                   ("Task", "Status"): "TaskStatus", ("Task", "Priority"): "TaskPriority"}


def label(sobject: SObjectType, field: Field) -> str:
    if sobject.name == "Task" and field.name == "OwnerId":
        return "Assigned To ID"
    return field.label or LABELS.get(field.name, field.name)


def fail(code: str, message: str, *fields: str) -> SFError:
    return SFError(400, [ApiError(code, message, tuple(fields))])


def coerce(field: Field, value: Any) -> Any:
    """A JSON value converted to the stored type, or JSON_PARSER_ERROR."""
    if value is None:
        return False if field.type == "boolean" else None
    kind = field.type
    bad = json_parser_error(
        f"Cannot deserialize instance of {kind} from {type(value).__name__.upper()} value "
        f"{value} or request may be missing a required field")
    if kind in STRINGISH:
        if isinstance(value, bool | dict | list):
            raise bad
        return value if isinstance(value, str) else str(value)
    if kind in IDISH:
        if not isinstance(value, str):
            raise bad
        return value
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad
    if kind in NUMERIC:
        if isinstance(value, bool):
            raise bad
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise bad from None
        return int(number) if kind == "int" else number
    if kind == "date":
        day = parse_date(value) if isinstance(value, str) else None
        if day is None:
            raise bad
        return day
    if kind == "datetime":
        moment = parse_datetime(value) if isinstance(value, str) else None
        if moment is None:
            raise bad
        return moment
    return value


def prepare(table: Table, data: dict[str, Any], *, creating: bool,
            admin: bool) -> dict[str, Any]:
    """Map a JSON body onto canonical field names with stored values; checks that fields exist
    and may be written (admins may also write system fields)."""
    sobject = table.sobject
    values: dict[str, Any] = {}
    readonly: list[str] = []
    for key, raw in data.items():
        if key == "attributes":
            continue
        field = sobject.field(key)
        if field is None:
            raise fail("INVALID_FIELD", f"No such column '{key}' on sobject of type "
                       f"{sobject.name}", key)
        if field.name == "Id":
            if creating:
                raise fail("INVALID_FIELD_FOR_INSERT_UPDATE", "cannot specify Id in an insert call",
                           "Id")
            continue
        allowed = field.createable if creating else field.updateable
        if not allowed and not admin:
            readonly.append(field.name)
            continue
        values[field.name] = coerce(field, raw)
    if readonly:
        raise fail("INVALID_FIELD_FOR_INSERT_UPDATE",
                   f"Unable to create/update fields: {', '.join(readonly)}. Please check the "
                   "security settings of this field and verify that it is read/write for your "
                   "profile or permission set.", *readonly)
    return values


def _value(table: Table, row: Row) -> str:
    """A picklist value's API name (what records carry); MasterLabel if it has none."""
    return str(row[table.slot("ApiName")] or row[table.slot("MasterLabel")])


def _ordered(table: Table) -> list[Row]:
    sort = table.slot("SortOrder")
    active = table.slots.get("IsActive")
    rows = [row for row in table.rows.values() if active is None or row[active]]
    return sorted(rows, key=lambda r: r[sort] if r[sort] is not None else 1 << 30)


def picklist_values(store: Store, sobject: SObjectType, field: Field) -> list[str]:
    source = PICKLIST_TABLES.get((sobject.name, field.name))
    if source is None:
        return list(field.picklist)
    table = store[source]
    return [_value(table, row) for row in _ordered(table)]


def picklist_default(store: Store, sobject: SObjectType, field: Field) -> str | None:
    """The value a record gets when the field is left out (the IsDefault row)."""
    source = PICKLIST_TABLES.get((sobject.name, field.name))
    if source is None or "IsDefault" not in store[source].slots:
        return None
    table = store[source]
    flag = table.slot("IsDefault")
    return next((_value(table, row) for row in _ordered(table) if row[flag]), None)


def picklist_row(store: Store, source: str, value: str | None) -> Row | None:
    """The metadata row of a picklist value (OpportunityStage, TaskStatus, TaskPriority)."""
    table = store[source]
    api, label = table.slot("ApiName"), table.slot("MasterLabel")
    return next((row for row in table.rows.values() if (row[api] or row[label]) == value), None)


def check_values(store: Store, table: Table, row: Draft, names: list[str], *,
                 admin: bool) -> None:
    """Lengths, restricted picklists and lookups of the fields in `names`."""
    sobject = table.sobject
    for name in names:
        field = sobject.field(name)
        assert field is not None
        value = row[table.slot(name)]
        if value is None:
            continue
        if field.type in STRINGISH and field.length and len(value) > field.length:
            raise fail("STRING_TOO_LONG", f"{label(sobject, field)}: data value too large: "
                       f"{value[:field.length + 10]} (max length={field.length})", name)
        if field.type == "email" and ("@" not in value or " " in value.strip()):
            raise fail("INVALID_EMAIL_ADDRESS", f"{label(sobject, field)}: invalid email "
                       f"address: {value}", name)
        if field.type == "picklist" and (field.restricted or (sobject.name, name)
                                         in PICKLIST_TABLES):
            allowed = picklist_values(store, sobject, field)
            match = next((v for v in allowed if v.casefold() == value.casefold()), None)
            if match is None:
                raise fail("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                           f"{label(sobject, field)}: bad value for restricted picklist field: "
                           f"{value}", name)
            row[table.slot(name)] = match
        if field.type == "reference":
            row[table.slot(name)] = check_reference(store, sobject, field, value, admin=admin)


def check_reference(store: Store, sobject: SObjectType, field: Field, value: str, *,
                    admin: bool) -> str | None:
    if value == "":
        return None
    what = label(sobject, field)
    normal = normalize_id(value)
    if normal is None:
        code = "FIELD_INTEGRITY_EXCEPTION" if field.polymorphic else "MALFORMED_ID"
        raise fail(code, f"{what}: id value of incorrect type: {value}", field.name)
    targets = [store[t] for t in field.reference_to]
    if not any(normal.startswith(t.sobject.prefix) for t in targets):
        raise fail("FIELD_INTEGRITY_EXCEPTION", f"{what}: id value of incorrect type: {value}",
                   field.name)
    found = next((t for t in targets if normal in t.rows), None)
    if found is None:
        raise fail("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", field.name)
    target = found.rows[normal]
    if found.is_deleted(target) and not admin:
        raise fail("ENTITY_IS_DELETED", "entity is deleted", field.name)
    if field.name == "OwnerId" and not admin and not target[found.slot("IsActive")]:
        raise fail("INACTIVE_OWNER_OR_USER", f"operation performed with inactive user "
                   f"[{normal}] as owner of {sobject.name.lower()}")
    return normal


def check_required(table: Table, row: Row) -> None:
    missing = [f.name for f in table.sobject.fields
               if not f.nillable and f.createable and row[table.slot(f.name)] is None]
    if missing:
        raise fail("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]",
                   *missing)
