"""The statistics of an experiment's report (issue 17 part 2), pure and small: the Wilson
score interval of a rate, Newcombe's hybrid score interval of the difference of two rates,
and the deals per arm needed to see a given lift.

Why not scipy or statsmodels: together with numpy and pandas they would add some 250 MB to an
image that needs three formulas; the standard library's `statistics.NormalDist` gives the
normal quantiles. tests/unit/test_stats.py checks every function against statsmodels' values
(`proportion_confint(method="wilson")`, `confint_proportions_2indep(method="newcomb")`,
`NormalIndPower().solve_power` on `proportion_effectsize`), installed by the dev extra only.
"""

from __future__ import annotations

import math
from statistics import NormalDist

Interval = tuple[float, float]


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence} must be between 0 and 1 (e.g. 0.95)")
    return NormalDist().inv_cdf(1 - (1 - confidence) / 2)


def _check(successes: int, n: int) -> None:
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"{successes} of {n}: expected 0 <= successes <= n")


def wilson(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """The Wilson score interval of the rate successes / n (n = 0: the whole of [0, 1])."""
    _check(successes, n)
    if n == 0:
        return 0.0, 1.0
    z = _z(confidence)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(successes1: int, n1: int, successes2: int, n2: int, confidence: float = 0.95
             ) -> Interval:
    """Newcombe's hybrid score interval (his method 10) of the difference p1 - p2 of two
    independent rates, from the Wilson intervals of each."""
    _check(successes1, n1)
    _check(successes2, n2)
    if n1 == 0 or n2 == 0:
        return -1.0, 1.0
    p1, p2 = successes1 / n1, successes2 / n2
    low1, high1 = wilson(successes1, n1, confidence)
    low2, high2 = wilson(successes2, n2, confidence)
    diff = p1 - p2
    return (diff - math.sqrt((p1 - low1) ** 2 + (high2 - p2) ** 2),
            diff + math.sqrt((high1 - p1) ** 2 + (p2 - low2) ** 2))


def effect_size(rate1: float, rate2: float) -> float:
    """Cohen's h: the difference of two rates on the arcsine scale."""
    return 2 * math.asin(math.sqrt(rate1)) - 2 * math.asin(math.sqrt(rate2))


def deals_per_arm(base_rate: float, lift: float, *, confidence: float = 0.95,
                  power: float = 0.8) -> int:
    """The deals needed in each of two equal arms for a two-sided test at `confidence` to
    see a lift of `lift` (e.g. 0.05: five points) over `base_rate` with probability `power`
    (normal approximation on Cohen's h, both tails counted): `sample_size`, rounded up."""
    return math.ceil(sample_size(base_rate, lift, confidence=confidence, power=power) - 1e-9)


def sample_size(base_rate: float, lift: float, *, confidence: float = 0.95,
                power: float = 0.8) -> float:
    """`deals_per_arm` before rounding up."""
    if not 0 <= base_rate <= 1 or not 0 < base_rate + lift <= 1 or lift == 0:
        raise ValueError(f"base rate {base_rate} and lift {lift}: both rates must be in "
                         "[0, 1] and the lift not 0")
    if not 0 < power < 1:
        raise ValueError(f"power {power} must be between 0 and 1 (e.g. 0.8)")
    h = abs(effect_size(base_rate + lift, base_rate))
    z = _z(confidence)
    normal = NormalDist()
    n = ((z + normal.inv_cdf(power)) / h) ** 2
    for _ in range(50):  # (solve with the far tail too, as a two-sided power does)
        shift = h * math.sqrt(n / 2)
        got = normal.cdf(shift - z) + normal.cdf(-shift - z)
        slope = normal.pdf(shift - z) * h / (2 * math.sqrt(2 * n))
        step = (got - power) / slope
        n -= step
        if abs(step) < 1e-9:
            break
    return n
