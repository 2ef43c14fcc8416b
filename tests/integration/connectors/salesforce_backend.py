"""The contract-test backend for Salesforce: the real `SalesforceConnector` (simple-salesforce)
against the Salesforce emulator over HTTPS on 127.0.0.1, steered through its /__sandbox/ API."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import requests

from connectors.base import FieldMap, SalesforceSettings
from connectors.salesforce import SalesforceConnector
from sandbox.salesforce import start_salesforce
from sandbox.seed import SeedData, SeedDeal
from tests.integration.connectors.backend import CrmTask, Ids

USERNAME = "winback@sandbox.example"
PASSWORD = "sandbox-password"
TOKEN = "SANDBOXTOKEN"
CLIENT_ID = "sandbox-client-id"
CLIENT_SECRET = "sandbox-client-secret"
KEY_FIELD = "Winback_Key__c"
STAGES = {"lost": "Closed Lost", "won": "Closed Won", "open": "Prospecting"}
MARKER = re.compile(r"\[wb:(.+)\]")
CONNECTOR_OPTIONS = ("observer", "account_contacts_fallback", "retry_budget", "clock")
AUTH_KEYS = ("flow", "username", "password", "security_token", "client_id", "client_secret",
             "private_key_file", "private_key")


class SalesforceBackend:
    #: deals without contact roles get their account's contacts (reference §2)
    account_fallback = True

    kind = "salesforce"
    write_batch = 200

    def __init__(self, url: str, ca_path: Path, *, key_field: str | None = KEY_FIELD) -> None:
        self.url = url
        self.ca_path = ca_path
        self.key_field = key_field
        self.http = requests.Session()
        self.http.verify = str(ca_path)
        self.http.trust_env = False
        self.connectors: list[SalesforceConnector] = []

    # -- admin API -------------------------------------------------------------------------
    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, f"{self.url}/__sandbox/{path}", json=body,
                                     timeout=120)
        if response.status_code >= 400:
            raise AssertionError(f"admin {method} {path}: {response.status_code} "
                                 f"{response.text[:500]}")
        return response.json() if response.content else None

    def settings(self, **overrides: Any) -> SalesforceSettings:
        """The backend's settings; auth keys (`password=...`) may be given flat."""
        auth: dict[str, Any] = {"username": USERNAME, "password": PASSWORD,
                                "security_token": TOKEN}
        auth.update({k: overrides.pop(k) for k in AUTH_KEYS if k in overrides})
        base: dict[str, Any] = {
            "name": "sf-sandbox", "auth": auth, "login_url": self.url,
            "task_key_field": self.key_field,
            "fields": FieldMap(loss_reason="Loss_Reason__c", competitor="Competitor__c",
                               contract_end="Contract_End__c"),
            "ca_bundle": str(self.ca_path), "timeout": 15.0,
            "bulk_poll": 0.05}  # the emulator's jobs are done at the first state read
        return SalesforceSettings(**{**base, **overrides})

    def connector(self, **overrides: Any) -> SalesforceConnector:
        options: dict[str, Any] = {"retry_budget": 60.0}
        options.update({k: overrides.pop(k) for k in CONNECTOR_OPTIONS if k in overrides})
        connector = SalesforceConnector(self.settings(**overrides), **options)
        self.connectors.append(connector)
        return connector

    # -- data ------------------------------------------------------------------------------
    def seed(self, data: SeedData) -> Ids:
        self.admin("POST", "reset")
        records = {
            "User": [{"ref": f"u{o.index}", "FirstName": o.first_name, "LastName": o.last_name,
                      "Email": o.email, "Username": o.email, "IsActive": o.active,
                      "TimeZoneSidKey": o.timezone, "CountryCode": o.country}
                     for o in data.owners],
            "Account": [{"ref": f"a{a.index}", "Name": a.name,
                         "Website": f"https://{a.domain}"} for a in data.accounts],
            "Contact": [{"ref": f"c{c.index}", "AccountId": f"@a{c.account}",
                         "FirstName": c.first_name, "LastName": c.last_name, "Email": c.email,
                         "HasOptedOutOfEmail": c.opted_out} for c in data.contacts],
            "Opportunity": [_opportunity(d) for d in data.deals],
            "OpportunityContactRole": [
                {"OpportunityId": f"@d{d.index}", "ContactId": f"@c{c}", "IsPrimary": n == 0,
                 **({"Role": role} if role else {})}
                for d in data.deals for n, (c, role) in enumerate(d.contacts)],
        }
        refs: dict[str, str] = self.admin("POST", "seed", {"records": records})["refs"]
        return Ids([refs[f"u{o.index}"] for o in data.owners],
                   [refs[f"a{a.index}"] for a in data.accounts],
                   [refs[f"c{c.index}"] for c in data.contacts],
                   [refs[f"d{d.index}"] for d in data.deals])

    def generate(self, deals: int, seed: int) -> int:
        self.admin("POST", "reset")
        answer = self.admin("POST", "seed", {"generate": {"deals": deals, "seed": seed}})
        return int(answer["deals"]["lost"])

    def set_stage(self, deal_id: str, stage: Literal["lost", "won", "open"]) -> None:
        self.admin("PATCH", f"records/Opportunity/{deal_id}", {"StageName": STAGES[stage]})

    def delete_deal(self, deal_id: str) -> None:
        self.admin("DELETE", f"records/Opportunity/{deal_id}")

    def deactivate_owner(self, owner_id: str) -> None:
        self.admin("PATCH", f"records/User/{owner_id}", {"IsActive": False})

    def tasks(self) -> list[CrmTask]:
        out = []
        for r in self.admin("GET", "tasks")["records"]:
            subject = str(r.get("Subject") or "")
            key = r.get(self.key_field) if self.key_field else None
            if key is None:
                found = MARKER.search(subject)
                key = found.group(1) if found else None
            due = r.get("ActivityDate")
            out.append(CrmTask(r["Id"], key, subject, r.get("OwnerId"), r.get("WhatId"),
                               r.get("WhoId"), date.fromisoformat(due) if due else None,
                               bool(r.get("IsClosed")), bool(r.get("IsDeleted"))))
        return out

    # -- activities (issue 13) ---------------------------------------------------------------
    #: kinds an activity can be logged as (Salesforce has no note activity)
    activity_kinds = ("call", "meeting", "email", "task")
    reports_deleted_activities = True  # queryAll returns IsDeleted rows
    activity_page = 2000
    activity_fields = FieldMap(opt_out="Winback_Opt_Out__c", pause_until="Winback_Pause_Until__c")
    wrong_opt_out = "Loss_Reason__c"  # a text field

    def log_activities(self, kind: str, at: datetime, count: int = 1, *,
                       deal: str | None = None, account: str | None = None,
                       contact: str | None = None, owner: str | None = None) -> list[str]:
        """Log activities as a rep would (Task for call/email/task, Event for meeting)."""
        links: dict[str, Any] = {"WhatId": deal or account, "WhoId": contact}
        if owner:
            links["OwnerId"] = owner
        if kind == "meeting":
            record = {"Subject": "Meeting", "StartDateTime": _iso(at), "DurationInMinutes": 30,
                      **links}
            sobject = "Event"
        else:
            done = kind != "task"
            record = {"Subject": kind.title(), "ActivityDate": at.date().isoformat(),
                      "TaskSubtype": {"call": "Call", "email": "Email"}.get(kind, "Task"),
                      "Status": "Completed" if done else "Not Started", **links,
                      **({"CompletedDateTime": _iso(at)} if done else {})}
            sobject = "Task"
        answer = self.admin("POST", f"records/{sobject}", [dict(record) for _ in range(count)])
        return list(answer["ids"])

    def complete_task(self, crm_id: str, at: datetime) -> None:
        self.admin("PATCH", f"records/Task/{crm_id}",
                   {"Status": "Completed", "CompletedDateTime": _iso(at)})

    def delete_activity(self, kind: str, crm_id: str) -> None:
        self.admin("DELETE", f"records/{'Event' if kind == 'meeting' else 'Task'}/{crm_id}")

    def set_deal_flags(self, deal_id: str, *, opted_out: bool, paused_until: date | None) -> None:
        self.admin("PATCH", f"records/Opportunity/{deal_id}", {
            "Winback_Opt_Out__c": opted_out,
            "Winback_Pause_Until__c": paused_until.isoformat() if paused_until else None})

    # -- calls, faults, sessions, budget, clock --------------------------------------------
    def calls(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.admin("GET", "calls")["calls"].items()}

    def reset_calls(self) -> None:
        self.admin("POST", "calls/reset")

    def fault(self, **rule: Any) -> None:
        # The emulator answers an injected rate_429 the way Salesforce throttles: 403
        # REQUEST_LIMIT_EXCEEDED "ConcurrentRequests ..." without Retry-After (reference §4),
        # which the connector retries.
        self.admin("POST", "faults", {"endpoint": "*", **rule})

    def clear_faults(self) -> None:
        self.admin("POST", "faults", {"clear": True})

    def expire_sessions(self) -> None:
        self.admin("POST", "sessions/expire", {})

    def set_budget(self, limit: int, used: int) -> None:
        self.admin("POST", "limits", {"daily_api_requests": limit, "used": used})

    def advance_clock(self, seconds: float) -> None:
        self.admin("POST", "clock", {"advance_seconds": seconds})

    def close(self) -> None:
        for connector in self.connectors:
            connector.close()
        self.http.close()


