"""The ledger's activity side (issue 13): CRM activities linked to tracked deals, the activity
watermark, skip decisions, tracked deals' contacts, and the enrollments due a re-plan.

Every write runs inside the caller's fenced transaction (like store.py). The planner's input
for a deal (`DealActivity`) is read back from here, set-wise for a batch of deals.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select, update

from connectors.models import Activity, ActivityKind, Contact, Deal
from worker.cadence.activity import ActivityRef, DealActivity
from worker.cadence.outcome import Skipped
from worker.ledger.records import (
    OPEN_STATUSES,
    CancelReason,
    Enrollment,
    EnrollmentStatus,
    TaskStatus,
)
from worker.ledger.schema import (
    activity,
    activity_link,
    connection_state,
    deal_contact,
    enrollment,
    skip_decision,
    task,
)
from worker.ledger.store import _insert, chunks

# What a stored activity's change must touch for its deals to be re-planned.
_RELEVANT = ("kind", "at", "deal_id", "account_id", "contact_ids", "task_key", "completed",
             "completed_at", "deleted")
WRITTEN_STATUSES = (TaskStatus.WRITTEN, TaskStatus.SENDING)


@dataclass(frozen=True)
class TrackedLinks:
    """Which tracked deals an activity concerns, by the ids it may name."""

    by_deal: frozenset[str]
    by_account: Mapping[str, frozenset[str]]
    by_contact: Mapping[str, frozenset[str]]
    by_task_key: Mapping[str, str]

    def deals_of(self, item: Activity) -> set[str]:
        found: set[str] = set()
        if item.deal_id is not None and item.deal_id in self.by_deal:
            found.add(item.deal_id)
        if item.account_id is not None:
            found |= self.by_account.get(item.account_id, frozenset())
        for contact in item.contact_ids:
            found |= self.by_contact.get(contact, frozenset())
        if item.task_key is not None and item.task_key in self.by_task_key:
            found.add(self.by_task_key[item.task_key])
        return found


def set_activity_watermark(conn: Connection, name: str, watermark: datetime) -> None:
    conn.execute(update(connection_state).where(connection_state.c.name == name)
                 .values(activity_watermark=watermark))


def tracked_links(conn: Connection, connection: str, items: Sequence[Activity]
                  ) -> TrackedLinks:
    """The tracked (active) deals these activities name: by deal id, by account, by
    stakeholder contact and, for winback's own tasks, by task key."""
    active = and_(enrollment.c.connection == connection,
                  enrollment.c.status == EnrollmentStatus.ACTIVE)
    deal_ids = sorted({a.deal_id for a in items if a.deal_id})
    accounts = sorted({a.account_id for a in items if a.account_id})
    contacts = sorted({c for a in items for c in a.contact_ids})
    keys = sorted({a.task_key for a in items if a.task_key})
    by_deal: set[str] = set()
    for part in chunks(deal_ids):
        by_deal |= {str(r[0]) for r in conn.execute(
            select(enrollment.c.deal_id).where(active, enrollment.c.deal_id.in_(part)))}
    by_account: dict[str, set[str]] = {}
    for part in chunks(accounts):
        for account_id, deal_id in conn.execute(select(
                enrollment.c.account_id, enrollment.c.deal_id).where(
                active, enrollment.c.account_id.in_(part))):
            by_account.setdefault(str(account_id), set()).add(str(deal_id))
    by_contact: dict[str, set[str]] = {}
    for part in chunks(contacts):
        for contact_id, deal_id in conn.execute(select(
                deal_contact.c.contact_id, deal_contact.c.deal_id).join(
                enrollment, and_(enrollment.c.connection == deal_contact.c.connection,
                                 enrollment.c.deal_id == deal_contact.c.deal_id)).where(
                active, deal_contact.c.connection == connection,
                deal_contact.c.contact_id.in_(part))):
            by_contact.setdefault(str(contact_id), set()).add(str(deal_id))
    by_key: dict[str, str] = {}
    for part in chunks(keys):
        by_key.update({str(k): str(d) for k, d in conn.execute(select(
            task.c.key, task.c.deal_id).where(task.c.connection == connection,
                                              task.c.key.in_(part)))})
    return TrackedLinks(frozenset(by_deal), {k: frozenset(v) for k, v in by_account.items()},
                        {k: frozenset(v) for k, v in by_contact.items()}, by_key)


