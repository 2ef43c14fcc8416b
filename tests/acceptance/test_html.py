"""The HTML pages in a real browser: `plan --format html` and `report --format html` render in
headless Chromium with no console message, show one timeline row per step, load nothing from
outside the file, and give a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.unit.harness import World
from worker.cli import app
from worker.settings import load_config
from worker.settings.loader import default_config_dir

ROOT = Path(__file__).resolve().parent.parent.parent
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("Chromium is not installed (.ci/run installs Debian's chromium)")
    return found


def browse(page: Path, tmp: Path, screenshot: Path | None = None) -> tuple[str, list[str]]:
    """The DOM after load, and the console lines Chromium logged."""
    args = [chromium(), *FLAGS, f"--user-data-dir={tmp / 'profile'}"]
    dom = subprocess.run([*args, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120)
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    if screenshot is not None:
        subprocess.run([*args, "--window-size=1200,1800", f"--screenshot={screenshot}",
                        page.as_uri()], capture_output=True, timeout=120, cwd=tmp)
    return dom.stdout, console


def assert_self_contained(html: str) -> None:
    assert not re.search(r"<script", html, re.I)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.I)
    assert "@import" not in html and "url(" not in html


def test_the_browser_check_catches_console_errors(tmp_path: Path) -> None:
    """Negative control: a page that throws is reported."""
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>throw new Error('boom')</script></body></html>")
    _, console = browse(page, tmp_path)
    assert any("boom" in line for line in console)


def test_plan_html_renders_every_step_without_console_errors(tmp_path: Path) -> None:
    """The plan page: one timeline per cadence with steps, one row per step, tasks per deal."""
    page = tmp_path / "plan.html"
    config = default_config_dir() / "winback.yaml"
    result = CliRunner().invoke(app, ["plan", str(config), "--deals",
                                      str(ROOT / "worker" / "samples" / "deals.jsonl"),
                                      "--now", "2026-11-20T15:00:00Z", "--format", "html",
                                      "-o", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert_self_contained(html)
    dom, console = browse(page, tmp_path, tmp_path / "plan.png")
    assert console == []
    cadences = load_config(config, require_env=False).cadences
    for cadence in cadences:
        block = re.search(rf'data-cadence="{re.escape(cadence.id)}".*?</svg>', dom, re.S)
        if not cadence.steps:
            assert block is None
            continue
        assert block is not None, cadence.id
        rows = re.findall(r'<g class="step" data-step="([^"]+)"', block.group(0))
        assert rows == [s.id for s in cadence.steps]
    assert dom.count('class="occurrence"') > 20
    assert (tmp_path / "plan.png").stat().st_size > 10_000


def test_report_html_charts_the_winback_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                               ) -> None:
    """The report page: bars for reborn deals by cadence and for tasks per step."""
    world = World(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}", monkeypatch)
    try:
        world.lost("D1", account="A1", closed=date(2027, 3, 1))
        world.lost("D2", account="A2", closed=date(2027, 3, 1), loss_reason="No decision")
        world.tick()
        world.advance(days=20)
        world.crm.admin_update_deal("D1", is_closed=False)
        world.tick()
    finally:
        world.close()
    page = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(world.path), "--since", "3y", "--format",
                                      "html", "-o", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text()
    assert_self_contained(html)
    dom, console = browse(page, tmp_path, tmp_path / "report.png")
    assert console == []
    assert dom.count('class="chart"') == 2
    assert dom.count('class="bar"') >= 8
    assert "lost-to-competitor" in dom and "lost-to-no-decision" in dom
    assert (tmp_path / "report.png").stat().st_size > 5_000
