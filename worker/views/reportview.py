"""`winback report` as terminal tables: compact enough for 80 columns, labels never cut,
zero counts left blank so the numbers that matter stand out, and a word on where task
completion comes from."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

# (payload key, header) of the deal table; headers wrap onto two lines to keep it narrow.
DEAL_COLUMNS = (("enrolled", "enrolled"), ("reborn_90d", "reborn\n≤90d"),
                ("reborn_180d", "\n≤180d"), ("reborn_365d", "\n≤365d"), ("won_back", "won\nback"))
LABELS = {"step": "cadence · step", "cadence": "cadence · loss reason"}
TEXT_KEYS = {"cadence", "step", "loss_reason"}


def _count(value: Any) -> str:
    """A count, blank when zero: a column of zeros is noise, not information."""
    return "" if not value else f"{value:,}" if isinstance(value, int) else str(value)


def _table(title: str, label: str, headers: list[str],
           groups: list[tuple[str, list[tuple[str, list[str]]]]], room: int) -> Table:
    """One bold row per cadence, then its indented rows. The label column is at least as wide
    as the longest cadence or step id (ids have no spaces to wrap at) and free text such as a
    loss reason wraps at spaces; number columns are exactly as wide as they need. Every width
    is fixed here so that the table fits `room` columns whenever the ids do."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False, padding=(0, 1), collapse_padding=True)
    widths = [max([cell_len(line) for line in header.splitlines()]
                  + [cell_len(cells[index]) for _, rows in groups for _, cells in rows])
              for index, header in enumerate(headers)]
    ids = [name for name, _ in groups]
    ids += [f"  {text}" for _, rows in groups for text, _ in rows if " " not in text]
    wanted = max(cell_len(text) for text in
                 [label, *ids, *(f"  {text}" for _, rows in groups for text, _ in rows)])
    floor = max(cell_len(text) for text in [label, *ids])
    free = room - sum(widths) - 2 * len(widths)  # padding and divider between columns
    table.add_column(label, overflow="fold", width=max(floor, min(wanted, free)))
    for header, width in zip(headers, widths, strict=True):
        table.add_column(header, justify="right", no_wrap=True, width=width)
    for name, rows in groups:
        table.add_row(Text(name, style="bold"), *([""] * len(headers)))
        for row_label, cells in rows:
            table.add_row(Padding(row_label, (0, 0, 0, 2)), *cells)
    return table


def _grouped(rows: list[dict[str, Any]], label: str, cells: Any
             ) -> list[tuple[str, list[tuple[str, list[str]]]]]:
    groups: list[tuple[str, list[tuple[str, list[str]]]]] = []
    for row in rows:
        if not groups or groups[-1][0] != str(row["cadence"]):
            groups.append((str(row["cadence"]), []))
        groups[-1][1].append((str(row[label]), cells(row)))
    return groups


def deal_table(payload: dict[str, Any], room: int = 80) -> RenderableType:
    rows = payload["by_cadence"]
    title = f"Win-back report: deals lost since {payload['since']}"
    if not rows:
        return Text(f"{title}: no deals enrolled in that window.")
    show_amount = any(r.get("amount_won_back") for r in rows)
    headers = [h for _, h in DEAL_COLUMNS] + (["amount\nwon"] if show_amount else [])

    def cells(row: dict[str, Any]) -> list[str]:
        found = [_count(row.get(key)) for key, _ in DEAL_COLUMNS]
        if show_amount:
            found.append(f"{row['amount_won_back']:,.0f}" if row["amount_won_back"] else "")
        return found

    return _table(title, LABELS["cadence"], headers, _grouped(rows, "loss_reason", cells), room)


def step_table(payload: dict[str, Any], room: int = 80) -> RenderableType:
    steps = payload["by_step"]
    if not steps:
        return Text("Tasks per step: none yet.")
    keys = [k for k in steps[0] if k not in TEXT_KEYS]
    return _table("Tasks per step", LABELS["step"], keys,
                  _grouped(steps, "step", lambda row: [_count(row.get(k)) for k in keys]), room)


OUTCOME_COLUMNS = (("written", "written"), ("on_time", "done\non time"), ("late", "\nlate"),
                   ("open", "open"), ("overdue", "\noverdue"), ("skipped", "skipped"))


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value:.0%}"


def outcome_table(payload: dict[str, Any], room: int = 80) -> RenderableType:
    """Per cadence and step: written, done on time / late, open / overdue, skipped, and the
    share of written tasks completed; then the skips by reason."""
    steps = [r for r in payload["by_step_outcome"] if r["written"] or r["skipped"]]
    if not steps:
        return Text("Tasks per step: none yet.")
    headers = [h for _, h in OUTCOME_COLUMNS] + ["done\n%"]

    def cells(row: dict[str, Any]) -> list[str]:
        return [_count(row.get(k)) for k, _ in OUTCOME_COLUMNS] + [
            _percent(row.get("completion_rate"))]

    table = _table("Tasks per step", LABELS["step"], headers,
                   _grouped(steps, "step", cells), room)
    reasons = [f"{r['cadence']} · {r['step']}: " + ", ".join(
        f"{k} {v}" for k, v in r["skipped_by"].items()) for r in steps if r["skipped_by"]]
    if not reasons:
        return table
    return Group(table, Text("skipped, by reason:"),
                 *(Text(f"  {line}") for line in reasons), Text(""))


