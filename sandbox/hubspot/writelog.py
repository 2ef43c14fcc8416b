"""The HubSpot emulator's entries in the write log: every create, upsert and update request
for a task, per input, under its task key (the value of the `task_key_property` option,
`winback_key` by default). A test's record of what reached the portal, not a HubSpot feature;
admin writes are not logged."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.hubspot.emulator import HubSpotEmulator


def task_key(emu: HubSpotEmulator, type_: str, props: Any) -> str | None:
    if type_ != "tasks" or not isinstance(props, Mapping):
        return None
    value = props.get(emu.options.task_key_property)
    return str(value) if value else None


def logged(emu: HubSpotEmulator, type_: str, props: Any, outcome: str) -> None:
    emu.writes.record(task_key(emu, type_, props), outcome)


def refused(emu: HubSpotEmulator, type_: str, props: Any) -> None:
    """A create or upsert HubSpot refused: a re-send when the key already had a task."""
    key = task_key(emu, type_, props)
    if key:
        emu.writes.record(key, "resent" if emu.writes.count(key, "created") else "refused")


def all_refused(emu: HubSpotEmulator, type_: str, inputs: Iterable[Any]) -> None:
    """A whole batch refused before anything was written."""
    for item in inputs:
        if isinstance(item, Mapping):
            props = dict(item.get("properties") or {})
            if item.get("idProperty") == emu.options.task_key_property and item.get("id"):
                props[emu.options.task_key_property] = item["id"]
            refused(emu, type_, props)