def _values(connection: str, item: Activity) -> dict[str, object]:
    return {"connection": connection, "id": item.id, "kind": str(item.kind), "at": item.at,
            "deal_id": item.deal_id, "account_id": item.account_id,
            "contact_ids": list(item.contact_ids), "owner_id": item.owner_id,
            "task_key": item.task_key, "completed": item.completed,
            "completed_at": item.completed_at, "deleted": item.deleted,
            "modified_at": item.modified_at}


def store_activities(conn: Connection, connection: str,
                     linked: Sequence[tuple[Activity, set[str]]]) -> set[str]:
    """Upsert activities on (connection, id) with their links to tracked deals (none yet:
    kept for a deal tracked later, `link_new`); returns the deals whose activity changed
    in a way a plan may see (new, moved, completed, deleted, relinked). The overlap's
    re-reads change nothing and re-plan nothing."""
    if not linked:
        return set()
    ids = [a.id for a, _ in linked]
    before: dict[str, dict[str, object]] = {}
    for part in chunks(ids):
        for row in conn.execute(select(activity).where(activity.c.connection == connection,
                                                       activity.c.id.in_(part))):
            before[str(row.id)] = dict(row._mapping)
    old_links: dict[str, set[str]] = {}
    for part in chunks(ids):
        for deal_id, activity_id in conn.execute(select(
                activity_link.c.deal_id, activity_link.c.activity_id).where(
                activity_link.c.connection == connection,
                activity_link.c.activity_id.in_(part))):
            old_links.setdefault(str(activity_id), set()).add(str(deal_id))
    affected: set[str] = set()
    rows: list[dict[str, object]] = []
    links: list[dict[str, object]] = []
    for item, deals in linked:
        values = _values(connection, item)
        old = before.get(item.id)
        known = old_links.get(item.id, set())
        new_deals = deals - known
        if old is None or any(old[c] != values[c] for c in _RELEVANT):
            affected |= deals | known
        else:
            affected |= new_deals
        rows.append(values)
        links += [{"connection": connection, "deal_id": d, "activity_id": item.id}
                  for d in sorted(new_deals)]
    statement = _insert(conn, activity)
    statement = statement.on_conflict_do_update(
        index_elements=["connection", "id"],
        set_={c: statement.excluded[c] for c in (*_RELEVANT, "owner_id", "modified_at")})
    for batch in chunks(rows):
        conn.execute(statement, list(batch))
    if links:
        conn.execute(_insert(conn, activity_link).on_conflict_do_nothing(), links)
    done = {a.task_key: a.completed_at for a, _ in linked
            if a.task_key and a.completed and not a.deleted}
    undated = [k for k, at in done.items() if at is None]
    for part in chunks(undated):  # winback's own tasks completed in the CRM
        conn.execute(update(task).where(task.c.connection == connection,
                                        task.c.key.in_(part)).values(completed=True))
    dated = [{"k": k, "at": at} for k, at in done.items() if at is not None]
    if dated:  # (with when: the outcome report's on time / late), one executemany
        conn.execute(update(task).where(task.c.connection == connection,
                                        task.c.key == bindparam("k"))
                     .values(completed=True, completed_at=bindparam("at")), dated)
    return affected


def mark_deleted(conn: Connection, connection: str, ids: Iterable[str]) -> set[str]:
    """Activities the CRM no longer has (HubSpot search never returns an archived one):
    flagged deleted, so that no plan counts them; returns the deals they were linked to."""
    wanted = sorted(set(ids))
    deals: set[str] = set()
    for part in chunks(wanted):
        conn.execute(update(activity).where(activity.c.connection == connection,
                                            activity.c.id.in_(part))
                     .values(deleted=True))
        deals |= {str(d) for d in conn.execute(select(activity_link.c.deal_id).where(
            activity_link.c.connection == connection,
            activity_link.c.activity_id.in_(part))).scalars()}
    return deals


