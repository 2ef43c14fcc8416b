"""Deterministic task keys: the same inputs give the same key in any process, zone or day."""

from __future__ import annotations

from hashlib import blake2b

_SEP = "\x1f"


def task_key(connection: str, deal_id: str, cadence: str, step: str, occurrence: int,
             contact_id: str | None) -> str:
    """32 hex characters (128 bits) naming one planned task forever.

    The rule version is deliberately not part of the key: a step whose timing is edited keeps
    its keys, so an edit moves unwritten tasks instead of writing a second copy.
    """
    text = _SEP.join((connection, deal_id, cadence, step, str(occurrence), contact_id or ""))
    return blake2b(text.encode(), digest_size=16).hexdigest()
