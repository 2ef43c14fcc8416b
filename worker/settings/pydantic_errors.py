"""Turn pydantic's validation errors into `file:line:col: where: what (expected)` lines.

pydantic reports a `loc` (a path through the data) and a type; this module finds the YAML
position of that path, names unknown keys with a suggestion, and never echoes an input value
(it could be a secret).
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from worker.settings.models import Config

if TYPE_CHECKING:
    from worker.settings.errors import ConfigError
    from worker.settings.loader import Path_, Source

_UNION_TAGS = ("salesforce", "hubspot")


def describe(error: ErrorDetails, data: Any, source: Source) -> ConfigError:
    loc = tuple(error["loc"])
    path = data_path(loc, data)
    kind = error["type"]
    message = error["msg"]
    if kind == "extra_forbidden":
        key = str(path[-1])
        allowed = allowed_keys(loc[:-1])
        hint = ""
        if allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f" (did you mean {close[0]!r}?" if close else " ("
            hint += f"{' ' if close else ''}expected one of: {', '.join(allowed)})"
        return source.error(path, f"unknown key {key!r}{hint}", key=True)
    if kind == "missing":
        return source.error(path[:-1], f"missing required key {path[-1]!r}", key=True)
    if kind == "union_tag_invalid":
        return source.error((*path, "kind"), "unknown kind (expected salesforce or hubspot)")
    if kind == "union_tag_not_found":
        return source.error(path, "missing required key 'kind' (salesforce or hubspot)")
    if kind.startswith("value_error"):
        message = message.removeprefix("Value error, ")
    elif kind in ("literal_error", "enum"):
        message = _not_one_of(error, path)
    elif kind == "string_pattern_mismatch":
        pattern = (error.get("ctx") or {}).get("pattern", "")
        message = f"not a valid value here (expected text matching {pattern})"
    else:
        message = message.replace("Input should be", "expected")
    return source.error(path, message)


def _not_one_of(error: ErrorDetails, path: Path_) -> str:
    """`'fax' is not one of 'email', 'call', 'todo'`; the value is named unless it sits under
    a connection's `auth` (it could be a secret) or is not a plain scalar."""
    expected = str((error.get("ctx") or {}).get("expected", "")).replace(" or ", ", ")
    value = error.get("input")
    shown = isinstance(value, str | int | float | bool) and "auth" not in path \
        and len(repr(value)) <= 60
    if "," not in expected:
        return f"{value!r} is not allowed here (expected {expected})" if shown \
            else f"expected {expected}"
    return (f"{value!r} is not one of {expected}" if shown
            else f"not one of {expected}")


def data_path(loc: tuple[Any, ...], data: Any) -> Path_:
    """The part of pydantic's `loc` that exists in the data, plus a final missing key.

    pydantic inserts union tags (`salesforce`, `str`, `function-after[...]`) into `loc`;
    walking the data alongside drops them.
    """
    out: list[str | int] = []
    current = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        in_dict = isinstance(current, dict) and isinstance(part, str) and part in current
        in_list = isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current)
        if in_dict or in_list:
            current = current[part]
            out.append(part)
        elif isinstance(current, dict) and last and isinstance(part, str):
            out.append(part)
    return tuple(out)


def allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model at `loc` accepts (aliases as written in YAML)."""
    current: Any = Config
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, str) and part in _UNION_TAGS:
            current = _pick_tag(current, part)
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = _field_by_alias(current, str(part))
            if field is None:
                return []
            current = field
            continue
        origin = get_origin(current)
        args = get_args(current)
        if origin in (list, tuple) and args:
            current = args[0]
        elif origin is dict and len(args) == 2:
            current = args[1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _field_by_alias(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is typing.Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) == 1:
                annotation = options[0]
                continue
        return annotation


def _pick_tag(annotation: Any, tag: str) -> Any:
    for member in get_args(annotation):
        option = _unwrap(member)
        if isinstance(option, type) and issubclass(option, BaseModel):
            kind = option.model_fields.get("kind")
            if kind is not None and tag in get_args(kind.annotation):
                return option
    return annotation