@dataclass(frozen=True)
class StoredActivity:
    """The activities already in the ledger, by what they name (one read, for linking the
    deals that start being tracked: `link_new`)."""

    by_deal: Mapping[str, frozenset[str]]
    by_account: Mapping[str, frozenset[str]]
    by_contact: Mapping[str, frozenset[str]]

    def of(self, deal: Deal) -> set[str]:
        found = set(self.by_deal.get(deal.id, ()))
        if deal.account_id:
            found |= self.by_account.get(deal.account_id, frozenset())
        for contact in deal.contacts:
            found |= self.by_contact.get(contact.id, frozenset())
        return found


def stored_activity(conn: Connection, connection: str) -> StoredActivity:
    """Every activity of the connection by deal, account and contact (one scan)."""
    by_deal: dict[str, set[str]] = {}
    by_account: dict[str, set[str]] = {}
    by_contact: dict[str, set[str]] = {}
    for row in conn.execute(select(activity.c.id, activity.c.deal_id, activity.c.account_id,
                                   activity.c.contact_ids)
                            .where(activity.c.connection == connection)):
        item = str(row.id)
        if row.deal_id:
            by_deal.setdefault(str(row.deal_id), set()).add(item)
        if row.account_id:
            by_account.setdefault(str(row.account_id), set()).add(item)
        for contact in row.contact_ids or ():
            by_contact.setdefault(str(contact), set()).add(item)

    def frozen(found: dict[str, set[str]]) -> dict[str, frozenset[str]]:
        return {k: frozenset(v) for k, v in found.items()}

    return StoredActivity(frozen(by_deal), frozen(by_account), frozen(by_contact))


def link_new(conn: Connection, connection: str, links: Mapping[str, Iterable[str]]) -> int:
    """Link deals that start being tracked to activities read before (on the deal, its
    account or one of its contacts, read while no tracked deal was theirs): deal id ->
    activity ids. Returns the links added."""
    rows = [{"connection": connection, "deal_id": deal_id, "activity_id": item}
            for deal_id, items in sorted(links.items()) for item in sorted(set(items))]
    for batch in chunks(rows):
        conn.execute(_insert(conn, activity_link).on_conflict_do_nothing(), list(batch))
    return len(rows)


def set_contacts(conn: Connection, connection: str, deal_id: str,
                 contacts: Iterable[Contact]) -> None:
    """A tracked deal's stakeholder contacts, as last read (replaces the previous ones)."""
    conn.execute(delete(deal_contact).where(deal_contact.c.connection == connection,
                                            deal_contact.c.deal_id == deal_id))
    rows = [{"connection": connection, "contact_id": c, "deal_id": deal_id}
            for c in sorted({c.id for c in contacts})]
    if rows:
        conn.execute(_insert(conn, deal_contact).on_conflict_do_nothing(), rows)


def deal_activity(conn: Connection, connection: str, deal_ids: Sequence[str]
                  ) -> dict[str, DealActivity]:
    """The planner's activity input for each deal (every id asked for is a key): its linked
    activities, its skip decisions and its written tasks' due dates."""
    found: dict[str, list[Activity]] = {}
    skipped: dict[str, dict[str, ActivityRef]] = {}
    written: dict[str, dict[str, date]] = {}
    for part in chunks(list(deal_ids)):
        for row in conn.execute(select(activity_link.c.deal_id, activity).join(
                activity, and_(activity.c.connection == activity_link.c.connection,
                               activity.c.id == activity_link.c.activity_id)).where(
                activity_link.c.connection == connection, activity_link.c.deal_id.in_(part))):
            r = row._mapping
            found.setdefault(str(r["deal_id"]), []).append(Activity(
                id=str(r["id"]), kind=ActivityKind(r["kind"]), at=r["at"],
                deal_id=r[activity.c.deal_id], account_id=r["account_id"],
                contact_ids=tuple(r["contact_ids"] or ()), owner_id=r["owner_id"],
                task_key=r["task_key"], completed=bool(r["completed"]),
                completed_at=r["completed_at"], deleted=bool(r["deleted"]),
                modified_at=r["modified_at"]))
        for row in conn.execute(select(skip_decision).where(
                skip_decision.c.connection == connection, skip_decision.c.deal_id.in_(part))):
            skipped.setdefault(str(row.deal_id), {})[str(row.key)] = ActivityRef(
                ActivityKind(row.activity_kind), str(row.activity_id), row.activity_at)
        for key, deal_id, due in conn.execute(select(
                task.c.key, task.c.deal_id, task.c.due_date).where(
                task.c.connection == connection, task.c.deal_id.in_(part),
                task.c.status.in_(WRITTEN_STATUSES))):
            written.setdefault(str(deal_id), {})[str(key)] = due
    return {d: DealActivity(tuple(found.get(d, ())), skipped=skipped.get(d, {}),
                            written=written.get(d, {})) for d in deal_ids}


