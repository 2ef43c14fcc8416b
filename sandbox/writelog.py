"""The emulators' log of task writes per key (served at `GET /__sandbox/writes`)."""

from __future__ import annotations

import threading
from collections import Counter

WRITE_OUTCOMES = ("created", "resent", "updated", "refused")


class WriteLog:
    """Every write request a CRM emulator served for a task key, per record of a batch:
    `created` (a new task with the key: a second one is a duplicate), `resent` (a create or
    upsert for a key that already had a task: absorbed by a unique key, or refused as
    existing), `updated` (an update by id of a task carrying the key), `refused` (a create
    or upsert the CRM refused for another reason). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, Counter[str]] = {}

    def record(self, key: str | None, outcome: str) -> None:
        if outcome not in WRITE_OUTCOMES:
            raise ValueError(f"unknown write outcome {outcome!r}; one of {WRITE_OUTCOMES}")
        if not key:
            return
        with self._lock:
            self._keys.setdefault(key, Counter())[outcome] += 1

    def count(self, key: str, outcome: str) -> int:
        with self._lock:
            found = self._keys.get(key)
            return found[outcome] if found is not None else 0

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {k: {o: c[o] for o in WRITE_OUTCOMES} for k, c in self._keys.items()}

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