def exit_table(payload: dict[str, Any], room: int = 80) -> RenderableType:
    """Why cadences ended (or not yet), per cadence: only the reasons that happened."""
    exits = payload.get("exits", [])
    if not exits:
        return Text("Why cadences ended: no deals enrolled in that window.")
    groups = [(str(r["cadence"]), [(k, [_count(v)]) for k, v in r.items()
                                   if k not in ("cadence", "total") and v])
              for r in exits]
    return _table("Why cadences ended", "cadence · exit", ["deals"], groups, room)


def winback_tables(payload: dict[str, Any], room: int = 80) -> RenderableType:
    """Win-back rate (won back / lost in the window, n shown) and amount by cadence, loss
    reason, competitor and owner, over the last 90, 180 and 365 days."""
    from worker.views.reports import DIMENSION_LABELS, REBORN_WINDOWS

    parts: list[RenderableType] = []
    windows = [f"{d}d" for d in REBORN_WINDOWS]
    headers = [h for w in windows for h in (f"≤{w}\nwon/n", "\nrate")] + ["amount\n≤365d"]
    for dimension, values in payload.get("winback_rates", {}).items():
        if not values:
            continue
        label = DIMENSION_LABELS.get(dimension, dimension)

        def cells(row: dict[str, Any]) -> list[str]:
            out = []
            for w in windows:
                cell = row[w]
                out += [f"{cell['won_back']}/{cell['n']}" if cell["n"] else "",
                        _percent(cell["rate"])]
            amount = row[windows[-1]]["amount"]
            return [*out, f"{amount:,.0f}" if amount else ""]

        rows = [(str(r["value"]), cells(r)) for r in values]
        parts.append(_table(f"Win-back rate by {label}", label, headers, [(label, rows)],
                            room))
    return Group(*parts) if parts else Text("Win-back rates: no deals lost in the last year.")


def reborn_summary(payload: dict[str, Any], room: int = 80) -> RenderableType:
    reborn = payload.get("reborn") or {}
    if not reborn.get("count"):
        return Text("Reborn deals: none yet.")
    spread = ", ".join(f"{b['bucket']} {b['count']}" for b in reborn["days_to_rebirth"]
                       if b["count"])
    head = Text(f"Reborn deals: {reborn['count']}; days from loss to rebirth: {spread}; "
                f"median {reborn['median_days']} days.")
    groups: list[tuple[str, list[tuple[str, list[str]]]]] = []
    for item in reborn["last_touch"]:
        cadence, step = str(item["touch"]).split(" / ", 1)
        if not groups or groups[-1][0] != cadence:
            groups.append((cadence, []))
        groups[-1][1].append((step, [_count(item["count"])]))
    return Group(head, _table("Last touch completed before rebirth", "cadence · step",
                              ["deals"], groups, room))


def _share(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _span(low: float | None, high: float | None, signed: bool = False) -> str:
    if low is None or high is None:
        return ""
    form = "{:+.1f}" if signed else "{:.1f}"
    return f"{form.format(low * 100)} to {form.format(high * 100)}"


def experiment_tables(payload: dict[str, Any], room: int = 80) -> RenderableType:
    """Per experiment: per arm and window, reborn of the deals whose window has passed, the
    rate with its 95% interval, the difference from the control in points with its
    interval; then deals and won back per arm, and the verdict."""
    parts: list[RenderableType] = []
    for e in payload.get("experiments", []):
        groups: list[tuple[str, list[tuple[str, list[str]]]]] = []
        passed = [w for w in e["arms"][0]["windows"]
                  if any(a["windows"][w]["eligible"] for a in e["arms"])] or ["90"]
        for arm in e["arms"]:
            rows = []
            for window in passed:  # (a window no deal has had yet stays out)
                cell = arm["windows"][window]
                rows.append((f"≤{window}d", [
                    f"{cell['reborn']}/{cell['eligible']}" if cell["eligible"] else "",
                    _share(cell["rate"]),
                    _span(cell["ci_low"], cell["ci_high"]) if cell["eligible"] else "",
                    "" if cell.get("diff") is None else f"{cell['diff'] * 100:+.1f}",
                    _span(cell.get("diff_ci_low"), cell.get("diff_ci_high"), signed=True)]))
            label = f"{arm['arm']} (control)" if arm["arm"] == e["control"] else arm["arm"]
            groups.append((label, rows))
        title = (f"Experiment {e['experiment']} on cadence {e['cadence']}"
                 + ("" if e["current"] else " (no longer in the rules)"))
        headers = ["reborn/n", "rate", "95% CI", "vs\ncontrol", "95% CI"]
        arms = ", ".join(f"{a['arm']} {a['deals']:,} deals, {a['won_back']:,} won back"
                         for a in e["arms"])
        parts += [_table(title, "arm · window", headers, groups, room),
                  Text(f"  {arms}"), Text(f"  verdict: {e['verdict']}"), Text("")]
    return Group(*parts) if parts else Text("Experiments: none in the ledger.")


def completion_note(payload: dict[str, Any]) -> str:
    if payload.get("completion") == "crm":
        return "completed: read from the CRM just now."
    return ("completed: what winback last read from the CRM, which it does only when asked: "
            "add --from-crm to read task completion now (it needs the CRM credentials).")


def print_report(payload: dict[str, Any], console: Console) -> None:
    room = console.width
    if "by_step_outcome" in payload:
        console.print(Group(deal_table(payload, room), outcome_table(payload, room),
                            exit_table(payload, room), winback_tables(payload, room),
                            reborn_summary(payload, room), experiment_tables(payload, room)))
    else:
        console.print(Group(deal_table(payload, room), step_table(payload, room)))
    console.print(completion_note(payload), soft_wrap=False)
