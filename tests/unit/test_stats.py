"""worker/views/stats.py against statsmodels' values (issue 17 part 2): the Wilson interval,
Newcombe's interval of a difference, and the sample size per arm."""

from __future__ import annotations

import pytest

from worker.views.stats import deals_per_arm, newcombe, sample_size, wilson

sm_proportion = pytest.importorskip("statsmodels.stats.proportion")
sm_power = pytest.importorskip("statsmodels.stats.power")

COUNTS = [(0, 10), (1, 10), (5, 10), (10, 10), (3, 250), (37, 400), (120, 1000), (999, 1000)]


@pytest.mark.parametrize(("successes", "n"), COUNTS)
@pytest.mark.parametrize("confidence", [0.95, 0.9, 0.99])
def test_wilson_matches_statsmodels(successes: int, n: int, confidence: float) -> None:
    low, high = sm_proportion.proportion_confint(successes, n, alpha=1 - confidence,
                                                 method="wilson")
    assert wilson(successes, n, confidence) == pytest.approx((low, high), abs=1e-12)


@pytest.mark.parametrize(("one", "two"), [((12, 100), (5, 100)), ((0, 40), (3, 38)),
                                          ((56, 70), (48, 80)), ((9, 10), (3, 10)),
                                          ((150, 2000), (100, 1800)), ((5, 5), (0, 5))])
def test_newcombe_matches_statsmodels(one: tuple[int, int], two: tuple[int, int]) -> None:
    low, high = sm_proportion.confint_proportions_2indep(
        one[0], one[1], two[0], two[1], method="newcomb", compare="diff", alpha=0.05)
    assert newcombe(*one, *two) == pytest.approx((low, high), abs=1e-12)


@pytest.mark.parametrize(("base", "lift", "power"), [(0.10, 0.05, 0.8), (0.05, 0.05, 0.9),
                                                     (0.30, -0.10, 0.8), (0.02, 0.01, 0.8),
                                                     (0.50, 0.20, 0.5)])
def test_sample_size_matches_statsmodels(base: float, lift: float, power: float) -> None:
    h = sm_proportion.proportion_effectsize(base + lift, base)
    expected = sm_power.NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=power,
                                                     ratio=1.0, alternative="two-sided")
    assert sample_size(base, lift, power=power) == pytest.approx(expected, rel=1e-6)
    assert deals_per_arm(base, lift, power=power) == pytest.approx(expected, abs=1)


def test_the_edges_are_said_plainly() -> None:
    assert wilson(0, 0) == (0.0, 1.0)
    assert newcombe(0, 0, 1, 2) == (-1.0, 1.0)
    with pytest.raises(ValueError, match="expected 0 <= successes <= n"):
        wilson(5, 3)
    with pytest.raises(ValueError, match="the lift not 0"):
        deals_per_arm(0.1, 0)