def _opportunity(deal: SeedDeal) -> dict[str, Any]:
    record: dict[str, Any] = {
        "ref": f"d{deal.index}", "Name": deal.name, "AccountId": f"@a{deal.account}",
        "OwnerId": f"@u{deal.owner}", "StageName": STAGES[deal.state],
        "CloseDate": deal.close_date.isoformat(), "Amount": deal.amount,
        "Loss_Reason__c": deal.loss_reason, "Competitor__c": deal.competitor,
        "Contract_End__c": deal.contract_end.isoformat() if deal.contract_end else None,
        "CreatedDate": _stamp(deal.created_at.isoformat()),
        "LastModifiedDate": _stamp(deal.modified_at.isoformat()),
        "SystemModstamp": _stamp(deal.modified_at.isoformat()),
    }
    return record


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stamp(iso: str) -> str:
    return iso.replace("+00:00", "Z")


def start_backend(*, key_field: str | None = KEY_FIELD, **options: Any
                  ) -> tuple[SalesforceBackend, Callable[[], None]]:
    """A fresh emulator (with `options`, e.g. task_external_id_field=None) and its backend."""
    emulator_options = {"task_external_id_field": key_field, **options}
    server, ca, _ = start_salesforce(0, ca_dir=Path(tempfile.mkdtemp(prefix="winback-sf-")),
                                     **emulator_options)
    backend = SalesforceBackend(server.url, ca.ca_path, key_field=key_field)

    def stop() -> None:
        backend.close()
        server.stop()

    return backend, stop
