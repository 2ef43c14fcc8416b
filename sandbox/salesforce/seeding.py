"""Loading data: generated deals (`sandbox.seed.generate`) and JSON fixtures.

Generated data goes straight into the tables (no per-record validation) so that 50,000 deals
load in a second or two: owners -> User, accounts -> Account, contacts -> Contact, deals ->
Opportunity plus OpportunityContactRole. Lost deals get "Closed Lost" ("Closed - No Budget"
when the loss reason is budget), won ones "Closed Won", open ones an open stage.
Fixtures (`{"User": [...], "Opportunity": [...]}`) go through the admin write path, may name
records with "ref" and link to them with "@ref" values, and load all-or-nothing.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sandbox.salesforce.activities import rep_record
from sandbox.salesforce.errors import SFError
from sandbox.salesforce.ids import parse_datetime
from sandbox.salesforce.schema import OPEN_STAGES, STANDARD_STAGES
from sandbox.salesforce.store import Draft, Table
from sandbox.seed import generate

if TYPE_CHECKING:
    from sandbox.salesforce.emulator import SalesforceEmulator

FIXTURE_ORDER = ("User", "Account", "Contact", "Lead", "Opportunity", "OpportunityContactRole",
                 "Task")
OPP_TYPES = ("New Customer", "Existing Customer - Upgrade", "Existing Customer - Replacement")
SAMPLE = 5


class FixtureError(Exception):
    def __init__(self, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail = detail or {}


def _template(table: Table) -> Draft:
    row = table.blank()
    for f in table.sobject.fields:
        if f.type == "boolean":
            row[table.slot(f.name)] = False
    return row


def _rows(table: Table, names: tuple[str, ...]) -> tuple[Draft, list[int]]:
    return _template(table), [table.slot(n) for n in names]


def seed_generated(emu: SalesforceEmulator, spec: dict[str, Any]) -> dict[str, Any]:
    """Generate and load deals; the caller holds the lock."""
    kwargs = dict(spec)
    deals = int(kwargs.pop("deals", 0))
    activities = int(kwargs.pop("activities", 0))
    seed = int(kwargs.pop("seed", emu.seed))
    now_text = kwargs.pop("now", None)
    now = parse_datetime(str(now_text)) if now_text else emu.now()
    if now is None:
        raise FixtureError(f"bad 'now': {now_text!r}")
    try:
        data = generate(deals, seed=seed, now=now, **kwargs)
    except TypeError as exc:
        raise FixtureError(str(exc)) from None
    rng = random.Random(seed)
    store, actor = emu.store, emu.default_user_id
    stamp = now - timedelta(days=int(kwargs.get("days_back", 400)) + 30)
    system = (stamp, actor, stamp, actor, stamp)
    system_names = ("CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                    "SystemModstamp")
    ids: dict[str, list[str]] = {}

    def load(name: str, fields: tuple[str, ...], values: list[tuple[Any, ...]]) -> list[str]:
        table = store[name]
        template, slots = _rows(table, ("Id", *fields))
        out = []
        for record in values:
            row = template.copy()
            record_id = store.new_id(table)
            for slot, value in zip(slots, (record_id, *record), strict=True):
                row[slot] = value
            table.put(record_id, row)
            out.append(record_id)
        ids[name] = out
        return out

    user_fields = ("Username", "FirstName", "LastName", "Name", "Alias", "Email", "IsActive",
                   "TimeZoneSidKey", "CountryCode", *system_names)
    owners = load("User", user_fields, [
        (o.email, o.first_name, o.last_name, f"{o.first_name} {o.last_name}",
         (o.first_name[:1] + o.last_name)[:8].lower(), o.email, o.active, o.timezone, o.country,
         *system) for o in data.owners])
    accounts = load("Account", ("Name", "Website", "OwnerId", *system_names), [
        (a.name, f"https://{a.domain}", actor, *system) for a in data.accounts])
    contacts = load("Contact", ("AccountId", "FirstName", "LastName", "Name", "Email",
                                "HasOptedOutOfEmail", "OwnerId", *system_names), [
        (accounts[c.account], c.first_name, c.last_name, f"{c.first_name} {c.last_name}",
         c.email, c.opted_out, actor, *system) for c in data.contacts])
    stages = {s.label: s for s in STANDARD_STAGES}
    opp_rows = []
    for deal in data.deals:
        if deal.state == "lost":
            stage = stages["Closed - No Budget" if deal.loss_reason == "No budget"
                           else "Closed Lost"]
        elif deal.state == "won":
            stage = stages["Closed Won"]
        else:
            stage = stages[rng.choice(OPEN_STAGES)]
        owner = owners[deal.owner]
        opp_rows.append((
            deal.name, accounts[deal.account], owner, stage.label, deal.close_date, deal.amount,
            float(stage.probability), rng.choice(OPP_TYPES), stage.closed, stage.won,
            stage.forecast_category, stage.forecast_name, deal.loss_reason, deal.competitor,
            deal.contract_end, deal.created_at, owner, deal.modified_at, owner, deal.modified_at))
    opportunities = load("Opportunity", (
        "Name", "AccountId", "OwnerId", "StageName", "CloseDate", "Amount", "Probability", "Type",
        "IsClosed", "IsWon", "ForecastCategory", "ForecastCategoryName", "Loss_Reason__c",
        "Competitor__c", "Contract_End__c", *system_names), opp_rows)
    roles = [(opportunities[deal.index], contacts[c], role, n == 0, deal.created_at, actor,
              deal.created_at, actor, deal.created_at)
             for deal in data.deals for n, (c, role) in enumerate(deal.contacts)]
    load("OpportunityContactRole", ("OpportunityId", "ContactId", "Role", "IsPrimary",
                                    *system_names), roles)
    if activities and opportunities:
        ids["Activity"] = seed_activities(emu, activities, opportunities, [
            (contacts[d.contacts[0][0]] if d.contacts else None, owners[d.owner],
             d.modified_at) for d in data.deals])
    states = {"lost": 0, "won": 0, "open": 0}
    for deal in data.deals:
        states[deal.state] += 1
    return {
        "counts": {name: len(values) for name, values in ids.items()},
        "deals": states,
        "ids": {name: values[:SAMPLE] for name, values in ids.items()},
        "inactive_user_ids": [owners[o.index] for o in data.owners if not o.active],
        "closed_lost_ids": [opportunities[d.index] for d in data.deals
                            if d.state == "lost"][:SAMPLE],
    }


def seed_records(emu: SalesforceEmulator, spec: dict[str, Any]) -> dict[str, Any]:
    """Load JSON fixtures in Salesforce field names, all or nothing; the caller holds the lock."""
    unknown = [name for name in spec if emu.store.table(name) is None]
    if unknown:
        raise FixtureError(f"unknown sObject types: {unknown}")
    order = [n for n in FIXTURE_ORDER if n in spec] + [n for n in spec if n not in FIXTURE_ORDER]
    refs: dict[str, str] = {}
    ids: dict[str, list[str]] = {}
    logins: list[tuple[str, str, str]] = []
    store = emu.store
    store.begin()
    try:
        for name in order:
            table = store[name]
            records = spec[name]
            if not isinstance(records, list):
                raise FixtureError(f"{name}: expected a list of records")
            for index, raw in enumerate(records):
                record = _resolve(dict(raw), refs, name, index)
                ref = record.pop("ref", None)
                if table.sobject.name == "User":
                    record, login = _user_fixture(record, len(ids.get("User", ())))
                    if login:
                        logins.append(login)
                try:
                    record_id = emu.dml.create(table, record, emu.default_user_id, admin=True)
                except SFError as exc:
                    raise FixtureError(f"{name}[{index}]: {exc}", {
                        "object": name, "index": index,
                        "errors": [e.rest() for e in exc.errors]}) from None
                ids.setdefault(table.sobject.name, []).append(record_id)
                if ref:
                    refs[str(ref)] = record_id
    except FixtureError:
        store.rollback()
        raise
    store.commit()
    for username, password, token in logins:
        emu.add_login_user(username, password, token)
    return {"refs": refs, "ids": ids, "counts": {k: len(v) for k, v in ids.items()}}


def _resolve(record: dict[str, Any], refs: dict[str, str], name: str,
             index: int) -> dict[str, Any]:
    for key, value in record.items():
        if key != "ref" and isinstance(value, str) and value.startswith("@"):
            target = refs.get(value[1:])
            if target is None:
                raise FixtureError(f"{name}[{index}].{key}: unknown ref {value!r} (refs must be "
                                   "defined earlier in the same call)")
            record[key] = target
    return record


def _user_fixture(record: dict[str, Any],
                  count: int) -> tuple[dict[str, Any], tuple[str, str, str] | None]:
    password = record.pop("password", None)
    token = record.pop("security_token", "")
    lowered = {k.lower() for k in record}
    if "username" not in lowered:
        record["Username"] = record.get("Email") or f"user{count + 1}@sandbox.example"
    if "lastname" not in lowered:
        record["LastName"] = "User"
    login = (str(record.get("Username")), str(password), str(token)) if password else None
    return record, login


ACTIVITY_CYCLE = ("call", "email", "meeting", "task")


def seed_activities(emu: SalesforceEmulator, count: int, deals: list[str],
                    about: list[tuple[str | None, str, datetime]]) -> list[str]:
    """`count` activities spread over the deals in turn (a logged call, a logged email, a
    meeting, an open task), dated and stamped up to a month after the deal's last change.
    Admin writes, so Salesforce's own derivations (AccountId, IsClosed, ...) apply."""
    out = []
    for i in range(count):
        contact, owner, changed = about[i % len(deals)]
        at = (changed + timedelta(hours=i % 720)).replace(microsecond=0)
        kind = ACTIVITY_CYCLE[i % len(ACTIVITY_CYCLE)]
        stamps = {"CreatedDate": at, "LastModifiedDate": at, "SystemModstamp": at}
        sobject, record = rep_record(kind, at, what=deals[i % len(deals)], who=contact,
                                     owner=owner)
        out.append(emu.dml.create(emu.store[sobject], {**record, **_json_values(stamps)},
                                  emu.default_user_id, admin=True))
    return out


def _json_values(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat().replace("+00:00", "Z") if isinstance(v, datetime | date) else v
            for k, v in values.items()}
