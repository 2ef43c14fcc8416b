"""The portal's data: CRM objects, owners, associations, the unique-value index and the search
index (which may lag writes). Callers hold the emulator's lock; nothing here does I/O.

Records are replaced on every write (copy-on-write), so the search index can keep serving
the previous version of an object while a write is "not yet indexed".
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.hubspot.schema import (
    GROUPS,
    LINK_KINDS,
    OBJECT_TYPES,
    PAIR_TYPES,
    PIPELINES,
    STAGES,
    PropDef,
    default_properties,
    stage_flags,
)
from sandbox.hubspot.values import iso_ms

Props = dict[str, str | None]


@dataclass(slots=True, eq=False)
class Record:
    type: str
    id: int
    props: dict[str, str]  # only non-null values; never mutated once stored
    created: str
    updated: str
    archived: bool = False
    archived_at: str | None = None
    typed: dict[str, Any] = field(default_factory=dict)  # search's parsed values, per version


@dataclass(slots=True)
class Owner:
    id: int
    email: str
    first_name: str
    last_name: str
    user_id: int
    created: str
    updated: str
    archived: bool = False
    teams: list[dict[str, Any]] = field(default_factory=list)
    type: str = "PERSON"

    def to_json(self) -> dict[str, Any]:
        return {"id": str(self.id), "email": self.email, "type": self.type,
                "firstName": self.first_name, "lastName": self.last_name,
                "userId": None if self.archived else self.user_id,
                "userIdIncludingInactive": self.user_id,
                "createdAt": self.created, "updatedAt": self.updated,
                "archived": self.archived, "teams": list(self.teams)}


class Conflict(Exception):
    def __init__(self, prop: str, value: str, existing: int) -> None:
        super().__init__(f"{prop}={value} already used by {existing}")
        self.prop, self.value, self.existing = prop, value, existing


class Store:
    def __init__(self, *, lag_seconds: float = 0.0) -> None:
        self.props: dict[str, dict[str, PropDef]] = default_properties()
        self.groups: dict[str, list[tuple[str, str]]] = {k: list(v) for k, v in GROUPS.items()}
        self.objects: dict[str, dict[int, Record]] = {t: {} for t in OBJECT_TYPES}
        self.owners: dict[int, Owner] = {}
        self.links: dict[tuple[str, str], dict[int, dict[int, list[int]]]] = {
            pair: {} for pair in PAIR_TYPES}
        self.unique: dict[tuple[str, str], dict[str, int]] = {}
        self.next_id = 1001
        self.next_owner = 41629779
        self.lag = lag_seconds
        self.indexed: dict[str, dict[int, Record]] = {t: {} for t in OBJECT_TYPES}
        self.generation: dict[str, int] = dict.fromkeys(OBJECT_TYPES, 0)
        self._pending: list[tuple[float, int, str, int, Record | None]] = []
        self._seq = 0

    # -- ids and owners -----------------------------------------------------------------
    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id - 1

    def add_owner(self, *, email: str, first_name: str, last_name: str, now: datetime,
                  archived: bool = False, owner_id: int | None = None,
                  teams: list[dict[str, Any]] | None = None) -> Owner:
        if owner_id is None:
            owner_id = self.next_owner
            self.next_owner += 1013
        user_id = 9586504 + len(self.owners) * 7
        stamp = iso_ms(now)
        owner = Owner(owner_id, email, first_name, last_name, user_id, stamp, stamp, archived,
                      teams or [])
        self.owners[owner_id] = owner
        return owner

    def owner_exists(self, owner_id: int) -> bool:
        return owner_id in self.owners

    # -- reads --------------------------------------------------------------------------
    def get(self, type_: str, obj_id: int | str, *, archived: bool = False) -> Record | None:
        try:
            rec = self.objects[type_].get(int(obj_id))
        except ValueError:
            return None
        if rec is None or rec.archived != archived:
            return None
        return rec

    def find(self, type_: str, prop: str, value: str, *, archived: bool = False) -> Record | None:
        """An object by a unique property's value (or by id for `hs_object_id`)."""
        if prop == "hs_object_id":
            return self.get(type_, value, archived=archived)
        index = self.unique.get((type_, prop))
        if index is not None and not archived:
            found = index.get(value)
            return self.objects[type_].get(found) if found is not None else None
        for rec in self.objects[type_].values():
            if rec.archived == archived and rec.props.get(prop) == value:
                return rec
        return None

    def is_unique(self, type_: str, prop: str) -> bool:
        return prop == "hs_object_id" or (type_, prop) in self.unique

    # -- writes -------------------------------------------------------------------------
    def check_unique(self, type_: str, changes: Props, own_id: int | None) -> None:
        for (t, prop), index in self.unique.items():
            value = changes.get(prop) if t == type_ else None
            if value is None:
                continue
            existing = index.get(value)
            if existing is not None and existing != own_id:
                raise Conflict(prop, value, existing)

    def create(self, type_: str, changes: Props, now: datetime, *, obj_id: int | None = None,
               links: list[tuple[str, int, int]] | None = None) -> Record:
        """Store a new object; `changes` are already validated. Raises Conflict."""
        self.check_unique(type_, changes, None)
        if obj_id is None:
            obj_id = self.new_id()
        elif obj_id in self.objects[type_]:
            raise Conflict("hs_object_id", str(obj_id), obj_id)
        else:
            self.next_id = max(self.next_id, obj_id + 1)
        props: dict[str, str] = {}
        self._apply(type_, props, changes, now, creating=True)
        props["hs_object_id"] = str(obj_id)
        meta = OBJECT_TYPES[type_]
        rec = Record(type_, obj_id, props, props[meta.created_prop],
                     props[meta.modified_props[0]])
        self.objects[type_][obj_id] = rec
        self._index_unique(rec, None)
        for to_type, to_id, type_id in links or ():
            self.link(type_, obj_id, to_type, to_id, type_id)
        self._publish(rec, now)
        return rec

    def update(self, rec: Record, changes: Props, now: datetime) -> Record:
        self.check_unique(rec.type, changes, rec.id)
        props = dict(rec.props)
        self._apply(rec.type, props, changes, now, creating=False)
        meta = OBJECT_TYPES[rec.type]
        new = Record(rec.type, rec.id, props, rec.created, props[meta.modified_props[0]],
                     rec.archived, rec.archived_at)
        self.objects[rec.type][rec.id] = new
        self._index_unique(new, rec)
        self._publish(new, now)
        return new

    def archive(self, rec: Record, now: datetime) -> Record:
        new = Record(rec.type, rec.id, rec.props, rec.created, rec.updated, True, iso_ms(now))
        self.objects[rec.type][rec.id] = new
        self._index_unique(None, rec)
        self._publish(new, now)
        return new

    def restore(self, rec: Record, now: datetime) -> Record:
        current: Props = dict(rec.props)
        self.check_unique(rec.type, current, rec.id)
        new = Record(rec.type, rec.id, rec.props, rec.created, rec.updated)
        self.objects[rec.type][rec.id] = new
        self._index_unique(new, None)
        return self.update(new, {}, now)

    def _apply(self, type_: str, props: dict[str, str], changes: Props, now: datetime, *,
               creating: bool) -> None:
        stamp = iso_ms(now)
        meta = OBJECT_TYPES[type_]
        old_stage = props.get("dealstage")
        old_status = props.get("hs_task_status")
        for name, value in changes.items():
            if value is None:
                props.pop(name, None)
            else:
                props[name] = value
        if creating and meta.created_prop not in changes:
            props[meta.created_prop] = stamp
        for name in meta.modified_props:
            if name not in changes:
                props[name] = stamp
        if type_ == "deals":
            known = STAGES.get(props.get("dealstage", ""))
            pipeline = props.setdefault("pipeline", known[0].id if known else "default")
            if "dealstage" not in props:
                first = next((p for p in PIPELINES if p.id == pipeline), PIPELINES[0])
                props["dealstage"] = first.stages[0].id
            stage = props["dealstage"]
            closed, won = stage_flags(stage)
            props["hs_is_closed"] = _flag(closed)
            props["hs_is_closed_won"] = _flag(won)
            props["hs_is_closed_lost"] = _flag(closed and not won)
            entered = f"hs_v2_date_entered_{stage}"
            if stage != old_stage and entered not in changes and stage in STAGES:
                props[entered] = stamp
        elif type_ == "tasks":
            status = props.setdefault("hs_task_status", "NOT_STARTED")
            if status == "COMPLETED" and old_status != "COMPLETED":
                props.setdefault("hs_task_completion_date", stamp)
            elif status != "COMPLETED" and "hs_task_completion_date" not in changes:
                props.pop("hs_task_completion_date", None)

    def _index_unique(self, new: Record | None, old: Record | None) -> None:
        rec = new or old
        if rec is None:
            return
        for (t, prop), index in self.unique.items():
            if t != rec.type:
                continue
            if old is not None and index.get(old.props.get(prop, "")) == old.id:
                del index[old.props[prop]]
            if new is not None and prop in new.props and not new.archived:
                index[new.props[prop]] = new.id

    def add_property(self, type_: str, prop: PropDef) -> None:
        self.props[type_][prop.name] = prop
        if prop.unique:
            index: dict[str, int] = {}
            for rec in self.objects[type_].values():
                value = rec.props.get(prop.name)
                if value is not None and not rec.archived:
                    index.setdefault(value, rec.id)
            self.unique[(type_, prop.name)] = index

    # -- associations -------------------------------------------------------------------
    def link(self, from_type: str, from_id: int, to_type: str, to_id: int, type_id: int) -> None:
        forward = self.links[(from_type, to_type)].setdefault(from_id, {}).setdefault(to_id, [])
        backward = self.links[(to_type, from_type)].setdefault(to_id, {}).setdefault(from_id, [])
        for kind, reverse in LINK_KINDS[type_id]:
            if kind not in forward:
                forward.append(kind)
            if reverse not in backward:
                backward.append(reverse)

    def linked(self, from_type: str, from_id: int, to_type: str) -> dict[int, list[int]]:
        """Live (not archived) targets of one object: {to_id: [type ids]}, ordered by id."""
        found = self.links.get((from_type, to_type), {}).get(from_id, {})
        live = self.objects[to_type]
        return {i: list(found[i]) for i in sorted(found)
                if i in live and not live[i].archived}

    # -- search index (with lag) --------------------------------------------------------
    def _publish(self, rec: Record, now: datetime) -> None:
        value = None if rec.archived else rec
        if self.lag <= 0:
            self._index(rec.type, rec.id, value)
            return
        self._seq += 1
        heapq.heappush(self._pending, (now.timestamp() + self.lag, self._seq, rec.type, rec.id,
                                       value))

    def _index(self, type_: str, obj_id: int, rec: Record | None) -> None:
        if rec is None:
            self.indexed[type_].pop(obj_id, None)
        else:
            self.indexed[type_][obj_id] = rec
        self.generation[type_] += 1

    def view(self, type_: str, now: datetime) -> tuple[dict[int, Record], int]:
        """What search sees now: applies index updates whose lag has passed."""
        moment = now.timestamp()
        while self._pending and self._pending[0][0] <= moment:
            _, _, t, obj_id, rec = heapq.heappop(self._pending)
            self._index(t, obj_id, rec)
        return self.indexed[type_], self.generation[type_]

    def set_lag(self, seconds: float) -> None:
        self.lag = seconds
        if seconds <= 0:
            while self._pending:
                _, _, t, obj_id, rec = heapq.heappop(self._pending)
                self._index(t, obj_id, rec)


def _flag(value: bool) -> str:
    return "true" if value else "false"


def record_json(rec: Record, names: list[str] | None, props_def: dict[str, PropDef], *,
                everything: bool = False) -> dict[str, Any]:
    """SimplePublicObject: `names` (known ones; null when unset) plus the type's always-sent
    properties; `everything` sends every stored property (create/update answers)."""
    meta = OBJECT_TYPES[rec.type]
    if everything:
        props: dict[str, str | None] = dict(rec.props)
    else:
        wanted = meta.defaults if names is None else names
        props = {n: rec.props.get(n) for n in wanted if n in props_def}
        for n in meta.always:
            props.setdefault(n, rec.props.get(n))
    out: dict[str, Any] = {"id": str(rec.id), "properties": props, "createdAt": rec.created,
                           "updatedAt": rec.updated, "archived": rec.archived}
    if rec.archived:
        out["archivedAt"] = rec.archived_at
    return out
