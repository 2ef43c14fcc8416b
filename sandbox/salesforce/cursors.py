"""Query cursors: the matching ids of a query, served page by page through `nextRecordsUrl`.

A user holds at most `max_per_user` open cursors; opening one more releases the oldest, whose
locator then answers 400 INVALID_QUERY_LOCATOR (reference "Key numbers"). A cursor closes when
its last page has been served and expires after `ttl_seconds` without use.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sandbox.salesforce.errors import SFError
from sandbox.salesforce.evaluator import CompiledQuery
from sandbox.salesforce.ids import checksum

DEFAULT_BATCH = 2000
MIN_BATCH, MAX_BATCH = 200, 2000


@dataclass
class Cursor:
    id: str
    owner: str
    compiled: CompiledQuery
    ids: list[str]
    batch: int
    last_used: datetime


def batch_size(header: str | None, default: int = DEFAULT_BATCH) -> int:
    """`Sforce-Query-Options: batchSize=N`: a hint, kept within 200..2000."""
    if not header:
        return default
    for part in header.split(","):
        name, _, value = part.partition("=")
        if name.strip().lower() == "batchsize":
            try:
                return max(MIN_BATCH, min(MAX_BATCH, int(value.strip())))
            except ValueError:
                return default
    return default


def invalid_locator() -> SFError:
    return SFError.one(400, "INVALID_QUERY_LOCATOR", "invalid query locator")


class Cursors:
    def __init__(self, max_per_user: int = 10, ttl_seconds: float = 900) -> None:
        self.max_per_user = max_per_user
        self.ttl = timedelta(seconds=ttl_seconds)
        self._open: OrderedDict[str, Cursor] = OrderedDict()
        self._numbers = itertools.count(1)

    def clear(self) -> None:
        self._open.clear()

    def open(self, owner: str, compiled: CompiledQuery, ids: list[str], batch: int,
             now: datetime) -> Cursor:
        id15 = f"01gWb{next(self._numbers):010d}"
        cursor = Cursor(id15 + checksum(id15), owner, compiled, ids, batch, now)
        self._open[cursor.id] = cursor
        mine = [c.id for c in self._open.values() if c.owner == owner]
        for stale in mine[:max(0, len(mine) - self.max_per_user)]:
            del self._open[stale]
        return cursor

    def get(self, locator: str, owner: str, now: datetime) -> tuple[Cursor, int]:
        cursor_id, _, offset_text = locator.rpartition("-")
        cursor = self._open.get(cursor_id)
        if cursor is None or cursor.owner != owner or not offset_text.isdigit():
            raise invalid_locator()
        if now - cursor.last_used > self.ttl:
            del self._open[cursor_id]
            raise invalid_locator()
        offset = int(offset_text)
        if offset >= len(cursor.ids):
            raise invalid_locator()
        cursor.last_used = now
        return cursor, offset

    def close(self, cursor_id: str) -> None:
        self._open.pop(cursor_id, None)

    def count(self, owner: str | None = None) -> int:
        return sum(1 for c in self._open.values() if owner is None or c.owner == owner)


def page(compiled: CompiledQuery, ids: list[str], start: int, batch: int,
         version: str) -> tuple[list[dict[str, Any]], int | None]:
    """One page from `start`; child rows count toward the batch size. Returns the records and
    the offset of the next page (None when done)."""
    if not compiled.children:
        end = min(start + batch, len(ids))
    else:
        end, used = start, 0
        while end < len(ids) and (used < batch or end == start):
            used += 1 + compiled.child_count(compiled.table.rows[ids[end]])
            end += 1
    records = compiled.render(ids[start:end], version)
    return records, (end if end < len(ids) else None)
