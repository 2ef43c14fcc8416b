"""The experiments section of `winback report` (issue 17): per cadence experiment and arm, the
deals, those reborn within 90 / 180 / 365 days with the rate's 95% interval, won back, and
the difference from the control arm with its interval, then a plain verdict.

Honest by construction:
- a deal counts in a window only once the window has fully elapsed since its loss;
- the control is the holdout when the experiment has one, else the base arm;
- the verdict reads one window, chosen before looking at any difference: the longest in which
  every arm has the deals needed to see a 5-point lift (80% power, two-sided 95%); with none,
  it says how many are needed and declares nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from worker.ledger.experiments import ArmCounts
from worker.ledger.rollups import REBORN_WINDOWS
from worker.settings.experiments import BASE, HOLDOUT
from worker.views.stats import deals_per_arm, newcombe, wilson

CONFIDENCE = 0.95
LIFT = 0.05  # the lift the verdict's sample size is sized to see (5 points)
ASSUMED_RATE = 0.10  # the control's rate assumed while it has no eligible deal


def _round(value: float) -> float:
    return round(value, 4)


def _window(arm: ArmCounts, control: ArmCounts | None, window: int) -> dict[str, Any]:
    n, reborn = arm.eligible[window], arm.reborn[window]
    low, high = wilson(reborn, n, CONFIDENCE)
    out: dict[str, Any] = {"eligible": n, "reborn": reborn,
                           "rate": _round(reborn / n) if n else None,
                           "ci_low": _round(low), "ci_high": _round(high)}
    if control is not None and control is not arm:
        m, c = control.eligible[window], control.reborn[window]
        if n and m:
            d_low, d_high = newcombe(reborn, n, c, m, CONFIDENCE)
            out.update(diff=_round(reborn / n - c / m), diff_ci_low=_round(d_low),
                       diff_ci_high=_round(d_high))
        else:
            out.update(diff=None, diff_ci_low=None, diff_ci_high=None)
    return out


def needed_per_arm(control: ArmCounts, window: int) -> int:
    """The deals each arm needs in `window` to see a 5-point lift over the control's rate
    (the assumed 10% while the control has no eligible deal)."""
    n = control.eligible[window]
    rate = control.reborn[window] / n if n else ASSUMED_RATE
    return deals_per_arm(min(rate, 1 - LIFT), LIFT, confidence=CONFIDENCE)


def _points(value: float) -> str:
    return f"{abs(value) * 100:.0f}"


def _signed(value: float) -> str:
    return f"{value * 100:+.0f}"


def verdict(arms: list[dict[str, Any]], counts: list[ArmCounts], control: ArmCounts | None
            ) -> tuple[str, int | None]:
    """The plain words of the comparison and the window they read (None: no comparison)."""
    if control is None or len(counts) < 2:
        return ("one arm only: nothing to compare (add a holdout or a variant)", None)
    chosen = next((w for w in sorted(REBORN_WINDOWS, reverse=True)
                   if all(c.eligible[w] >= needed_per_arm(control, w) for c in counts)), None)
    if chosen is None:
        window = min(REBORN_WINDOWS)
        fewest = min(c.eligible[window] for c in counts)
        return (f"not enough deals yet: about {needed_per_arm(control, window):,} per arm "
                f"are needed to see a 5-point lift within {window} days (the smallest arm has "
                f"{fewest:,} whose {window} days have passed)", None)
    words = []
    for arm in arms:
        if arm["arm"] == control.arm:
            continue
        cell = arm["windows"][str(chosen)]
        diff, low, high = cell["diff"], cell["diff_ci_low"], cell["diff_ci_high"]
        interval = f"95% CI {_signed(low)} to {_signed(high)}"
        if low > 0:
            words.append(f"{arm['arm']} beats {control.arm} by {_points(diff)} points "
                         f"within {chosen} days ({interval})")
        elif high < 0:
            words.append(f"{arm['arm']} trails {control.arm} by {_points(diff)} points "
                         f"within {chosen} days ({interval})")
        else:
            words.append(f"no clear difference between {arm['arm']} and {control.arm} "
                         f"within {chosen} days: {_signed(diff)} points ({interval})")
    return "; ".join(words), chosen


def experiments_section(counts: list[ArmCounts], today: str,
                        current: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One entry per (cadence, experiment): its arms (control first) and the verdict.
    `current`: cadence -> the experiment id its rules run now (marks the entry current)."""
    groups: dict[tuple[str, str], list[ArmCounts]] = {}
    for c in counts:
        groups.setdefault((c.cadence, c.experiment), []).append(c)
    out = []
    for (cadence, experiment), arms_of in sorted(groups.items()):
        by_name = {a.arm: a for a in arms_of}
        control = by_name.get(HOLDOUT) or by_name.get(BASE)
        order = sorted(arms_of, key=lambda a: (a is not control, a.arm != BASE, a.arm))
        arms = [{"arm": a.arm, "deals": a.deals, "won_back": a.won_back,
                 "amount_won_back": round(a.amount_won_back, 2),
                 "windows": {str(w): _window(a, control, w) for w in REBORN_WINDOWS}}
                for a in order]
        words, window = verdict(arms, order, control)
        out.append({"cadence": cadence, "experiment": experiment,
                    "current": bool(current and current.get(cadence) == experiment),
                    "control": control.arm if control else None, "today": today,
                    "arms": arms, "verdict": words, "verdict_window": window})
    return out


def significant(entry: dict[str, Any]) -> dict[str, bool]:
    """Per non-control arm: whether the verdict window's difference interval excludes 0
    (False with no verdict window)."""
    window = entry["verdict_window"]
    out = {}
    for arm in entry["arms"]:
        if arm["arm"] == entry["control"]:
            continue
        cell = arm["windows"][str(window)] if window else None
        out[arm["arm"]] = bool(cell and cell["diff"] is not None
                               and (cell["diff_ci_low"] > 0 or cell["diff_ci_high"] < 0))
    return out


def csv_rows(entries: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    """(section, cadence, item, metric, value) rows of the experiments section."""
    rows: list[tuple[object, ...]] = []
    for e in entries:
        section = f"experiment {e['experiment']}"
        for arm in e["arms"]:
            rows += [(section, e["cadence"], arm["arm"], k, arm[k])
                     for k in ("deals", "won_back", "amount_won_back")]
            for window, cell in arm["windows"].items():
                rows += [(section, e["cadence"], arm["arm"], f"{window}d {k}", v)
                         for k, v in cell.items()]
        rows.append((section, e["cadence"], "", "verdict", e["verdict"]))
    return rows
