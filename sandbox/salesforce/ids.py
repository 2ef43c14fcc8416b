"""Salesforce record ids and the wire formats of dates and datetimes.

An id is a 3-character key prefix (`006` Opportunity, `00T` Task, ...), 12 characters that
are unique within the org, and a 3-character checksum that makes the 18-character form
case-insensitive: each checksum character encodes which of 5 characters are upper case.
"""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, date, datetime

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_CHARS = frozenset(_BASE62)
POD = "Wb0"  # stands in for the instance and reserved characters of real ids


_UPPER_BITS = str.maketrans({ch: ("1" if "A" <= ch <= "Z" else "0") for ch in _BASE62})


def checksum(id15: str) -> str:
    bits = id15.translate(_UPPER_BITS)
    return "".join(_CHECKSUM[int(bits[i:i + 5][::-1], 2)] for i in (0, 5, 10))


def looks_like_id(value: str) -> bool:
    return len(value) in (15, 18) and all(ch in _ID_CHARS for ch in value)


def normalize_id(value: str) -> str | None:
    """The 18-character form of a 15- or 18-character id, or None when `value` is no id."""
    if not looks_like_id(value):
        return None
    if len(value) == 18:  # the suffix says which characters are upper case
        chars = list(value[:15])
        for chunk, code in enumerate(value[15:].upper()):
            bits = _CHECKSUM.find(code)
            if bits < 0:
                return None
            for i in range(5):
                ch = chars[chunk * 5 + i]
                chars[chunk * 5 + i] = ch.upper() if bits >> i & 1 else ch.lower()
        value = "".join(chars)
    return value + checksum(value)


def _base62(number: int, width: int) -> str:
    chars = []
    while number:
        number, rest = divmod(number, 62)
        chars.append(_BASE62[rest])
    return "".join(reversed(chars)).rjust(width, "0")


class IdFactory:
    """Sequential ids per key prefix: they sort in creation order, like real ones mostly do."""

    def __init__(self) -> None:
        self._counters: dict[str, itertools.count[int]] = {}
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        with self._lock:
            counter = self._counters.setdefault(prefix, itertools.count(1))
            number = next(counter)
        id15 = prefix + POD + _base62(number, 9)
        return id15 + checksum(id15)


def format_datetime(moment: datetime) -> str:
    """`2024-06-01T08:15:02.000+0000`, the form REST responses use (always UTC)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def format_date(day: date) -> str:
    return day.isoformat()


def parse_datetime(text: str) -> datetime | None:
    """Datetimes as clients send them: `...Z`, `...+00:00`, `...+0000`, with or without
    fractions; without a zone Salesforce takes UTC."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    elif len(value) > 5 and value[-5] in "+-" and value[-4:].isdigit() and "T" in value:
        value = value[:-2] + ":" + value[-2:]
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if "T" not in value and " " not in value:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_date(text: str) -> date | None:
    if len(text) != 10:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
