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


def completion_note(payload: dict[str, Any]) -> str:
    if payload.get("completion") == "crm":
        return "completed: read from the CRM just now."
    return ("completed: what winback last read from the CRM, which it does only when asked: "
            "add --from-crm to read task completion now (it needs the CRM credentials).")


def print_report(payload: dict[str, Any], console: Console) -> None:
    room = console.width
    console.print(Group(deal_table(payload, room), step_table(payload, room)))
    console.print(completion_note(payload), soft_wrap=False)
