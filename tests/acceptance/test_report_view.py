"""`winback report` as a new user reads it: an 80-column terminal shows every label whole,
zero counts do not clutter the tables, and the report says where task completion comes from
(and how to read it from the CRM). The HTML report keeps long labels whole too."""

from __future__ import annotations

import io
import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

import worker.cli.app as app_module
from tests.unit.harness import World
from worker.cli.commands import _print_report
from worker.cli.main import app
from worker.views.html import report_html

LONG_REASON = "Chose an incumbent vendor after a lengthy security review"


def _payload() -> dict[str, Any]:
    zero = {"reborn_90d": 0, "reborn_180d": 0, "reborn_365d": 0, "won_back": 0,
            "amount_lost": 0.0, "amount_won_back": 0.0}
    return {"since": "2026-01-01", "by_cadence": [
        {"cadence": "lost-to-competitor-enterprise", "loss_reason": LONG_REASON,
         "enrolled": 12, **zero, "reborn_90d": 2, "reborn_180d": 3, "reborn_365d": 3,
         "won_back": 1, "amount_won_back": 48000.0},
        {"cadence": "lost-to-no-decision", "loss_reason": "No decision", "enrolled": 7,
         **zero},
    ], "by_step": [
        {"cadence": "lost-to-competitor-enterprise", "step": "ask-post-mortem-call",
         "planned": 12, "written": 12, "completed": 0, "cancelled": 0},
        {"cadence": "lost-to-no-decision", "step": "thank-you", "planned": 7, "written": 7,
         "completed": 0, "cancelled": 0},
    ]}


def _printed(monkeypatch: pytest.MonkeyPatch, payload: dict[str, Any], width: int = 80) -> str:
    out = io.StringIO()
    monkeypatch.setattr(app_module, "table_console",
                        lambda: Console(file=out, width=width, highlight=False,
                                        color_system=None))
    _print_report(payload)
    return out.getvalue()


def test_report_fits_80_columns_and_cuts_no_label(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ellipsis, no line past 80 columns, every word of every label and header shown."""
    text = _printed(monkeypatch, _payload())
    assert "…" not in text and "..." not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    deals, steps = text.split("Tasks per step", 1)
    for table, labels in ((deals, ("lost-to-competitor-enterprise", "lost-to-no-decision",
                                   *LONG_REASON.split(), "enrolled", "≤90d", "≤180d", "≤365d",
                                   "48,000")),
                          (steps, ("lost-to-competitor-enterprise", "lost-to-no-decision",
                                   "ask-post-mortem-call", "thank-you", "planned", "written",
                                   "completed", "cancelled"))):
        words = set(table.split())
        for label in labels:
            assert label in words, (label, table)


def test_report_leaves_zero_counts_blank(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deal row with nothing reborn or won back shows its enrolled count and no run of
    zeros; a column that is zero everywhere (amount won back) is not shown at all."""
    text = _printed(monkeypatch, _payload(), width=120)
    row = next(line for line in text.splitlines() if "No decision" in line)
    assert re.findall(r"\d+", row) == ["7"], row
    step = next(line for line in text.splitlines() if "thank-you" in line)
    assert re.findall(r"\d+", step) == ["7", "7"], step
    payload = _payload()
    payload["by_cadence"][0]["amount_won_back"] = 0.0
    assert "amount" not in _printed(monkeypatch, payload, width=120)


def test_report_says_how_to_read_completion_from_the_crm(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --from-crm the completed column is whatever was last read: the report says so
    and names the flag that reads it now."""
    world = World(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}", monkeypatch)
    try:
        world.lost("D1", account="A1", closed=date(2027, 3, 1))
        world.tick()
    finally:
        world.close()
    result = CliRunner().invoke(app, ["report", str(world.path), "--since", "3y"])
    assert result.exit_code == 0, result.output
    assert "Win-back report" in result.output
    assert re.search(r"completed: .*add --from-crm to read task completion now",
                     " ".join(result.output.split()))


def test_report_html_keeps_long_labels_whole() -> None:
    """The bar labels of the HTML report are wrapped, never truncated, and the page carries
    the completion note."""
    html = report_html(_payload())
    labels = re.findall(r'<text class="label"[^>]*>(.*?)</text>', html)
    shown = " ".join(re.sub(r"<[^>]+>", " ", label) for label in labels).split()
    for word in ("lost-to-competitor-enterprise", *LONG_REASON.split(), "ask-post-mortem-call"):
        assert word in shown, (word, shown)
    assert "…" not in html
    assert "--from-crm" in html
