"""The `plan --deals` input: JSON lines in the CRM-neutral `Deal` shape, with errors by line."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from connectors.models import Deal
from worker.cadence.calendar import zone
from worker.settings.durations import Duration

MAX_ERRORS = 50
DATE_FIELDS = ("closed_at", "contract_end")
# `today`, `today-7d`, `today+2y`, optionally followed by a time: `today-7dT16:20:00Z`.
RELATIVE = re.compile(r"^today(?:(?P<sign>[+-])(?P<span>(?:\d+(?:mo|y|w|d))+))?(?P<time>T.+)?$")


class InputErrors(Exception):
    """Problems in an input file, one line each: `file:line: field: what is wrong`."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("\n".join(lines))


def _field(loc: tuple[object, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(line)"


def resolve_relative(data: dict[str, Any], today: date) -> None:
    """Turn `closed_at` / `contract_end` written relative to today (`today-7d`,
    `today+2y`, `today-3dT16:20:00Z`) into ISO dates, so a sample stays fresh."""
    for name in DATE_FIELDS:
        value = data.get(name)
        found = RELATIVE.match(value) if isinstance(value, str) else None
        if found is None:
            continue
        day = today
        if found["span"]:
            span = Duration.parse(found["span"])
            day = span.add_to(today) if found["sign"] == "+" else span.subtract_from(today)
        data[name] = day.isoformat() + (found["time"] or "")


def read_deals(path: Path, today: date | None = None) -> list[Deal]:
    """The deals of a JSON-lines file; InputErrors lists every bad line at once. Dates written
    relative to today (see resolve_relative) count from `today` (default: today in UTC)."""
    today = today or datetime.now(UTC).date()
    shown = str(path)
    problems: list[str] = []
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputErrors([f"{shown}: cannot read the deals file: {exc.strerror}"]) from None
    deals: list[Deal] = []
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.lstrip().startswith("//"):
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{shown}:{number}: not valid JSON ({exc.msg} at column "
                                f"{exc.colno})")
                continue
            if not isinstance(data, dict):
                problems.append(f"{shown}:{number}: expected a JSON object (one deal per line)")
                continue
            resolve_relative(data, today)
            try:
                deal = Deal.model_validate(data)
            except ValidationError as exc:
                dated: set[str] = set()
                for err in exc.errors():
                    message = err["msg"].removeprefix("Value error, ")
                    where = _field(tuple(err["loc"]))
                    if err["type"] == "extra_forbidden":
                        message = "unknown field (see the Deal shape in docs/configuration.md)"
                    elif err["loc"] and err["loc"][0] in DATE_FIELDS:
                        where = str(err["loc"][0])
                        if where in dated:
                            continue
                        dated.add(where)
                        message = (f"{data.get(where)!r} is not a date: write YYYY-MM-DD, a "
                                   "date-time with a zone (2027-11-08T05:30:00Z), or a day "
                                   "relative to today (today, today-7d, today+1y)")
                    problems.append(f"{shown}:{number}: {where}: {message}")
                continue
            timezone = deal.owner.timezone if deal.owner else None
            if timezone:
                try:
                    zone(timezone)
                except (KeyError, ValueError, OSError):
                    problems.append(f"{shown}:{number}: owner.timezone: unknown time zone "
                                    f"{timezone!r} (expected an IANA name such as Europe/London)")
                    continue
            deals.append(deal)
            if len(problems) >= MAX_ERRORS:
                break
    if problems:
        raise InputErrors(problems[:MAX_ERRORS])
    return deals
