"""SOQL text: checked names, escaped values, id lists sized for the URI limit.

Values always go through simple-salesforce's `format_soql` (quotes, backslashes, `{:like}`
for LIKE patterns, tz-aware datetimes as unquoted UTC literals: reference §1 "SOQL injection
and escaping"). Field names cannot be escaped, so the ones ops configure are checked against
a strict pattern before they get anywhere near a query; `{:literal}` is used only for them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote_plus

from simple_salesforce.format import format_soql

from connectors.base import FieldMap

FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(__c)?$")
RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")
MAX_IN = 200  # ids per IN list (reference §2: chunks of about 200)
# The whole URI may not pass 16,384 bytes (reference: Key numbers); leave room for the rest.
URI_BUDGET = 14_000
_ID_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

DEAL_FIELDS = ("Id", "Name", "StageName", "CloseDate", "Amount", "IsClosed", "IsWon",
               "IsDeleted", "AccountId", "Account.Name", "OwnerId", "Owner.IsActive",
               "Owner.Email", "Owner.Name", "Owner.TimeZoneSidKey", "Owner.CountryCode",
               "CreatedDate", "SystemModstamp")
OWNER_FIELDS = "Id, Email, Name, IsActive, TimeZoneSidKey, CountryCode"
ROLE_FIELDS = ("OpportunityId, ContactId, Role, IsPrimary, Contact.Name, Contact.Email, "
               "Contact.HasOptedOutOfEmail, Contact.DoNotCall")
CONTACT_FIELDS = "Id, AccountId, Name, Email, HasOptedOutOfEmail, DoNotCall"


def valid_field_name(name: str) -> bool:
    return bool(FIELD_NAME.fullmatch(name))


def to18(record_id: str) -> str | None:
    """The 18-character form of a Salesforce id (REST always answers with 18), or None if
    `record_id` is not an id at all. The suffix encodes the case of the 15 characters."""
    if not RECORD_ID.fullmatch(record_id):
        return None
    if len(record_id) == 18:
        return record_id
    suffix = ""
    for start in (0, 5, 10):
        bits = sum(1 << i for i, ch in enumerate(record_id[start:start + 5]) if ch.isupper())
        suffix += _ID_SUFFIX[bits]
    return record_id + suffix


def configured_fields(names: FieldMap) -> list[tuple[str, str | None]]:
    """(config path, Opportunity field or None) for every field the connection can name."""
    return [("fields.loss_reason", names.loss_reason), ("fields.competitor", names.competitor),
            ("fields.contract_end", names.contract_end), ("fields.opt_out", names.opt_out),
            ("fields.pause_until", names.pause_until),
            *((f"fields.custom.{k}", v) for k, v in names.custom.items())]


@dataclass(frozen=True)
class DealFields:
    """The Opportunity fields a pull selects: the connection's `FieldMap` (`names`), and the
    names in it that are not Salesforce field API names (never put into SOQL)."""

    names: FieldMap = field(default_factory=FieldMap)
    problems: tuple[str, ...] = ()

    @classmethod
    def from_names(cls, names: FieldMap) -> DealFields:
        problems = [f"{setting} = {value!r} is not a Salesforce field API name "
                    "(letters, digits and underscores, e.g. Loss_Reason__c)"
                    for setting, value in configured_fields(names)
                    if value is not None and not valid_field_name(value)]
        return cls(names, tuple(problems))

    def settings(self) -> list[tuple[str, str]]:
        """(config path, Opportunity field) for every configured field."""
        return [(setting, value) for setting, value in configured_fields(self.names) if value]

    def hint(self) -> dict[str, str]:
        """Configured field (lower case) -> the setting that names it, for error messages."""
        out: dict[str, str] = {}
        for setting, value in self.settings():
            out.setdefault(value.lower(), setting)
        return out

    def configured(self) -> list[str]:
        return [value for _, value in self.settings()]

    def select(self) -> str:
        seen = {f.lower() for f in DEAL_FIELDS}
        extra = []
        for name in self.configured():
            if name.lower() not in seen:
                seen.add(name.lower())
                extra.append(name)
        return ", ".join((*DEAL_FIELDS, *extra))


def deals_since(fields: DealFields, since: datetime) -> str:
    return format_soql("SELECT {:literal} FROM Opportunity WHERE SystemModstamp >= {} "
                       "ORDER BY SystemModstamp ASC, Id ASC", fields.select(), since)


def every_deal(fields: DealFields) -> str:
    """Every Opportunity, the pull's fields (the daily re-read of tracked deals, in bulk)."""
    return format_soql("SELECT {:literal} FROM Opportunity ORDER BY Id ASC", fields.select())


def deals_by_id(fields: DealFields, ids: Sequence[str]) -> str:
    return format_soql("SELECT {:literal} FROM Opportunity WHERE Id IN {}", fields.select(),
                       list(ids))


def roles_of(deal_ids: Sequence[str]) -> str:
    return format_soql("SELECT {:literal} FROM OpportunityContactRole WHERE OpportunityId IN {}",
                       ROLE_FIELDS, list(deal_ids))


def accounts_of(deal_ids: Sequence[str]) -> str:
    return format_soql("SELECT Id, AccountId FROM Opportunity WHERE Id IN {}", list(deal_ids))


def contacts_of(account_ids: Sequence[str]) -> str:
    return format_soql("SELECT {:literal} FROM Contact WHERE AccountId IN {} ORDER BY Id",
                       CONTACT_FIELDS, list(account_ids))


def owners() -> str:
    return format_soql("SELECT {:literal} FROM User ORDER BY Id", OWNER_FIELDS)


def tasks_by_key(key_field: str, keys: Sequence[str]) -> str:
    return format_soql("SELECT Id, Status, IsClosed, IsDeleted, OwnerId, {:literal} FROM Task "
                       "WHERE {:literal} IN {}", key_field, key_field, list(keys))


def tasks_by_id(ids: Sequence[str]) -> str:
    """The cheap status read of winback's written tasks (queryAll: closed activities get
    archived)."""
    return format_soql("SELECT Id, IsClosed, CompletedDateTime, IsDeleted FROM Task "
                       "WHERE Id IN {}", list(ids))


MARKER_PATTERN = re.compile(r"\[wb:([^\]]+)\]")


def marker(key: str) -> str:
    return f"[wb:{key}]"


def _like_clause(key: str) -> str:
    return format_soql("Subject LIKE '%{:like}%'", marker(key))


def tasks_by_marker(keys: Sequence[str]) -> str:
    clauses = " OR ".join(_like_clause(k) for k in keys)  # each escaped by format_soql
    return format_soql("SELECT Id, Subject, Status, IsClosed, IsDeleted, OwnerId FROM Task "
                       "WHERE {:literal}", clauses)


def _encoded(text: str) -> int:
    return len(quote_plus(text))


def in_list_cost(value: str) -> int:
    return _encoded(format_soql("{}", value)) + _encoded(",")


def marker_cost(key: str) -> int:
    return _encoded(_like_clause(key)) + _encoded(" OR ")


def chunked(values: Sequence[str], cost: Callable[[str], int], *, base: int = 600,
            max_items: int = MAX_IN, budget: int = URI_BUDGET) -> Iterator[list[str]]:
    """`values` in runs of at most `max_items` whose query text stays within `budget` bytes
    once URL-encoded (`base` is the rest of the query)."""
    chunk: list[str] = []
    size = base
    for value in values:
        step = cost(value)
        if chunk and (len(chunk) >= max_items or size + step > budget):
            yield chunk
            chunk, size = [], base
        chunk.append(value)
        size += step
    if chunk:
        yield chunk
