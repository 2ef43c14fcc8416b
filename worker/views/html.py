"""Self-contained HTML pages (inline SVG and CSS, no scripts, no fonts, no links out):
`winback plan --format html` and `winback report --format html`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, tzinfo
from html import escape
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.models import Deal
from worker.cadence.engine import DealPlan
from worker.views.html_experiments import experiment_sections
from worker.views.planview import PlanRow
from worker.views.svgbars import bars as _bars

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d2330}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px}
h3{font-size:15px;margin:18px 0 6px} .muted{color:#667085}
table{border-collapse:collapse;margin:6px 0 14px;font-size:13px}
th,td{border-bottom:1px solid #e4e7ec;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f5f7fa} svg{display:block;max-width:100%;height:auto}
.legend span{display:inline-block;margin-right:14px} .dot{display:inline-block;width:10px;
height:10px;border-radius:50%;margin-right:4px;vertical-align:middle}
.moved{color:#b54708;font-weight:600} .skipped{color:#667085;margin:0 0 14px 18px}
.email{background:#2e90fa} .call{background:#12b76a}
.todo{background:#7a5af8}
"""
COLORS = {"email": "#2e90fa", "call": "#12b76a", "todo": "#7a5af8"}
WIDTH, LABEL, ROW = 960, 190, 26


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>"
            f"<body>{body}</body></html>\n")


def _x(day: float, horizon: float) -> float:
    """Piecewise scale: the first 180 days get half the width (that is where it is busy)."""
    span = WIDTH - LABEL - 20
    if day <= 180:
        return LABEL + span * 0.5 * max(day, 0) / 180
    return LABEL + span * (0.5 + 0.5 * min(day - 180, horizon - 180) / max(horizon - 180, 1))


