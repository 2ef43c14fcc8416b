"""The contract-test backend for the in-memory fake."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from connectors.base import FieldMap
from connectors.memory import InMemoryConnector
from connectors.models import Activity, ActivityKind, Contact, Deal, Owner
from sandbox.seed import SeedData, generate
from tests.integration.connectors.backend import CrmTask, Ids


class MemoryBackend:
    kind = "memory"
    write_batch = 200

    def __init__(self) -> None:
        self.now = datetime.now(UTC)
        self.crm = InMemoryConnector("memory", clock=lambda: self.now, write_batch=200)
        self._activity_ids = 0

    def connector(self, **overrides: Any) -> InMemoryConnector:
        if "api_budget_share" in overrides:
            self.crm.api_budget_share = overrides["api_budget_share"]
        return self.crm

    def seed(self, data: SeedData) -> Ids:
        self.crm = InMemoryConnector("memory", clock=lambda: self.now, write_batch=200)
        owners = [f"U{o.index}" for o in data.owners]
        for o in data.owners:
            self.crm.admin_put_owner(Owner(id=owners[o.index], email=o.email,
                                           name=f"{o.first_name} {o.last_name}",
                                           active=o.active))
        contacts = [f"C{c.index}" for c in data.contacts]
        for d in data.deals:
            account = data.accounts[d.account]
            state = {"lost": (True, False), "won": (True, True), "open": (False, False)}[d.state]
            self.crm.admin_put_deal(Deal(
                id=f"D{d.index}", name=d.name, account_id=f"A{d.account}",
                account_name=account.name, closed_at=d.close_date, amount=d.amount,
                loss_reason=d.loss_reason, competitor=d.competitor,
                contract_end=d.contract_end, owner=Owner(id=owners[d.owner]),
                is_closed=state[0], is_won=state[1]),
                [Contact(id=contacts[c], name=f"{data.contacts[c].first_name} "
                         f"{data.contacts[c].last_name}", email=data.contacts[c].email,
                         role=role, opted_out=data.contacts[c].opted_out)
                 for c, role in d.contacts])
        return Ids(owners, [f"A{a.index}" for a in data.accounts], contacts,
                   [f"D{d.index}" for d in data.deals])

    def generate(self, deals: int, seed: int) -> int:
        data = generate(deals, seed=seed, now=self.now)
        self.seed(data)
        return sum(d.state == "lost" for d in data.deals)

    def set_stage(self, deal_id: str, stage: Literal["lost", "won", "open"]) -> None:
        closed, won = {"lost": (True, False), "won": (True, True), "open": (False, False)}[stage]
        self.crm.admin_update_deal(deal_id, is_closed=closed, is_won=won)

    def delete_deal(self, deal_id: str) -> None:
        self.crm.admin_delete_deal(deal_id)

    def deactivate_owner(self, owner_id: str) -> None:
        owner = next(o for o in self.crm.owners() if o.id == owner_id)
        self.crm.admin_put_owner(owner.model_copy(update={"active": False}))

    def tasks(self) -> list[CrmTask]:
        return [CrmTask(t.crm_id, t.key, t.draft.subject, t.draft.owner_id, t.draft.deal_id,
                        t.draft.contact_id, t.draft.due_date, t.completed)
                for t in self.crm.admin_tasks()]

    # -- activities (issue 13) ---------------------------------------------------------------
    activity_kinds = ("call", "meeting", "email", "note", "task")
    reports_deleted_activities = True
    activity_page = 200
    activity_fields = FieldMap(opt_out="opt_out", pause_until="pause_until")
    wrong_opt_out = None

    def log_activities(self, kind: str, at: datetime, count: int = 1, *,
                       deal: str | None = None, account: str | None = None,
                       contact: str | None = None, owner: str | None = None) -> list[str]:
        out = []
        for _ in range(count):
            self._activity_ids += 1
            done = kind in ("call", "email")
            activity = self.crm.admin_put_activity(Activity(
                id=f"X{self._activity_ids:08d}", kind=ActivityKind(kind), at=at, deal_id=deal,
                account_id=account, contact_ids=(contact,) if contact else (), owner_id=owner,
                completed=done, completed_at=at if done else None))
            out.append(activity.id)
        return out

    def complete_task(self, crm_id: str, at: datetime) -> None:
        self.crm.admin_complete_task(crm_id, at)

    def delete_activity(self, kind: str, crm_id: str) -> None:
        self.crm.admin_delete_activity(crm_id)

    def set_deal_flags(self, deal_id: str, *, opted_out: bool, paused_until: date | None) -> None:
        self.crm.admin_update_deal(deal_id, opted_out=opted_out, paused_until=paused_until)

    def calls(self) -> dict[str, int]:
        return dict(self.crm.calls)

    def reset_calls(self) -> None:
        self.crm.calls.clear()

    def fault(self, **rule: Any) -> None:
        rate = float(rule.get("rate_429", 0)) + float(rule.get("error_rate", 0))
        self.crm.admin_transient_faults(rate, seed=1)

    def clear_faults(self) -> None:
        self.crm.admin_transient_faults(0.0)

    def expire_sessions(self) -> None:
        """Nothing expires in memory."""

    def set_budget(self, limit: int, used: int) -> None:
        self.crm.daily_limit = limit
        self.crm.calls.clear()
        self.crm.calls["_preused"] = used

    def advance_clock(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def today() -> date:
    return datetime.now(UTC).date()
