"""The `plan --deals` input: JSON lines in the CRM-neutral `Deal` shape, with errors by line."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import ValidationError

from connectors.models import Deal
from worker.cadence.calendar import zone

MAX_ERRORS = 50


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


def read_deals(path: Path) -> list[Deal]:
    """The deals of a JSON-lines file; InputErrors lists every bad line at once."""
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
            try:
                deal = Deal.model_validate(data)
            except ValidationError as exc:
                for err in exc.errors():
                    message = err["msg"].removeprefix("Value error, ")
                    if err["type"] == "extra_forbidden":
                        message = "unknown field (see the Deal shape in docs/configuration.md)"
                    problems.append(f"{shown}:{number}: {_field(tuple(err['loc']))}: {message}")
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
