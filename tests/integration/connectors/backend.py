"""What the contract tests need from a CRM backend (an emulator, or the in-memory fake).

A backend seeds a CRM-neutral world (`sandbox.seed.SeedData`), changes it the way people do
(reopen, win, delete a deal; deactivate an owner), and reads back what the connector wrote,
all without going through the connector under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, Protocol

from connectors.base import Connector
from sandbox.seed import SeedData


@dataclass(frozen=True)
class Ids:
    """CRM ids of the seeded world, by the generator's indexes."""

    owners: list[str]
    accounts: list[str]
    contacts: list[str]
    deals: list[str]


@dataclass(frozen=True)
class CrmTask:
    """A task as the CRM holds it, in neutral terms."""

    crm_id: str
    key: str | None
    subject: str
    owner_id: str | None
    deal_id: str | None
    contact_id: str | None
    due_date: date | None
    completed: bool
    deleted: bool = False


class Backend(Protocol):
    kind: str
    #: the largest batch the CRM takes for task writes (SF 200, HubSpot 100)
    write_batch: int

    def connector(self, **overrides: Any) -> Connector:
        """A new connector pointed at this backend (overrides go to its settings)."""

    def seed(self, data: SeedData) -> Ids:
        """Replace the CRM's data with this world."""

    def generate(self, deals: int, seed: int) -> int:
        """Replace the CRM's data with `deals` generated deals; return how many are closed-lost."""

    def set_stage(self, deal_id: str, stage: Literal["lost", "won", "open"]) -> None:
        """Move a deal (as a rep would), bumping its modification stamp."""

    def delete_deal(self, deal_id: str) -> None: ...

    def deactivate_owner(self, owner_id: str) -> None: ...

    def tasks(self) -> list[CrmTask]:
        """Every task in the CRM (deleted ones flagged)."""

    def calls(self) -> dict[str, int]:
        """API calls per endpoint since the last reset (login/token calls included)."""

    def reset_calls(self) -> None: ...

    def fault(self, **rule: Any) -> None:
        """Inject faults: the core FaultRule fields, e.g. rate_429=0.3, retry_after=1,
        error_rate=0.2, endpoint="*" or a backend endpoint name."""

    def clear_faults(self) -> None: ...

    def expire_sessions(self) -> None:
        """Every session / access token issued so far stops working now."""

    def set_budget(self, limit: int, used: int) -> None:
        """The daily API budget and how much of it is already used."""

    def advance_clock(self, seconds: float) -> None:
        """Move the CRM's clock (modification stamps, token expiry) forward."""
