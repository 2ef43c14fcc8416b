"""Salesforce JSON records -> the port's `Deal`, `Owner` and `Contact`.

REST renders datetimes as `2024-06-01T08:15:02.000+0000` and dates as `YYYY-MM-DD`; a null
parent lookup (`Owner`, `Account`, `Contact`) comes back as null (reference §1 "Query
response"). Stage flags come from `IsClosed`/`IsWon`, which Salesforce derives from the
stage metadata, never from stage names (§1).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from connectors.models import Contact, Deal, Owner
from connectors.salesforce.soql import DealFields

Record = Mapping[str, Any]


def text(record: Record | None, name: str) -> str | None:
    value = record.get(name) if record else None
    return str(value) if value is not None else None


def flag(record: Record | None, name: str, default: bool = False) -> bool:
    value = record.get(name) if record else None
    return bool(value) if value is not None else default


def parse_datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_date(value: Any) -> date | None:
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def parent(record: Record, name: str) -> Record | None:
    value = record.get(name)
    return value if isinstance(value, Mapping) else None


def owner(record: Record) -> Owner:
    return _owner(str(record["Id"]), text(record, "Email"), text(record, "Name"),
                  text(record, "TimeZoneSidKey"), flag(record, "IsActive", True),
                  text(record, "CountryCode"))


@functools.lru_cache(maxsize=4096)
def _owner(owner_id: str, email: str | None, name: str | None, timezone: str | None,
           active: bool, country: str | None) -> Owner:
    """One `Owner` per distinct value set (frozen, so shared): a pull of many deals has few
    owners, and each would cost a validation per deal."""
    return Owner(id=owner_id, email=email, name=name, timezone=timezone, active=active,
                 country=country)


def deal(record: Record, deal_fields: DealFields) -> Deal:
    fields = deal_fields.names
    owner_id = text(record, "OwnerId")
    owner_rec = parent(record, "Owner")
    deal_owner = None
    if owner_id:
        deal_owner = owner({**owner_rec, "Id": owner_id}) if owner_rec else Owner(id=owner_id)
    amount = record.get("Amount")
    custom = {name: record.get(api) for name, api in fields.custom.items()}
    return Deal(
        id=str(record["Id"]),
        name=text(record, "Name") or "",
        account_id=text(record, "AccountId"),
        account_name=text(parent(record, "Account"), "Name"),
        stage=text(record, "StageName"),
        closed_at=parse_date(record.get("CloseDate")),
        amount=float(amount) if isinstance(amount, int | float) else None,
        loss_reason=text(record, fields.loss_reason) if fields.loss_reason else None,
        competitor=text(record, fields.competitor) if fields.competitor else None,
        contract_end=parse_date(record.get(fields.contract_end)) if fields.contract_end
        else None,
        owner=deal_owner,
        custom=custom,
        is_closed=flag(record, "IsClosed"),
        is_won=flag(record, "IsWon"),
        deleted=flag(record, "IsDeleted"),
        created_at=parse_datetime(record.get("CreatedDate")),
        modified_at=parse_datetime(record.get("SystemModstamp")),
        opted_out=flag(record, fields.opt_out) if fields.opt_out else False,
        paused_until=parse_date(record.get(fields.pause_until)) if fields.pause_until
        else None,
    )


def role_contact(role: Record) -> Contact | None:
    """A stakeholder from an OpportunityContactRole row; None when the contact is gone or
    hidden (its ContactId may point at a deleted or invisible record: reference §2)."""
    person = parent(role, "Contact")
    if person is None or not role.get("ContactId"):
        return None
    return Contact(id=str(role["ContactId"]), name=text(person, "Name"),
                   email=text(person, "Email"), role=text(role, "Role"),
                   opted_out=flag(person, "HasOptedOutOfEmail") or flag(person, "DoNotCall"))


def account_contact(record: Record) -> Contact:
    return Contact(id=str(record["Id"]), name=text(record, "Name"), email=text(record, "Email"),
                   role=None,
                   opted_out=flag(record, "HasOptedOutOfEmail") or flag(record, "DoNotCall"))
