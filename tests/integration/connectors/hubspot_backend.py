"""The contract-test `Backend` over a running HubSpot emulator, driven through `/__sandbox/`.

Connectors it builds use, by default, an OAuth app (refresh token -> 30-minute access tokens),
so `expire_sessions` means something: a static private-app token never expires. HubSpot puts
a daily limit only on private-app (static token) calls, so once `set_budget` has been called
the backend's connectors use the backend's static token instead (or pass `auth="static"` /
`auth="oauth"` to `connector()`).

Task due dates: the adapter stores the reminder moment in `hs_timestamp` (the task shows at
that time in the rep's own zone); `tasks()` turns it back into a date in `due_zone`, which
should match the zone the test planned in (UTC by default).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any, Literal
from zoneinfo import ZoneInfo

import requests

from connectors.base import FieldMap, HubSpotSettings
from connectors.hubspot import HubSpotConnector
from sandbox.hubspot.schema import PIPELINES, Pipeline
from sandbox.seed import SeedData, SeedDeal
from tests.integration.connectors.backend import CrmTask, Ids

OAUTH = {"client_id": "sandbox-client-id", "client_secret": "sandbox-client-secret",
         "refresh_token": "sandbox-refresh-token"}
FIELDS = FieldMap(loss_reason="closed_lost_reason", competitor="competitor",
                    contract_end="contract_end_date")  # the emulator's deal properties
HIGH_LIMITS = {"burst": 1_000_000, "search_per_second": 1_000_000, "daily": 100_000_000}
CUSTOM_EVERY = 8  # as the emulator's generator: every 8th deal in the "Renewals" pipeline


class HubSpotBackend:
    kind = "hubspot"
    write_batch = 100

    def __init__(self, base_url: str, *, key_property: str = "winback_key",
                 due_zone: str = "UTC", auth: Literal["oauth", "static"] = "oauth",
                 emulator: Any = None) -> None:
        self.url = base_url.rstrip("/")
        self.key_property = key_property
        self.due_zone = ZoneInfo(due_zone)
        self.auth = auth
        self.token = f"pat-na1-{uuid.uuid4()}"
        self._emulator = emulator  # in-process emulator, if any: lets set_budget preset usage
        self._session = requests.Session()
        self._budget_set = False

    # -- admin plumbing -----------------------------------------------------------------------
    def admin(self, method: str, path: str, body: Any = None) -> Any:
        resp = self._session.request(method, f"{self.url}/__sandbox/{path}", json=body,
                                     timeout=60)
        if resp.status_code >= 300:
            raise AssertionError(f"admin {method} {path}: {resp.status_code} {resp.text}")
        return resp.json() if resp.content else None

    def close(self) -> None:
        self._session.close()

    # -- the Backend protocol ---------------------------------------------------------------------
    def settings(self, **overrides: Any) -> HubSpotSettings:
        auth = overrides.pop("auth", "static" if self._budget_set else self.auth)
        credentials: dict[str, Any] = dict(OAUTH) if auth == "oauth" \
            else {"access_token": self.token}
        if "access_token" in overrides:
            credentials = {"access_token": overrides.pop("access_token")}
        base: dict[str, Any] = {"name": "hubspot", "base_url": self.url,
                                "key_property": self.key_property, "burst_limit": 10_000,
                                "search_per_second": 100, "api_budget_share": 1.0,
                                "timeout": 10.0, "fields": FIELDS, "auth": credentials}
        base.update(overrides)
        self.key_property = base["key_property"]
        return HubSpotSettings(**base)

    def connector(self, **overrides: Any) -> HubSpotConnector:
        observer = overrides.pop("observer", None)
        retry_budget = float(overrides.pop("retry_budget", 20.0))
        return HubSpotConnector(self.settings(**overrides), observer=observer,
                                retry_budget=retry_budget)

    def seed(self, data: SeedData) -> Ids:
        objects: dict[str, list[dict[str, Any]]] = {
            "owners": [{"ref": f"o{o.index}", "email": o.email, "firstName": o.first_name,
                        "lastName": o.last_name, "archived": not o.active}
                       for o in data.owners],
            "companies": [{"ref": f"a{a.index}", "name": a.name, "domain": a.domain}
                          for a in data.accounts],
            "contacts": [{"ref": f"c{c.index}", "firstname": c.first_name,
                          "lastname": c.last_name, "email": c.email,
                          "hs_email_optout": "true" if c.opted_out else "false",
                          "associations": {"companies": [f"@a{c.account}"]}}
                         for c in data.contacts],
            "deals": [_deal_fixture(d) for d in data.deals],
        }
        refs: dict[str, str] = self.admin("POST", "seed", {"objects": objects})["ids"]
        return Ids(owners=[refs[f"o{o.index}"] for o in data.owners],
                   accounts=[refs[f"a{a.index}"] for a in data.accounts],
                   contacts=[refs[f"c{c.index}"] for c in data.contacts],
                   deals=[refs[f"d{d.index}"] for d in data.deals])

    def generate(self, deals: int, seed: int) -> int:
        result = self.admin("POST", "seed", {"generate": {"deals": deals, "seed": seed}})
        return int(result["closed_lost"])

    def set_stage(self, deal_id: str, stage: Literal["lost", "won", "open"]) -> None:
        deal = self.admin("GET", f"objects/deals/{deal_id}")
        pipeline = next((p for p in PIPELINES if p.id == deal["properties"].get("pipeline")),
                        PIPELINES[0])
        self.admin("PATCH", f"objects/deals/{deal_id}",
                   {"properties": {"dealstage": _stage_of(pipeline, stage)}})

    def delete_deal(self, deal_id: str) -> None:
        self.admin("DELETE", f"objects/deals/{deal_id}")

    def deactivate_owner(self, owner_id: str) -> None:
        self.admin("DELETE", f"objects/owners/{owner_id}")

    def tasks(self) -> list[CrmTask]:
        found = []
        for raw in self.admin("GET", "tasks")["results"]:
            props, links = raw["properties"], raw.get("associations") or {}
            stamp = props.get("hs_timestamp")
            due = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(
                self.due_zone).date() if stamp else None
            found.append(CrmTask(
                crm_id=str(raw["id"]), key=props.get(self.key_property),
                subject=props.get("hs_task_subject") or "",
                owner_id=props.get("hubspot_owner_id"),
                deal_id=_first(links.get("deals")), contact_id=_first(links.get("contacts")),
                due_date=due, completed=props.get("hs_task_status") == "COMPLETED",
                deleted=bool(raw.get("archived"))))
        return found

    def calls(self) -> dict[str, int]:
        calls: dict[str, int] = self.admin("GET", "calls")["calls"]
        return calls

    def reset_calls(self) -> None:
        self.admin("POST", "calls/reset")

    def fault(self, **rule: Any) -> None:
        self.admin("POST", "faults", {"endpoint": rule.pop("endpoint", "*"), **rule})

    def clear_faults(self) -> None:
        self.admin("POST", "faults", {"clear": True})

    def expire_sessions(self) -> None:
        self.admin("POST", "tokens/expire")

    def set_budget(self, limit: int, used: int) -> None:
        """HubSpot's daily limit applies to private-app calls: connectors built from now on
        use the backend's static token, whose day already counts `used` calls."""
        self.admin("POST", "limits", {"daily": limit})
        self._budget_set = True
        self._preset_usage(used)

    def advance_clock(self, seconds: float) -> None:
        self.admin("POST", "clock", {"advance_seconds": seconds})

    # -- activities (issue 13) ---------------------------------------------------------------
    activity_kinds = ("call", "meeting", "email", "note", "task")
    reports_deleted_activities = False  # search leaves archived records out
    activity_page = 1000  # activities per page: one v4 association batch
    activity_fields = FieldMap(opt_out="winback_opt_out", pause_until="winback_pause_until")
    wrong_opt_out = "competitor"  # a text property

    def log_activities(self, kind: str, at: datetime, count: int = 1, *,
                       deal: str | None = None, account: str | None = None,
                       contact: str | None = None, owner: str | None = None) -> list[str]:
        object_type = {"call": "calls", "meeting": "meetings", "email": "emails",
                       "note": "notes", "task": "tasks"}[kind]
        props: dict[str, Any] = {"hs_timestamp": _ms_iso(at)}
        if owner:
            props["hubspot_owner_id"] = owner
        if kind == "meeting":
            props.update(hs_meeting_start_time=_ms_iso(at), hs_meeting_title="Meeting",
                         hs_meeting_outcome="COMPLETED")
        elif kind == "task":
            props.update(hs_task_subject="Task", hs_task_status="NOT_STARTED")
        elif kind == "call":
            props.update(hs_call_title="Call", hs_call_direction="OUTBOUND")
        elif kind == "email":
            props.update(hs_email_subject="Email", hs_email_direction="EMAIL")
        else:
            props.update(hs_note_body="Note")
        links = {name: [target] for name, target in (
            ("deals", deal), ("companies", account), ("contacts", contact)) if target}
        if count == 1:
            return [str(self.admin("POST", f"objects/{object_type}",
                                   {"properties": props, "associations": links})["id"])]
        # many at once: one appended fixture load instead of a request each
        refs = [f"act{uuid.uuid4().hex[:12]}" for _ in range(count)]
        ids = self.admin("POST", "seed", {"append": True, "objects": {object_type: [
            {"ref": ref, "properties": props, "associations": links} for ref in refs]}})["ids"]
        return [str(ids[ref]) for ref in refs]

    def complete_task(self, crm_id: str, at: datetime) -> None:
        self.admin("PATCH", f"objects/tasks/{crm_id}", {"properties": {
            "hs_task_status": "COMPLETED", "hs_task_completion_date": _ms_iso(at)}})

    def delete_activity(self, kind: str, crm_id: str) -> None:
        object_type = {"call": "calls", "meeting": "meetings", "email": "emails",
                       "note": "notes", "task": "tasks"}[kind]
        self.admin("DELETE", f"objects/{object_type}/{crm_id}")

    def set_deal_flags(self, deal_id: str, *, opted_out: bool, paused_until: date | None) -> None:
        self.admin("PATCH", f"objects/deals/{deal_id}", {"properties": {
            "winback_opt_out": "true" if opted_out else "false",
            "winback_pause_until": paused_until.isoformat() if paused_until else None}})

    # -- helpers ------------------------------------------------------------------------------
    def violations(self) -> dict[str, Any]:
        found: dict[str, Any] = self.admin("GET", "violations")
        return found

    def _preset_usage(self, used: int) -> None:
        # The admin API has no way to set the day's usage; an in-process emulator's limiter
        # can be told directly, otherwise the calls are really made.
        emulator = self._emulator
        if emulator is not None:
            today = emulator.now().date()
            limiter = emulator.limiter
            with limiter._lock:
                limiter._daily[(self.token, today)] = used
            return
        headers = {"Authorization": f"Bearer {self.token}"}
        for _ in range(used):
            self._session.get(f"{self.url}/crm/v3/pipelines/deals", headers=headers, timeout=30)