def record_skips(conn: Connection, connection: str, deal_id: str,
                 skips: Sequence[Skipped], now: datetime) -> list[Skipped]:
    """Keep the skip_if decisions of a plan (once: a decision stays) and mark their tasks
    skipped if they were planned; returns the decisions that are new."""
    decided = [s for s in skips if s.activity is not None and s.key is not None]
    if not decided:
        return []
    keys = [str(s.key) for s in decided]
    known = {str(k) for k in conn.execute(select(skip_decision.c.key).where(
        skip_decision.c.key.in_(keys))).scalars()}
    new = [s for s in decided if s.key not in known]
    rows = [{"key": s.key, "connection": connection, "deal_id": deal_id, "step": s.step,
             "occurrence": s.occurrence, "contact_id": s.contact_id, "due_date": s.due_date,
             "activity_kind": str(s.activity.kind), "activity_id": s.activity.id,
             "activity_at": s.activity.at, "decided_at": now}
            for s in new if s.activity is not None]
    if rows:
        conn.execute(_insert(conn, skip_decision).on_conflict_do_nothing(
            index_elements=["key"]), rows)
    conn.execute(update(task).where(task.c.connection == connection, task.c.key.in_(keys),
                                    task.c.status.in_(OPEN_STATUSES))
                 .values(status=TaskStatus.SKIPPED, cancel_reason=CancelReason.ACTIVITY,
                         updated_at=now))
    return new


def mark_replan(conn: Connection, connection: str, deal_ids: Iterable[str], at: datetime
                ) -> None:
    """Re-plan these tracked deals at `at` or earlier (their activity changed)."""
    for part in chunks(sorted(set(deal_ids))):
        conn.execute(update(enrollment).where(
            enrollment.c.connection == connection, enrollment.c.deal_id.in_(part),
            enrollment.c.status == EnrollmentStatus.ACTIVE,
            or_(enrollment.c.replan_at.is_(None), enrollment.c.replan_at > at))
            .values(replan_at=at))


def due_for_replan(conn: Connection, connection: str, now: datetime, limit: int
                   ) -> list[Enrollment]:
    """Active enrollments whose re-plan moment has come (index ix_enrollment_replan)."""
    return [Enrollment.of(r) for r in conn.execute(select(enrollment).where(
        enrollment.c.connection == connection, enrollment.c.replan_at <= now,
        enrollment.c.status == EnrollmentStatus.ACTIVE)
        .order_by(enrollment.c.replan_at, enrollment.c.id).limit(limit))]


def activity_counts(conn: Connection, connection: str) -> dict[str, int]:
    """For `status`: tasks skipped by activity, steps waiting, activities kept."""
    skipped = conn.execute(select(func.count()).select_from(skip_decision).where(
        skip_decision.c.connection == connection)).scalar_one()
    waiting = conn.execute(select(func.coalesce(func.sum(enrollment.c.waiting), 0)).where(
        enrollment.c.connection == connection,
        enrollment.c.status == EnrollmentStatus.ACTIVE)).scalar_one()
    kept = conn.execute(select(func.count()).select_from(activity).where(
        activity.c.connection == connection)).scalar_one()
    return {"skipped_by_activity": int(skipped), "waiting": int(waiting),
            "activities": int(kept)}
