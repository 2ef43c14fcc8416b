"""Tasks the CRM refused for good: their reason, how they are counted and how to fix them.

A refused task is `failed` in the ledger with `last_error` = "CODE: the CRM's message". The code
(the CRM's own error code, e.g. `INACTIVE_OWNER_OR_USER`) is the reason the `sync` summary,
`winback status`, the report and the `winback_tasks_failed` gauge group by.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from worker.ledger.queries import failed_errors

if TYPE_CHECKING:
    from connectors.models import Deal
    from worker.cadence.engine import DealPlan
    from worker.sync.context import Counts

# Codes that mean "this owner cannot get tasks" (deactivated or unknown user).
OWNER_ERRORS = ("INACTIVE_OWNER_OR_USER", "INVALID_OWNER", "INVALID_OWNER_ID",
                "OWNER_NOT_FOUND", "INACTIVE_OWNER")
# The code each CRM answers for a deactivated owner: primed at 0 in /metrics at startup.
INACTIVE_OWNER_CODE = {"salesforce": "INACTIVE_OWNER_OR_USER", "hubspot": "INACTIVE_OWNER"}
UNKNOWN = "UNKNOWN"


def reason_of(last_error: str | None) -> str:
    """The CRM error code at the front of a ledger `last_error` ("CODE: message")."""
    if not last_error:
        return UNKNOWN
    code = last_error.split(":", 1)[0].strip()
    return code if code and " " not in code else UNKNOWN


def failed_by_reason(conn: Connection, connection: str) -> dict[str, int]:
    """Failed tasks of one connection in the ledger, by reason."""
    out: dict[str, int] = {}
    for _, last_error, count in failed_errors(conn, [connection]):
        reason = reason_of(last_error)
        out[reason] = out.get(reason, 0) + count
    return dict(sorted(out.items()))


def failed_text(count: int, by_reason: dict[str, int]) -> str:
    """`7 failed (INACTIVE_OWNER_OR_USER 7)`, or `0 failed`."""
    if not by_reason:
        return f"{count} failed"
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(by_reason.items()))
    return f"{count} failed ({reasons})"


def _owners_text(owners: dict[str, str]) -> str:
    shown = [f"{name} ({oid})" if name else oid for oid, name in sorted(owners.items())]
    return ", ".join(shown[:10]) + (f" and {len(shown) - 10} more" if len(shown) > 10 else "")


def hints(connection: str, counts: Counts, fallback_owners: tuple[str, ...],
          config: str = "CONFIG") -> list[str]:
    """How to fix what this tick's refusals were (one line per kind of problem)."""
    by_reason: dict[str, int] = counts.failed_by_reason
    lines: list[str] = []
    owner_failures = sum(v for k, v in by_reason.items() if k in OWNER_ERRORS)
    if owner_failures:
        owners = _owners_text(counts.refused_owners)
        fallback_owner = next((f for f in fallback_owners if f in counts.refused_owners), None)
        if fallback_owner:
            lines.append(f"{connection}: {owner_failures} task(s) refused because the "
                         f"fallback_owner {fallback_owner} is itself inactive or unknown in the "
                         "CRM: set fallback_owner to an active owner's id (`winback owners "
                         f"{config}` lists them), then run sync again")
        else:
            lines.append(f"{connection}: {owner_failures} task(s) refused: their owner is "
                         f"inactive or unknown in the CRM ({owners}): set fallback_owner on "
                         f"connection {connection} to an active owner's id (`winback owners "
                         f"{config}` lists them), or reactivate the owner")
    others = {k: v for k, v in by_reason.items() if k not in OWNER_ERRORS}
    if others:
        lines.append(f"{connection}: {sum(others.values())} task(s) refused by a CRM rule "
                     f"({', '.join(sorted(others))}): `winback status {config}` counts them, "
                     "the ledger keeps each CRM message; see the Runbook in "
                     "docs/operations.md")
    return lines


def inactive_owner(deal: Deal, plan: DealPlan) -> bool:
    """Whether a plan's tasks go to an owner the deal marks inactive (`owner.active: false` in
    the Deal shape), i.e. no fallback_owner took them: the CRM will refuse them."""
    owner = deal.owner
    return (owner is not None and not owner.active and not plan.owner_fallback
            and plan.owner_id == owner.id and bool(plan.tasks))


def plan_warning(results: Sequence[tuple[Deal, DealPlan, object]], connection: str,
                 config: str) -> str | None:
    """One warning for `winback plan` naming the deals of inactive owners, with the fix."""
    flagged = [(deal, plan) for deal, plan, _ in results if inactive_owner(deal, plan)]
    if not flagged:
        return None
    tasks = sum(len(plan.tasks) for _, plan in flagged)
    owners = {deal.owner.id: deal.owner.name or "" for deal, _ in flagged
              if deal.owner is not None}  # (inactive_owner holds only for deals with one)
    deals = ", ".join(deal.id for deal, _ in flagged[:10]) + (
        f" and {len(flagged) - 10} more" if len(flagged) > 10 else "")
    return (f"warning: {len(flagged)} deal(s) ({deals}) belong to inactive owner(s) "
            f"{_owners_text(owners)} and connection {connection} has no fallback_owner: the "
            f"CRM will refuse their {tasks} task(s). Set fallback_owner on the connection to an "
            f"active owner's id (`winback owners {config}` lists them).")
