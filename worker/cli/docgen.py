"""The key reference in docs/configuration.md, generated from the same models as `winback
schema`: `python -m worker.cli.docgen` rewrites the part between the markers, and a test fails
when the committed file is out of date."""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from connectors.settings import FieldMap, HubSpotAuth, SalesforceAuth
from worker.settings.connections import HubSpotConnection, OwnerOverride, SalesforceConnection
from worker.settings.durations import Duration
from worker.settings.experiments import Experiment, StepOverride, Variant
from worker.settings.models import (
    Cadence,
    CalendarSettings,
    Config,
    Defaults,
    Matcher,
    ServiceSettings,
    Step,
    StopPolicy,
)

START = "<!-- generated:start (python -m worker.cli.docgen) -->"
END = "<!-- generated:end -->"
SECTIONS: list[tuple[str, type[BaseModel]]] = [
    ("top level", Config), ("defaults", Defaults), ("defaults.calendar", CalendarSettings),
    ("connections[] (kind: salesforce)", SalesforceConnection),
    ("connections[].auth (salesforce)", SalesforceAuth),
    ("connections[] (kind: hubspot)", HubSpotConnection),
    ("connections[].auth (hubspot)", HubSpotAuth), ("connections[].fields", FieldMap),
    ("connections[].owners.<owner id>", OwnerOverride), ("cadences[]", Cadence),
    ("cadences[].when.<field>", Matcher), ("cadences[].steps[]", Step),
    ("cadences[].experiment", Experiment), ("cadences[].experiment.variants.<arm>", Variant),
    ("cadences[].experiment.variants.<arm>.steps.<step id>", StepOverride),
    ("stop", StopPolicy),
    ("service", ServiceSettings),
]


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is typing.Annotated:
        base = args[0]
        if base is Duration:
            return "duration"
        if base is float and any("interval" in str(a).lower() or "_parse_interval" in str(a)
                                 for a in args[1:]):
            return "interval"
        return _type_name(base)
    if origin in (Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        optional = " or null" if type(None) in args else ""
        return " or ".join(dict.fromkeys(names)) + optional
    if origin is Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (list, tuple):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map of {_type_name(args[1])}"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "mapping"
        return {"str": "text", "int": "integer", "float": "number", "bool": "true/false",
                "time": "HH:MM", "date": "YYYY-MM-DD"}.get(annotation.__name__,
                                                          annotation.__name__)
    return str(annotation)


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "**required**"
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "see below"
        return f"`{value!r}`" if value else "empty"
    value = info.default
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "`[" + ", ".join(str(v) for v in value) + "]`" if value else "empty"
    return f"`{value}`"


def reference() -> str:
    lines = []
    for title, model in SECTIONS:
        lines += [f"### `{title}`", "", (model.__doc__ or "").strip().splitlines()[0], "",
                  "| key | type | default | what it does |", "|---|---|---|---|"]
        for name, info in model.model_fields.items():
            key = info.alias or name
            text = (info.description or "").replace("|", "\\|")
            kind = _type_name(info.annotation)
            if any("_parse_interval" in repr(m) for m in info.metadata):
                kind = "interval"
            lines.append(f"| `{key}` | {kind} | {_default(info)} | {text} |")
        lines.append("")
    return "\n".join(lines)


def render(document: str) -> str:
    if START not in document or END not in document:
        raise ValueError("docs/configuration.md lacks the generated-section markers")
    head, rest = document.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n\n{reference()}\n{END}{tail}"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else \
        Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    path.write_text(render(path.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"updated {path}")


if __name__ == "__main__":
    main()