def start_backend(**options: Any) -> tuple[HubSpotBackend, Callable[[], None]]:
    """A HubSpot emulator on 127.0.0.1 (limits raised out of the way unless given) and a
    backend over it; call the second value to stop the emulator."""
    from sandbox.hubspot import start_hubspot

    server, emulator = start_hubspot(seed=options.pop("seed", 7), **{**HIGH_LIMITS, **options})
    backend = HubSpotBackend(server.url, emulator=emulator)

    def stop() -> None:
        backend.close()
        server.stop()

    return backend, stop


def _first(values: list[str] | None) -> str | None:
    return str(values[0]) if values else None


def _stage_of(pipeline: Pipeline, state: str) -> str:
    if state == "lost":
        return next(s.id for s in pipeline.stages if s.closed and s.probability == "0.0")
    if state == "won":
        return next(s.id for s in pipeline.stages if s.closed and s.probability == "1.0")
    return next(s.id for s in pipeline.stages if not s.closed and s.probability != "0.0")


def _ms_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _deal_fixture(d: SeedDeal) -> dict[str, Any]:
    pipeline = PIPELINES[1] if d.index % CUSTOM_EVERY == 5 else PIPELINES[0]
    props: dict[str, Any] = {
        "dealname": d.name, "pipeline": pipeline.id, "dealstage": _stage_of(pipeline, d.state),
        "closedate": _ms_iso(datetime.combine(d.close_date, time(), tzinfo=UTC)),
        "hubspot_owner_id": f"@o{d.owner}", "createdate": _ms_iso(d.created_at),
        "hs_lastmodifieddate": _ms_iso(d.modified_at)}
    if d.amount is not None:
        props["amount"] = str(int(d.amount)) if d.amount.is_integer() else repr(d.amount)
    if d.loss_reason:
        props["closed_lost_reason"] = d.loss_reason
    if d.competitor:
        props["competitor"] = d.competitor
    if d.contract_end:
        props["contract_end_date"] = d.contract_end.isoformat()
    return {"ref": f"d{d.index}", "properties": props,
            "associations": {"contacts": [f"@c{c}" for c, _ in d.contacts],
                             "companies": [{"id": f"@a{d.account}", "typeId": 5}]}}


__all__ = ["HubSpotBackend", "start_backend"]
