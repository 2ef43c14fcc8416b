"""The experiments section of `winback report --format html`: per experiment, the arms' rebirth
rates drawn with their 95% intervals (inline SVG: a dot at the rate, a bar across the
interval, one row per arm in each window whose days have passed for some deals), the table
behind the chart, and the verdict."""

from __future__ import annotations

import math
from html import escape
from typing import Any

WIDTH, LEFT, RIGHT, ROW, TOP = 960, 170, 30, 22, 28
CONTROL, ARM = "#667085", "#2e90fa"


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return ""
    return f"{value * 100:+.1f}" if signed else f"{value * 100:.1f}%"


def _scale_top(entry: dict[str, Any]) -> float:
    """The chart's right end: the highest interval end, rounded up to 5 points (at least 5)."""
    highs = [c["ci_high"] for a in entry["arms"] for c in a["windows"].values()
             if c["eligible"]]
    return max(0.05, math.ceil(max(highs, default=0.05) * 20 - 1e-9) / 20)


def _chart(entry: dict[str, Any]) -> str:
    rows = [(window, arm, arm["windows"][window]) for window in entry["arms"][0]["windows"]
            for arm in entry["arms"] if arm["windows"][window]["eligible"]]
    top = _scale_top(entry)
    span = WIDTH - LEFT - RIGHT
    height = TOP + ROW * len(rows) + 24

    def x(rate: float) -> float:
        return LEFT + span * rate / top

    name = f"{entry['experiment']} on {entry['cadence']}"
    parts = [f'<svg role="img" aria-label="rebirth rate per arm of {escape(name)} with 95% '
             f'intervals" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg" '
             f'class="arms" data-experiment="{escape(entry["experiment"])}" '
             f'data-scale-left="{LEFT}" data-scale-right="{WIDTH - RIGHT}" data-scale-top="{top}">']
    ticks = round(top * 20)
    for t in range(ticks + 1):
        rate = t / 20
        parts.append(f'<line x1="{x(rate):.1f}" y1="{TOP - 8}" x2="{x(rate):.1f}" '
                     f'y2="{height - 20}" stroke="#e4e7ec"/><text x="{x(rate):.1f}" '
                     f'y="{height - 6}" font-size="10" text-anchor="middle">{t * 5}%</text>')
    if not rows:
        parts.append(f'<text x="{LEFT}" y="{TOP + 10}" font-size="12">no deal has had 90 days '
                     "since its loss yet</text>")
    for index, (window, arm, cell) in enumerate(rows):
        y = TOP + index * ROW + ROW / 2
        color = CONTROL if arm["arm"] == entry["control"] else ARM
        label = f"{arm['arm']}, ≤{window}d"
        detail = (f"{arm['arm']} within {window} days: {cell['reborn']} of {cell['eligible']} "
                  f"reborn, {_pct(cell['rate'])} (95% CI {_pct(cell['ci_low'])} to "
                  f"{_pct(cell['ci_high'])})")
        parts.append(
            f'<g class="arm" data-arm="{escape(arm["arm"])}" data-window="{window}" '
            f'data-rate="{cell["rate"]}" data-ci-low="{cell["ci_low"]}" '
            f'data-ci-high="{cell["ci_high"]}"><title>{escape(detail)}</title>'
            f'<text x="4" y="{y + 4:.1f}" font-size="12">{escape(label)}</text>'
            f'<line class="ci" x1="{x(cell["ci_low"]):.1f}" y1="{y:.1f}" '
            f'x2="{x(cell["ci_high"]):.1f}" y2="{y:.1f}" stroke="{color}" stroke-width="3"/>'
            f'<circle class="rate" cx="{x(cell["rate"]):.1f}" cy="{y:.1f}" r="5" '
            f'fill="{color}"/></g>')
    parts.append("</svg>")
    return "".join(parts)


def _table(entry: dict[str, Any]) -> str:
    head = ("<table><tr><th>arm</th><th>window</th><th>deals whose window passed</th>"
            "<th>reborn</th><th>rate</th><th>95% CI</th><th>vs control (points)</th>"
            "<th>95% CI</th></tr>")
    body = []
    for arm in entry["arms"]:
        for window, c in arm["windows"].items():
            diff = c.get("diff")
            body.append(
                f"<tr><td>{escape(arm['arm'])}</td><td>≤{window}d</td><td>{c['eligible']}</td>"
                f"<td>{c['reborn']}</td><td>{_pct(c['rate'])}</td><td>"
                + (f"{_pct(c['ci_low'])} to {_pct(c['ci_high'])}" if c["eligible"] else "")
                + f"</td><td>{_pct(diff, signed=True)}</td><td>"
                + (f"{_pct(c['diff_ci_low'], True)} to {_pct(c['diff_ci_high'], True)}"
                   if diff is not None else "") + "</td></tr>")
    deals = ", ".join(f"{escape(a['arm'])}: {a['deals']:,} deals, {a['won_back']:,} won back "
                      f"({a['amount_won_back']:,.0f})" for a in entry["arms"])
    return head + "".join(body) + f"</table><p class=\"muted\">{deals}</p>"


def experiment_sections(payload: dict[str, Any]) -> list[str]:
    entries = payload.get("experiments") or []
    if not entries:
        return []
    out = ["<h2>Experiments</h2><p class=\"muted\">A deal counts in a window once that many "
           "days have passed since its loss. Dots: the share reborn; bars: its 95% interval. "
           "Grey: the control arm.</p>"]
    for e in entries:
        stale = "" if e["current"] else " (no longer in the rules)"
        out.append(f"<h3>{escape(e['experiment'])} on cadence {escape(e['cadence'])}{stale}"
                   f"</h3><p class=\"verdict\"><b>Verdict:</b> {escape(e['verdict'])}</p>")
        out += [_chart(e), _table(e)]
    return out
