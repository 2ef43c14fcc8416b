"""Checks that look across values (duplicate ids) or into them (templates, rule fields).

They run on the plain data, before and independently of the model validation, so that one
run reports every problem in the file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from worker.settings.experiments import OVERRIDE_KINDS
from worker.settings.models import DEAL_FIELDS
from worker.settings.templates import TemplateProblem, check

if TYPE_CHECKING:
    from worker.settings.errors import ConfigError
    from worker.settings.loader import Path_, Source


def run(data: dict[str, Any], source: Source) -> list[ConfigError]:
    errors: list[ConfigError] = []
    connections = data.get("connections")
    if isinstance(connections, list):
        errors += _duplicates(connections, "name", ("connections",), source)
        for index, connection in enumerate(connections):
            if isinstance(connection, dict):
                errors += _fallback_team(connection, ("connections", index), source)
    cadences = data.get("cadences")
    if isinstance(cadences, list):
        errors += _duplicates(cadences, "id", ("cadences",), source)
        for index, cadence in enumerate(cadences):
            if isinstance(cadence, dict):
                errors += _cadence(cadence, ("cadences", index), source)
                errors += _after(cadences, index, source)
    stop = data.get("stop")
    if isinstance(stop, dict) and isinstance(stop.get("notify_subject"), str):
        errors += _template(stop["notify_subject"], ("stop", "notify_subject"), source,
                            with_contact=False)
    return errors


def _duplicates(items: list[Any], key: str, path: Path_, source: Source) -> list[ConfigError]:
    errors = []
    seen: dict[Any, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get(key), str):
            continue
        value = item[key]
        if value in seen:
            _, first_line, _ = source.where((*path, seen[value], key))
            errors.append(source.error(
                (*path, index, key),
                f"duplicate {key} {value!r} (already used on line {first_line}; {key}s must be "
                "unique)"))
        else:
            seen[value] = index
    return errors


def _fallback_team(connection: dict[str, Any], path: Path_, source: Source
                   ) -> list[ConfigError]:
    """A fallback team lists each owner once (a repeat would double that member's share)."""
    team = connection.get("fallback_owner")
    if not isinstance(team, list):
        return []
    errors = []
    seen: dict[str, int] = {}
    for index, member in enumerate(team):
        if not isinstance(member, str) or not member.strip():
            continue
        if member.strip() in seen:
            _, first_line, _ = source.where((*path, "fallback_owner", seen[member.strip()]))
            errors.append(source.error(
                (*path, "fallback_owner", index),
                f"fallback_owner lists {member.strip()!r} twice (already on line {first_line}): "
                "list each owner of the team once"))
        else:
            seen[member.strip()] = index
    return errors


def _cadence(cadence: dict[str, Any], path: Path_, source: Source) -> list[ConfigError]:
    errors: list[ConfigError] = []
    when = cadence.get("when")
    if isinstance(when, dict):
        for name in when:
            if name not in DEAL_FIELDS and not name.startswith("custom."):
                errors.append(source.error(
                    (*path, "when", name),
                    f"unknown deal field {name!r} in when (expected one of: "
                    f"{', '.join(DEAL_FIELDS)}, or custom.<field>)", key=True))
    steps = cadence.get("steps")
    if not isinstance(steps, list):
        return errors
    errors += _experiment(cadence, path, source)
    errors += _duplicates(steps, "id", (*path, "steps"), source)
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        with_contact = step.get("per") == "stakeholder"
        for field in ("subject", "body"):
            if isinstance(step.get(field), str):
                errors += _template(step[field], (*path, "steps", index, field), source,
                                    with_contact=with_contact)
    return errors


def _step_kind(step: dict[str, Any]) -> str | None:
    kinds = [k for k in ("at", "every", "spread") if step.get(k) is not None]
    return kinds[0] if len(kinds) == 1 else None


def _experiment(cadence: dict[str, Any], path: Path_, source: Source) -> list[ConfigError]:
    """Each variant overrides steps of this cadence, with fields of that step's kind."""
    experiment = cadence.get("experiment")
    variants = experiment.get("variants") if isinstance(experiment, dict) else None
    if not isinstance(variants, dict):
        return []
    steps = {s["id"]: s for s in cadence.get("steps") or []
             if isinstance(s, dict) and isinstance(s.get("id"), str)}
    errors: list[ConfigError] = []
    for name, variant in variants.items():
        overrides = variant.get("steps") if isinstance(variant, dict) else None
        if not isinstance(overrides, dict):
            continue
        for step_id, fields in overrides.items():
            where = (*path, "experiment", "variants", name, "steps", step_id)
            if step_id not in steps:
                errors.append(source.error(where, (
                    f"variant {name!r} overrides step {step_id!r}, which this cadence does "
                    f"not have (expected one of: {', '.join(steps) or 'none'})"), key=True))
                continue
            kind = _step_kind(steps[step_id])
            if not isinstance(fields, dict) or kind is None:
                continue
            for field in fields:
                allowed = OVERRIDE_KINDS.get(field)
                if allowed is None or kind in allowed:
                    continue  # (an unknown field is the model's error)
                fits = [f for f, kinds in OVERRIDE_KINDS.items() if kind in kinds]
                errors.append(source.error((*where, field), (
                    f"variant {name!r} sets {field!r} on step {step_id!r}, which is an "
                    f"{kind!r} step; an arm keeps the step's kind: override one of "
                    f"{', '.join(fits)}"), key=True))
            if "max_wait" in fields and not steps[step_id].get("after"):
                errors.append(source.error((*where, "max_wait"), (
                    f"variant {name!r} sets max_wait on step {step_id!r}, which has no "
                    "after: (max_wait bounds the wait for that step)"), key=True))
    return errors


def _template(text: str, path: Path_, source: Source, *, with_contact: bool) -> list[ConfigError]:
    try:
        check(text, with_contact=with_contact)
    except TemplateProblem as problem:
        return [source.error(path, str(problem))]
    return []


def _step_ids(cadence: Any) -> dict[str, int]:
    steps = cadence.get("steps") if isinstance(cadence, dict) else None
    if not isinstance(steps, list):
        return {}
    return {s["id"]: i for i, s in enumerate(steps)
            if isinstance(s, dict) and isinstance(s.get("id"), str)}


def _after(cadences: list[Any], index: int, source: Source) -> list[ConfigError]:
    """`after: STEP` names another single-occurrence (`at`) step of the same cadence, and the
    `after` links of a cadence form no cycle."""
    cadence = cadences[index]
    steps = cadence.get("steps")
    if not isinstance(steps, list):
        return []
    ids = _step_ids(cadence)
    errors: list[ConfigError] = []
    links: dict[str, str] = {}
    for number, step in enumerate(steps):
        if not isinstance(step, dict) or not isinstance(step.get("after"), str):
            continue
        target, path = step["after"], ("cadences", index, "steps", number, "after")
        own = step.get("id")
        if target == own:
            errors.append(source.error(path, f"step {own!r} cannot wait for itself: name "
                                             "another `at` step of this cadence"))
            continue
        if target not in ids:
            elsewhere = [str(c.get("id")) for i, c in enumerate(cadences)
                         if i != index and target in _step_ids(c)]
            where = (f" (it is a step of cadence {elsewhere[0]!r}: after names a step of the "
                     "same cadence)" if elsewhere else "")
            known = ", ".join(ids) or "none"
            errors.append(source.error(path, f"after: no step {target!r} in this cadence"
                                             f"{where}; expected one of: {known}"))
            continue
        if not isinstance(steps[ids[target]], dict) or "at" not in steps[ids[target]]:
            errors.append(source.error(path, f"after: step {target!r} is recurring (every or "
                                             "spread); name a single-occurrence step (at:)"))
            continue
        if isinstance(own, str):
            links[own] = target
    for own, first in links.items():
        seen, probe = [own], first
        while probe in links and probe not in seen:
            seen.append(probe)
            probe = links[probe]
        if probe == own:
            path = ("cadences", index, "steps", ids[own], "after")
            errors.append(source.error(path, "after: the steps wait for each other in a cycle ("
                                             + " -> ".join([*seen, own])
                                             + "); remove one of these after: keys"))
            break
    return errors
