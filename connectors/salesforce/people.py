"""Stakeholders (OpportunityContactRole, optionally the account's contacts) and owners (User)."""

from __future__ import annotations

from collections.abc import Sequence

from connectors.models import Contact, Owner
from connectors.salesforce import records, soql
from connectors.salesforce.client import Client


def stakeholders(client: Client, deal_ids: Sequence[str], *, account_fallback: bool
                 ) -> dict[str, list[Contact]]:
    """Contacts per deal from its contact roles, primary first; every id asked for is a key.

    With `account_fallback`, a deal without any role gets its account's contacts instead
    (role None): reference §2 "Fallback when there are no roles".
    """
    wanted = list(dict.fromkeys(deal_ids))
    canonical = {i: soql.to18(i) for i in wanted}
    query_ids = list(dict.fromkeys(c for c in canonical.values() if c))
    by_deal: dict[str, list[Contact]] = {i: [] for i in query_ids}
    for chunk in soql.chunked(query_ids, soql.in_list_cost):
        rows = client.query_all(soql.roles_of(chunk))
        rows.sort(key=lambda r: not r.get("IsPrimary"))  # stable: primary first
        for row in rows:
            contact = records.role_contact(row)
            deal_id = str(row.get("OpportunityId"))
            if contact is None or deal_id not in by_deal:
                continue
            if all(c.id != contact.id for c in by_deal[deal_id]):
                by_deal[deal_id].append(contact)
    if account_fallback:
        _account_contacts(client, [i for i, found in by_deal.items() if not found], by_deal)
    return {i: list(by_deal.get(canonical[i] or "", [])) for i in wanted}


def _account_contacts(client: Client, deal_ids: list[str],
                      by_deal: dict[str, list[Contact]]) -> None:
    account_of: dict[str, str] = {}
    for chunk in soql.chunked(deal_ids, soql.in_list_cost):
        for row in client.query_all(soql.accounts_of(chunk)):
            if row.get("AccountId"):
                account_of[str(row["Id"])] = str(row["AccountId"])
    accounts = list(dict.fromkeys(account_of.values()))
    people: dict[str, list[Contact]] = {}
    for chunk in soql.chunked(accounts, soql.in_list_cost):
        for row in client.query_all(soql.contacts_of(chunk)):
            people.setdefault(str(row["AccountId"]), []).append(records.account_contact(row))
    for deal_id, account_id in account_of.items():
        by_deal[deal_id] = list(people.get(account_id, []))


def owners(client: Client) -> list[Owner]:
    """Every user, active and inactive (closed-lost deals often belong to people who left:
    reference §3.2)."""
    return [records.owner(row) for row in client.query_all(soql.owners())]