def _timeline(cadence: str, steps: list[str], rows: list[PlanRow], horizon: float,
              waiting: dict[str, int] | None = None) -> str:
    height = 40 + ROW * len(steps)
    parts = [f'<svg role="img" aria-label="timeline of {escape(cadence)}" '
             f'viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg" '
             f'class="timeline" data-cadence="{escape(cadence)}">']
    for tick in (0, 14, 30, 60, 90, 180, 365, 730, 1095):
        if tick > horizon:
            continue
        x = _x(tick, horizon)
        parts.append(f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 8}" '
                     f'stroke="#e4e7ec"/><text x="{x:.1f}" y="14" font-size="10" '
                     f'text-anchor="middle" fill="#667085">d{tick}</text>')
    by_step: dict[str, list[PlanRow]] = defaultdict(list)
    for row in rows:
        by_step[row.task.step].append(row)
    for index, step in enumerate(steps):
        y = 34 + ROW * index
        parts.append(f'<g class="step" data-step="{escape(step)}">'
                     f'<text x="4" y="{y + 4}" font-size="12">{escape(step)}</text>')
        waits = (waiting or {}).get(step, 0)
        if waits:
            parts.append(f'<text class="waiting" x="{LABEL}" y="{y + 4}" font-size="11" '
                         f'fill="#667085">waiting for a completion in {waits} deal(s)</text>')
        seen: set[tuple[int, int]] = set()
        for row in by_step.get(step, []):
            day0 = row.plan.day0
            if day0 is None:
                continue
            due = (row.task.due_date - day0).days
            if (row.task.occurrence, due) in seen:
                continue
            seen.add((row.task.occurrence, due))
            color = COLORS.get(str(row.task.channel), "#667085")
            title = f"{step} #{row.task.occurrence}: day {due} ({row.task.due_date}) - " \
                    f"{row.subject}"
            why = next((m.why for m in row.plan.moved if m.key == row.task.key), None)
            if why:
                title += f"; {why}"
            if row.task.moved_from is not None:
                raw = (row.task.moved_from - day0).days
                title += f"; moved from {row.task.moved_from} (weekend, holiday or late)"
                # A ring wider than the dot, so a shift of a day or two still shows.
                parts.append(f'<line x1="{_x(raw, horizon):.1f}" y1="{y}" '
                             f'x2="{_x(due, horizon):.1f}" y2="{y}" stroke="#b54708"/>'
                             f'<circle class="moved-marker" cx="{_x(due, horizon):.1f}" '
                             f'cy="{y}" r="8" fill="none" stroke="#b54708" '
                             f'stroke-width="2"/>')
            parts.append(f'<circle class="occurrence" cx="{_x(due, horizon):.1f}" cy="{y}" '
                         f'r="5" fill="{color}"><title>{escape(title)}</title></circle>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def _owner(deal: Deal, plan: DealPlan, zone: str) -> str:
    """The owner as ops know them: the name from the deals file when it has one."""
    owner = deal.owner
    name = owner.name if owner is not None and owner.id == plan.owner_id and owner.name else None
    shown = f"{name} ({plan.owner_id})" if name else str(plan.owner_id)
    if plan.owner_fallback:
        shown += ", the fallback owner"
    return f"{shown}, time zone {zone}"


def _local(moment: datetime, zone: str) -> str:
    try:
        tz: tzinfo = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = UTC
    return f"{moment.astimezone(tz):%Y-%m-%d %H:%M %Z}"


def who(contact: str | None) -> str:
    return f" ({escape(contact)})" if contact else ""


def _skipped(plan: DealPlan) -> str:
    """Under a deal: what the plan moved (after, pause), skipped (with the activity) and
    what waits for a completion."""
    out = ""
    if plan.moved:
        items = "".join(f"<li>{escape(m.step)} #{m.occurrence}{who(m.contact_id)} due {m.due}"
                        f"{' instead of ' + m.fixed.isoformat() if m.fixed else ''}: "
                        f"{escape(m.why)}</li>" for m in plan.moved)
        out += f'<div class="skipped moved-steps">Moved steps:<ul>{items}</ul></div>'
    if plan.skipped:
        items = "".join(f"<li>{escape(s.step)} #{s.occurrence}{who(s.contact_id)}"
                        f"{' due ' + s.due_date.isoformat() if s.due_date else ''}: "
                        f"{escape(s.reason)}</li>" for s in plan.skipped)
        out += f'<div class="skipped">Skipped steps:<ul>{items}</ul></div>'
    if plan.waiting:
        items = "".join(f"<li>{escape(w.step)}{who(w.contact_id)}: {escape(w.describe())}</li>"
                        for w in plan.waiting)
        out += f'<div class="skipped waiting-steps">Waiting steps:<ul>{items}</ul></div>'
    return out


def plan_html(results: Iterable[tuple[Deal, DealPlan, list[PlanRow]]], *, steps_by_cadence:
              dict[str, list[str]], horizon_days: float, now: datetime, config_name: str) -> str:
    results = list(results)
    by_cadence: dict[str, list[PlanRow]] = defaultdict(list)
    deals_by_cadence: dict[str, int] = defaultdict(int)
    waiting: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _, plan, rows in results:
        if plan.cadence:
            by_cadence[plan.cadence].extend(rows)
            deals_by_cadence[plan.cadence] += 1
            for step in {w.step for w in plan.waiting}:
                waiting[plan.cadence][step] += 1
    body = [f"<h1>winback plan</h1><p class=\"muted\">{escape(config_name)} as of "
            f"{escape(now.astimezone(UTC).isoformat())}; {len(results)} deal(s), "
            f"{sum(len(r) for _, _, r in results)} task(s).</p>",
            '<p class="legend"><span><i class="dot email"></i>email</span><span><i class="dot '
            'call"></i>call</span><span><i class="dot todo"></i>to-do</span><span class="moved">'
            "&#9711; ringed: moved to the next working day (weekend, holiday or late)</span></p>"]
    for cadence, steps in steps_by_cadence.items():
        body.append(f'<h2>Cadence {escape(cadence)}</h2><p class="muted" data-deals='
                    f'"{deals_by_cadence.get(cadence, 0)}">{len(steps)} step(s); '
                    f"{deals_by_cadence.get(cadence, 0)} deal(s) in this file.</p>")
        if steps:
            body.append(_timeline(cadence, steps, by_cadence.get(cadence, []), horizon_days,
                                  waiting.get(cadence)))
    body.append("<h2>Deals</h2>")
    for deal, plan, rows in results:
        head = f"{deal.id} {deal.name}"
        if not rows:
            why = plan.reason or f"cadence {plan.cadence}: no tasks"
            body.append(f"<h3>{escape(head)}</h3><p class=\"muted\">No tasks ({escape(why)})."
                        f"</p>{_skipped(plan)}")
            continue
        zone = rows[0].zone
        body.append(f"<h3>{escape(head)}</h3><p class=\"muted\">cadence "
                    f"{escape(str(plan.cadence))}, day 0 {plan.day0}, owner "
                    f"{escape(_owner(deal, plan, zone))}</p><table><tr><th>step</th>"
                    "<th>due</th><th>reminder (owner's time)</th><th>create on</th>"
                    "<th>channel</th><th>priority</th><th>contact</th><th>subject</th></tr>")
        for row in rows:
            task = row.task
            moved = (f' <span class="moved">moved from {task.moved_from}</span>'
                     if task.moved_from else "")
            body.append(f"<tr><td>{escape(task.step)} #{task.occurrence}</td><td>"
                        f"{task.due_date}{moved}</td><td>{_local(task.remind_at, row.zone)}"
                        f"</td><td>{task.create_on}</td><td>{escape(str(task.channel))}</td>"
                        f"<td>{escape(str(task.priority))}</td><td>"
                        f"{escape(task.contact_id or '')}</td><td>{escape(row.subject)}</td></tr>")
        body.append(f"</table>{_skipped(plan)}")
    return _page("winback plan", "".join(body))


def report_html(payload: dict[str, Any]) -> str:
    rows = payload["by_cadence"]
    labels = [f"{r['cadence']} / {r['loss_reason']}" for r in rows]
    body = [f"<h1>Win-back report</h1><p class=\"muted\">Deals lost since {payload['since']}: "
            f"{sum(r['enrolled'] for r in rows)} enrolled, "
            f"{sum(r['reborn_365d'] for r in rows)} reborn within a year, "
            f"{sum(r['amount_won_back'] for r in rows):,.0f} won back.</p>",
            '<p class="legend"><span><i class="dot" style="background:#98a2b3"></i>enrolled'
            '</span><span><i class="dot" style="background:#2e90fa"></i>reborn &le;90d</span>'
            '<span><i class="dot" style="background:#7a5af8"></i>&le;180d</span><span>'
            '<i class="dot" style="background:#12b76a"></i>&le;365d</span></p>',
            "<h2>Reborn by cadence and loss reason</h2>",
            _bars("reborn by cadence and loss reason", labels, [
                ("enrolled", "#98a2b3", [float(r["enrolled"]) for r in rows]),
                ("reborn within 90 days", "#2e90fa", [float(r["reborn_90d"]) for r in rows]),
                ("reborn within 180 days", "#7a5af8", [float(r["reborn_180d"]) for r in rows]),
                ("reborn within 365 days", "#12b76a", [float(r["reborn_365d"]) for r in rows]),
            ]),
            "<table><tr><th>cadence</th><th>loss reason</th><th>enrolled</th><th>reborn "
            "&le;90d</th><th>&le;180d</th><th>&le;365d</th><th>won back</th><th>amount won "
            "back</th></tr>"]
    body += [f"<tr><td>{escape(r['cadence'])}</td><td>{escape(r['loss_reason'])}</td>"
             f"<td>{r['enrolled']}</td><td>{r['reborn_90d']}</td><td>{r['reborn_180d']}</td>"
             f"<td>{r['reborn_365d']}</td><td>{r['won_back']}</td>"
             f"<td>{r['amount_won_back']:,.0f}</td></tr>" for r in rows]
    body.append("</table>")
    steps = payload["by_step"]
    body.append("<h2>Tasks written and completed per step</h2><p class=\"legend\"><span>"
                '<i class="dot" style="background:#2e90fa"></i>written</span><span>'
                '<i class="dot" style="background:#12b76a"></i>completed in the CRM</span></p>')
    body.append(_bars("tasks written vs completed per step",
                      [f"{s['cadence']} / {s['step']}" for s in steps], [
                          ("written", "#2e90fa", [float(s["written"]) for s in steps]),
                          ("completed", "#12b76a", [float(s["completed"]) for s in steps])]))
    if "by_step_outcome" in payload:
        body += _outcome_sections(payload)
    from worker.views.reportview import completion_note

    body += experiment_sections(payload)

    body.append(f'<p class="muted">{escape(completion_note(payload))}</p>')
    return _page("winback report", "".join(body))


def _legend(items: list[tuple[str, str]]) -> str:
    return '<p class="legend">' + "".join(
        f'<span><i class="dot" style="background:{color}"></i>{escape(name)}</span>'
        for name, color in items) + "</p>"


def _columns(title: str, labels: list[str], values: list[int], chart: str) -> str:
    """Vertical columns, one per label (the distribution of days from loss to rebirth)."""
    height, bottom, top = 220, 30, 20
    step = (WIDTH - 60) / max(len(labels), 1)
    peak = max([*values, 1])
    parts = [f'<svg role="img" aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {height}" '
             f'xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{chart}">',
             f'<line x1="40" y1="{height - bottom}" x2="{WIDTH - 10}" y2="{height - bottom}" '
             'stroke="#98a2b3"/>']
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = (height - bottom - top - 14) * value / peak
        x = 50 + index * step
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{height - bottom - h:.1f}" '
                     f'width="{step * 0.7:.1f}" height="{h:.1f}" fill="#7a5af8"><title>'
                     f"{escape(label)}: {value}</title></rect>"
                     f'<text x="{x + step * 0.35:.1f}" y="{height - bottom - h - 4:.1f}" '
                     f'font-size="11" text-anchor="middle">{value}</text>'
                     f'<text class="label" x="{x + step * 0.35:.1f}" y="{height - 10}" '
                     f'font-size="12" text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def _outcome_sections(payload: dict[str, Any]) -> list[str]:
    """The outcome report: a funnel per step, why cadences ended, win-back rates with their
    n, the last touch before each rebirth and the days from loss to rebirth."""
    steps = [s for s in payload["by_step_outcome"] if s["written"] or s["skipped"]]
    funnel = [("written", "#2e90fa"), ("completed", "#12b76a"), ("completed on time",
                                                                 "#027a48"),
              ("open and overdue", "#f79009"), ("skipped", "#98a2b3")]
    body = ["<h2>Per step: written, completed, overdue, skipped</h2>", _legend(funnel)]
    if steps:
        body.append(_bars("funnel per step", [f"{s['cadence']} / {s['step']}" for s in steps], [
            (name, color, [float(s[key]) for s in steps]) for (name, color), key in zip(
                funnel, ("written", "completed", "on_time", "overdue", "skipped"),
                strict=True)]).replace('class="chart"', 'class="chart" data-chart="funnel"', 1))
    body.append("<table><tr><th>cadence</th><th>step</th><th>written</th><th>completed on "
                "time</th><th>late</th><th>open</th><th>overdue</th><th>skipped (by reason)"
                "</th><th>completion rate</th></tr>")
    for s in steps:
        reasons = ", ".join(f"{k} {v}" for k, v in s["skipped_by"].items())
        body.append(f"<tr><td>{escape(s['cadence'])}</td><td>{escape(s['step'])}</td>"
                    f"<td>{s['written']}</td><td>{s['on_time']}</td><td>{s['late']}</td>"
                    f"<td>{s['open']}</td><td>{s['overdue']}</td><td>{s['skipped']}"
                    f"{' (' + escape(reasons) + ')' if reasons else ''}</td>"
                    f"<td>{_pct(s['completion_rate'])}</td></tr>")
    body.append("</table>")
    from worker.views.reports import DIMENSION_LABELS, EXIT_REASONS, REBORN_WINDOWS

    exits = payload.get("exits", [])
    totals = {reason: sum(int(r.get(reason, 0)) for r in exits) for reason in EXIT_REASONS}
    totals.update({k: sum(int(r.get(k, 0)) for r in exits) for r in exits for k in r
                   if k not in ("cadence", "total") and k not in totals})
    shown = [(k, v) for k, v in totals.items() if v]
    body.append("<h2>Why cadences ended</h2>")
    if shown:
        body.append(_bars("exit reasons", [k for k, _ in shown],
                          [("deals", "#f04438", [float(v) for _, v in shown])])
                    .replace('class="chart"', 'class="chart" data-chart="exits"', 1))
    body.append("<table><tr><th>cadence</th>" + "".join(
        f"<th>{escape(k)}</th>" for k, _ in shown) + "</tr>")
    body += ["<tr><td>" + escape(str(r["cadence"])) + "</td>" + "".join(
        f"<td>{r.get(k, 0)}</td>" for k, _ in shown) + "</tr>" for r in exits]
    body.append("</table>")
    body.append("<h2>Win-back rate over the last 90 / 180 / 365 days</h2><p class=\"muted\">"
                "won back / deals lost in the window (n): a small n is a small sample.</p>")
    for dimension, values in payload.get("winback_rates", {}).items():
        label = DIMENSION_LABELS.get(dimension, dimension)
        body.append(f"<h3>By {escape(label)}</h3><table><tr><th>{escape(label)}</th>" + "".join(
            f"<th>&le;{d}d won / n</th><th>rate</th><th>amount</th>" for d in REBORN_WINDOWS)
            + "</tr>")
        for r in values:
            cells = "".join(
                f"<td>{r[f'{d}d']['won_back']} / {r[f'{d}d']['n']}</td>"
                f"<td>{_pct(r[f'{d}d']['rate'])}</td><td>{r[f'{d}d']['amount']:,.0f}</td>"
                for d in REBORN_WINDOWS)
            body.append(f"<tr><td>{escape(str(r['value']))}</td>{cells}</tr>")
        body.append("</table>")
    reborn = payload.get("reborn") or {}
    buckets = reborn.get("days_to_rebirth", [])
    body.append(f"<h2>Days from loss to rebirth</h2><p class=\"muted\">{reborn.get('count', 0)}"
                f" reborn deal(s); median {reborn.get('median_days')} day(s).</p>")
    if buckets:
        body.append(_columns("days from loss to rebirth", [b["bucket"] for b in buckets],
                             [int(b["count"]) for b in buckets], "rebirth"))
    body.append("<h2>Last touch completed before rebirth</h2><table><tr><th>cadence / step"
                "</th><th>deals</th></tr>")
    body += [f"<tr><td>{escape(t['touch'])}</td><td>{t['count']}</td></tr>"
             for t in reborn.get("last_touch", [])]
    shown_deals = reborn.get("deals", [])
    if len(shown_deals) > 500:
        body.append(f'</table><p class="muted">The first 500 of {len(shown_deals)} reborn deals; '
                    "the JSON and CSV reports list them all.</p><table>")
    else:
        body.append("</table><table>")
    body.append("<tr><th>deal</th><th>cadence</th><th>reborn as</th><th>lost on"
                "</th><th>days</th><th>last completed touch</th></tr>")
    body += [f"<tr><td>{escape(d['deal_id'])}</td><td>{escape(d['cadence'])}</td><td>"
             f"{escape(str(d['reason']))}</td><td>{d['lost_on']}</td><td>{d['days']}</td><td>"
             f"{escape(d['last_touch'] or '(none)')}</td></tr>"
             for d in reborn.get("deals", [])[:500]]
    body.append("</table>")
    return body
