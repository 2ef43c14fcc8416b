"""Task subjects and bodies: Jinja2 templates, sandboxed, strict, checked when the config loads.

A template sees four names: `deal`, `owner`, `contact` (steps with `per: stakeholder` only) and
`step`. `check()` finds every field a template reads and rejects unknown ones, private
attributes (`{{ ''.__class__ }}`) and syntax errors before anything runs; rendering uses a
`SandboxedEnvironment` with `StrictUndefined` as the second line of defence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from connectors.models import Contact, Deal, Owner

DEAL_ATTRS = ("id", "name", "account_id", "account_name", "stage", "closed_at", "amount",
              "currency", "loss_reason", "competitor", "contract_end", "pipeline", "custom",
              "day0")
OWNER_ATTRS = ("id", "name", "email")
CONTACT_ATTRS = ("id", "name", "email", "role")
STEP_ATTRS = ("id", "occurrence", "due_date", "channel", "cadence")
ROOTS: dict[str, tuple[str, ...]] = {
    "deal": DEAL_ATTRS, "owner": OWNER_ATTRS, "contact": CONTACT_ATTRS, "step": STEP_ATTRS,
}


class TemplateProblem(ValueError):
    """A template that cannot be used; `line` is the line inside the template (1-based)."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.line = line


def _blank_none(value: Any) -> Any:
    return "" if value is None else value


_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, finalize=_blank_none)


def check(source: str, *, with_contact: bool) -> None:
    """Raise TemplateProblem if `source` is not a safe template over the known fields."""
    try:
        tree = _ENV.parse(source)
        _ENV.compile(tree)  # unknown filters and tests fail here
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template error: {exc.message}", exc.lineno or 1) from exc
    lookups = [n for n in tree.find_all((nodes.Getattr, nodes.Getitem))
               if isinstance(n, nodes.Getattr | nodes.Getitem)]
    for node in lookups:
        attr = node.attr if isinstance(node, nodes.Getattr) else _const_key(node)
        if attr is not None and attr.startswith("_"):
            raise TemplateProblem(
                f"template reads the private attribute {attr!r}, which is not allowed",
                node.lineno)
    for name in sorted(meta.find_undeclared_variables(tree)):
        if name not in ROOTS:
            raise TemplateProblem(
                f"template uses unknown name {name!r} (known: {', '.join(ROOTS)})")
        if name == "contact" and not with_contact:
            raise TemplateProblem(
                "template uses contact, which exists only in steps with per: stakeholder")
    for node in lookups:
        target = node.node
        attr = node.attr if isinstance(node, nodes.Getattr) else _const_key(node)
        if isinstance(target, nodes.Name) and target.name in ROOTS and attr is not None:
            known = ROOTS[target.name]
            if attr not in known:
                raise TemplateProblem(
                    f"unknown field {target.name}.{attr} (known: {', '.join(known)})",
                    node.lineno)
        elif not _is_custom_field(target):
            # Fields are plain values: reading attributes of them (deal.name.format) is how
            # sandbox escapes start, and never needed; filters do the formatting.
            raise TemplateProblem("templates may read fields such as deal.name, not "
                                  "attributes of them (use a filter: {{ deal.name | upper }})",
                                  node.lineno)
    for call in tree.find_all(nodes.Call):
        if isinstance(call, nodes.Call):
            raise TemplateProblem("templates cannot call functions or methods (use filters)",
                                  call.lineno)


def _is_custom_field(node: nodes.Node) -> bool:
    """deal.custom (whose keys are ops' own field names) may be read one level down."""
    return (isinstance(node, nodes.Getattr) and node.attr == "custom"
            and isinstance(node.node, nodes.Name) and node.node.name == "deal")


def _const_key(node: nodes.Getitem) -> str | None:
    arg = node.arg
    if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
        return arg.value
    return None


@lru_cache(maxsize=4096)
def compile_template(source: str) -> Any:
    return _ENV.from_string(source)


@dataclass(frozen=True, slots=True)
class StepView:
    id: str
    occurrence: int
    due_date: date
    channel: str
    cadence: str


def deal_view(deal: Deal, day0: date | None) -> dict[str, Any]:
    data = {attr: getattr(deal, attr) for attr in DEAL_ATTRS if attr != "day0"}
    data["day0"] = day0
    return data


def owner_view(owner_id: str, owner: Owner | None) -> dict[str, Any]:
    if owner is not None and owner.id == owner_id:
        return {"id": owner.id, "name": owner.name, "email": owner.email}
    return {"id": owner_id, "name": None, "email": None}


def contact_view(contact: Contact | None) -> dict[str, Any] | None:
    if contact is None:
        return None
    return {attr: getattr(contact, attr) for attr in CONTACT_ATTRS}


def render(source: str, context: dict[str, Any]) -> str:
    """Render a checked template; values that are None render as an empty string."""
    text: str = compile_template(source).render(context)
    return text
