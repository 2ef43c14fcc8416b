"""Property values: HubSpot keeps every value as a string (or null). Writes are checked and
normalised here (datetimes to ISO 8601 with milliseconds and Z, dates to YYYY-MM-DD)."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sandbox.hubspot.errors import PropertyProblems, problem
from sandbox.hubspot.schema import STAGES, PropDef

_MS = re.compile(r"-?\d{1,15}")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
EPOCH_DT = datetime(1970, 1, 1, tzinfo=UTC)
MAX_STRING = 65536


def iso_ms(moment: datetime) -> str:
    """`2024-05-02T09:00:00.118Z`."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"  # drop "+00:00"


def epoch_ms(moment: datetime) -> int:
    return (moment - EPOCH_DT) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH_DT + timedelta(milliseconds=ms)


def parse_iso(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_time(text: str) -> datetime | None:
    """Epoch milliseconds or ISO 8601 (a date alone means midnight UTC)."""
    text = text.strip()
    if _MS.fullmatch(text):
        try:
            return from_ms(int(text))
        except OverflowError:
            return None
    return parse_iso(text)


def time_ms(text: str | None) -> float | None:
    """A stored datetime/date value as epoch ms (for comparisons)."""
    if not text:
        return None
    moment = parse_time(text)
    return float(epoch_ms(moment)) if moment else None


def as_text(value: Any) -> str | None:
    """JSON value -> HubSpot's string form (numbers and booleans are accepted on input)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


OwnerCheck = Callable[[int], bool]  # True if an owner with this id exists (active or archived)


def normalize(prop: PropDef, value: Any, owner_exists: OwnerCheck) -> str | None:
    """The stored form of `value`; raises ValueError(code, message) when it is not valid."""
    text = as_text(value)
    if text is None:
        return None
    if text == "" and prop.type != "string":
        return None
    name = prop.name
    if prop.referenced == "OWNER":
        if not text.isdigit() or not owner_exists(int(text)):
            raise ValueError("INVALID_OWNER_ID", f"{text} is not a valid owner id")
        return text
    if name == "hs_task_reminders":
        parts = text.split(";")
        if not all(_MS.fullmatch(p.strip()) for p in parts):
            raise ValueError("INVALID_LONG",
                             f"{text} is not a valid reminder: use epoch milliseconds")
        return ";".join(p.strip() for p in parts)
    if prop.type == "string":
        if len(text) > MAX_STRING:
            raise ValueError("INVALID_STRING", f"{name} is longer than {MAX_STRING} characters")
        return text
    if prop.type == "number":
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ValueError("INVALID_FLOAT", f"{text} is not a valid number") from None
        return text.strip()
    if prop.type == "bool":
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise ValueError("INVALID_BOOLEAN", f"{text} is not a valid boolean")
        return lowered
    if prop.type == "enumeration":
        allowed = {v for v, _ in prop.options}
        parts = text.split(";") if prop.field_type == "checkbox" else [text]
        for part in parts:
            if part not in allowed:
                shown = ", ".join(v for v, _ in prop.options)
                raise ValueError("INVALID_OPTION",
                                 f"{part} was not one of the allowed options: [{shown}]")
        return text
    if prop.type == "datetime":
        moment = parse_time(text)
        if moment is None:
            raise ValueError("INVALID_DATE", f"{text} is not a valid datetime "
                             "(use epoch milliseconds or ISO 8601)")
        return iso_ms(moment)
    if prop.type == "date":
        return _normalize_date(text)
    return text


def _normalize_date(text: str) -> str:
    text = text.strip()
    if _DAY.fullmatch(text):
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
    elif _MS.fullmatch(text):
        moment = from_ms(int(text))
        if moment.time() != datetime.min.time():
            raise ValueError("INVALID_DATE",
                             f"{text} is at {moment.hour}:{moment.minute}:{moment.second}."
                             f"{moment.microsecond // 1000} UTC, not midnight!")
        return moment.date().isoformat()
    raise ValueError("INVALID_DATE", f"{text} is not a valid date (use epoch milliseconds at "
                     "midnight UTC)")


def validate(
    props_def: Mapping[str, PropDef],
    raw: Any,
    owner_exists: OwnerCheck,
    *,
    admin: bool = False,
) -> dict[str, str | None]:
    """Check and normalise a `properties` object; raise PropertyProblems naming every bad one."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PropertyProblems([problem("properties", "INVALID_INPUT",
                                        "properties must be an object")])
    out: dict[str, str | None] = {}
    problems: list[dict[str, Any]] = []
    for name, value in raw.items():
        prop = props_def.get(name)
        if prop is None:
            problems.append(problem(name, "PROPERTY_DOESNT_EXIST",
                                    f'Property "{name}" does not exist'))
            continue
        if prop.read_only and not admin:
            problems.append(problem(name, "READ_ONLY_VALUE",
                                    f"{name} is a read only property; its value cannot be set."))
            continue
        if isinstance(value, dict | list):
            problems.append(problem(name, "INVALID_INPUT", f"{name} must be a string"))
            continue
        try:
            out[name] = normalize(prop, value, owner_exists)
        except ValueError as exc:
            code, message = exc.args if len(exc.args) == 2 else ("INVALID_INPUT", str(exc))
            problems.append(problem(name, code, message))
    if problems:
        raise PropertyProblems(problems)
    return out


def check_stage(current: Mapping[str, str | None], changes: Mapping[str, str | None]) -> None:
    """A deal's stage has to belong to its pipeline."""
    if "dealstage" not in changes and "pipeline" not in changes:
        return
    stage = changes.get("dealstage", current.get("dealstage"))
    pipeline = changes.get("pipeline", current.get("pipeline"))
    found = STAGES.get(stage or "")
    if pipeline is None:  # a new deal without a pipeline goes where its stage lives
        return
    if stage and found and found[0].id != pipeline:
        raise PropertyProblems([problem(
            "dealstage", "INVALID_OPTION",
            f"{stage} is not a valid deal stage for pipeline {pipeline}")])
