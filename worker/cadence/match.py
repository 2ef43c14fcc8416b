"""Which cadence a deal gets: the first whose `when` tests all pass, in file order."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.models import Deal
from worker.settings.models import Cadence, Matcher

Test = Callable[[Any], bool]


def deal_field(deal: Deal, name: str) -> Any:
    if name.startswith("custom."):
        return deal.custom.get(name.removeprefix("custom."))
    if name == "owner_country":
        return deal.owner.country if deal.owner else None
    return getattr(deal, name)


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().casefold()
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _tests(matcher: Matcher) -> list[Test]:
    tests: list[Test] = []
    if matcher.matches is not None:
        pattern = re.compile(matcher.matches)
        tests.append(lambda v: v is not None and pattern.search(str(v)) is not None)
    if matcher.in_ is not None:
        allowed = {_norm(x) for x in matcher.in_}
        tests.append(lambda v: v is not None and _norm(v) in allowed)
    if matcher.not_in is not None:
        banned = {_norm(x) for x in matcher.not_in}
        tests.append(lambda v: v is None or _norm(v) not in banned)
    if matcher.eq is not None:
        eq = _norm(matcher.eq)
        tests.append(lambda v: v is not None and _norm(v) == eq)
    if matcher.ne is not None:
        ne = _norm(matcher.ne)
        tests.append(lambda v: v is None or _norm(v) != ne)
    bounds: list[tuple[float | None, Callable[[float, float], bool]]] = [
        (matcher.gte, operator.ge), (matcher.gt, operator.gt),
        (matcher.lte, operator.le), (matcher.lt, operator.lt),
    ]
    for bound, compare in bounds:
        if bound is not None:
            tests.append(_bounded(bound, compare))
    if matcher.exists is not None:
        wanted = matcher.exists
        tests.append(lambda v: (v is not None and v != "") is wanted)
    return tests


def _bounded(bound: float, compare: Callable[[float, float], bool]) -> Test:
    def test(value: Any) -> bool:
        number = _number(value)
        return number is not None and compare(number, bound)

    return test


@dataclass(frozen=True)
class CompiledWhen:
    cadence: Cadence
    tests: tuple[tuple[str, tuple[Test, ...]], ...]

    def accepts(self, deal: Deal) -> bool:
        for name, tests in self.tests:
            value = deal_field(deal, name)
            if not all(test(value) for test in tests):
                return False
        return True


def compile_when(cadence: Cadence) -> CompiledWhen:
    return CompiledWhen(cadence,
                        tuple((name, tuple(_tests(m))) for name, m in cadence.when.items()))


def first_match(rules: list[CompiledWhen], deal: Deal) -> Cadence | None:
    for rule in rules:
        if rule.accepts(deal):
            return rule.cadence
    return None
