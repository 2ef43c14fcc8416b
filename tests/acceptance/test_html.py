"""The HTML pages in a real browser: `plan --format html` and `report --format html` render in
headless Chromium with no console message, show one timeline row per step, load nothing from
outside the file, and give a screenshot."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zlib
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.unit.harness import World
from worker.cadence.engine import Planner
from worker.cli.dealsfile import read_deals
from worker.cli.main import app
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


def screenshot(page: Path, tmp: Path, png: Path) -> None:
    """Only a screenshot of the page (one browser start)."""
    subprocess.run([chromium(), *FLAGS, f"--user-data-dir={tmp / 'profile'}",
                    "--window-size=1000,950", f"--screenshot={png}", page.as_uri()],
                   capture_output=True, timeout=120, cwd=tmp)
    assert png.exists() and png.stat().st_size > 0, png


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


def _report_in_browser(world: World, tmp_path: Path) -> str:
    """`winback report --format html` of the world's ledger, checked self-contained, then
    rendered in the browser (screenshot: tmp_path/report.png) without a console message."""
    page = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["report", str(world.path), "--since", "3y", "--format",
                                      "html", "-o", str(page)])
    assert result.exit_code == 0, result.output
    assert_self_contained(page.read_text())
    dom, console = browse(page, tmp_path, tmp_path / "report.png")
    assert console == []
    return str(dom)


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
    dom = _report_in_browser(world, tmp_path)
    assert dom.count('class="chart">') == 2  # (the outcome charts carry a data-chart name)
    assert dom.count('class="bar"') >= 8
    assert "lost-to-competitor" in dom and "lost-to-no-decision" in dom
    assert (tmp_path / "report.png").stat().st_size > 5_000


def _deal(deal_id: str, closed: str, loss_reason: str, owner: dict[str, object],
          contract_end: str | None = None) -> str:
    return json.dumps({
        "id": deal_id, "name": f"Deal {deal_id}", "account_id": f"A{deal_id}",
        "account_name": f"Account {deal_id}", "stage": "Closed Lost", "closed_at": closed,
        "amount": 1000, "loss_reason": loss_reason, "competitor": "Globex",
        "contract_end": contract_end, "owner": owner,
        "contacts": [{"id": f"C{deal_id}", "name": "Dana Whitfield", "email": "d@x.example"}],
    })


def _text(html: str) -> str:
    """The page as a reader sees it: tags dropped, entities decoded, spaces collapsed."""
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def _detail_page(tmp_path: Path) -> tuple[Path, Path]:
    """A deals file with an owner in Tokyo, one in London, a disqualified deal and a deal whose
    early steps are past due; and its plan page. Returns (deals file, page)."""
    tokyo = {"id": "005T1", "name": "Kenji Sato", "timezone": "Asia/Tokyo", "country": "JP",
             "active": True}
    london = {"id": "005L1", "name": "Tom Reed", "timezone": "Europe/London", "country": "GB",
              "active": True}
    deals = tmp_path / "deals.jsonl"
    deals.write_text("\n".join([
        _deal("D1", "2026-10-21", "Lost to competitor", tokyo),
        _deal("D2", "2026-11-19", "Lost to competitor", london, contract_end="2028-06-30"),
        _deal("D3", "2026-11-18", "Disqualified", london),
        _deal("D4", "2026-11-17", "No budget", london),
    ]) + "\n")
    page = tmp_path / "plan.html"
    result = CliRunner().invoke(app, ["plan", str(default_config_dir() / "winback.yaml"),
                                      "--deals", str(deals), "--now", "2026-11-20T15:00:00Z",
                                      "--format", "html", "-o", str(page)])
    assert result.exit_code == 0, result.output
    return deals, page


def test_plan_html_shows_what_the_planner_decided(tmp_path: Path) -> None:
    """Per cadence the number of deals the planner put in it (a deal whose cadence has no
    steps counts too); every skipped step with its reason; a moved task marked with a ring
    wider than its dot; the owner's name from the deals file; reminders in the owner's time
    zone; the priority of each task."""
    deals, page = _detail_page(tmp_path)
    config = default_config_dir() / "winback.yaml"
    html = page.read_text()
    text = _text(html)
    planner = Planner(load_config(config, require_env=False))
    moment = datetime(2026, 11, 20, 15, tzinfo=UTC)
    plans = [planner.plan(d, moment) for d in read_deals(deals)]
    expected = Counter(p.cadence for p in plans if p.cadence)
    assert expected["disqualified"] == 1 and expected["lost-to-competitor"] == 2
    for cadence in planner.config.cadences:
        count = expected.get(cadence.id, 0)
        assert re.search(rf"Cadence {re.escape(cadence.id)} \d+ step\(s\); {count} deal\(s\)",
                         text), (cadence.id, count)
    skipped = [(s.step, s.occurrence, s.reason) for p in plans for s in p.skipped]
    assert any("past due" in r for _, _, r in skipped) and skipped
    for step, occurrence, reason in skipped:
        assert re.search(rf"{re.escape(step)} #{occurrence}( due \S+)?: {re.escape(reason)}",
                         text), (step, reason)
    dots = re.findall(r'<circle class="occurrence" cx="([\d.]+)" cy="(\d+)" r="(\d+)"[^>]*>'
                      r"<title>([^<]*)</title>", html)
    moved = [(x, y, r) for x, y, r, title in dots if "moved from" in title]
    rings = re.findall(r'<circle class="moved-marker" cx="([\d.]+)" cy="(\d+)" r="(\d+)"', html)
    assert moved and len(rings) == len(moved)
    for (x, y, r), (rx, ry, rr) in zip(moved, rings, strict=True):
        assert (x, y) == (rx, ry) and int(rr) > int(r)
    assert "moved from" in text
    assert "owner Kenji Sato (005T1)" in text and "owner Tom Reed (005L1)" in text
    d1 = text.split("Deal D1", 1)[1].split("Deal D2", 1)[0]
    times = re.findall(r"\d{4}-\d\d-\d\d (\d\d:\d\d) ([A-Z]{3,4}) \d{4}-\d\d-\d\d", d1)
    assert times and set(times) == {("09:00", "JST")}, times
    d2 = text.split("Deal D2", 1)[1].split("Deal D3", 1)[0]
    assert {t[1] for t in re.findall(r"(\d\d:\d\d) (GMT|BST) ", d2)} <= {"GMT", "BST"}
    assert re.findall(r"\d\d:\d\d (GMT|BST) ", d2)
    assert "priority" in text and re.search(r"\b(call|email|todo) high\b", d2)
    assert re.search(r"\b(call|email|todo) normal\b", d2)


def test_plan_html_details_render_in_the_browser(tmp_path: Path) -> None:
    """The same page in Chromium: no console message, and the details above are in the DOM."""
    _, page = _detail_page(tmp_path)
    dom, console = browse(page, tmp_path)
    assert console == []
    assert dom.count('class="moved-marker"') >= 1 and "Skipped steps" in dom
    assert "Kenji Sato (005T1)" in dom and " JST" in dom and ">high<" in dom


def _pixels(png: Path) -> list[tuple[int, int, int]]:
    """The RGB pixels of a PNG Chromium wrote (8-bit RGB or RGBA, not interlaced)."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, b"", b""
    while pos < len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + size]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks += body
        pos += 12 + size
    width, height = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
    depth, color, interlace = header[8], header[9], header[12]
    assert depth == 8 and color in (2, 6) and interlace == 0, header
    step = 3 if color == 2 else 4
    raw = zlib.decompress(chunks)
    stride = width * step
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        line = raw[y * (stride + 1):(y + 1) * (stride + 1)]
        method, row = line[0], bytearray(line[1:])
        for x in range(stride):
            left = row[x - step] if x >= step else 0
            up, corner = previous[x], previous[x - step] if x >= step else 0
            if method == 1:
                row[x] = (row[x] + left) & 0xFF
            elif method == 2:
                row[x] = (row[x] + up) & 0xFF
            elif method == 3:
                row[x] = (row[x] + (left + up) // 2) & 0xFF
            elif method == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                row[x] = (row[x] + (left if pa <= pb and pa <= pc else up if pb <= pc
                                    else corner)) & 0xFF
        rows.append(row)
        previous = row
    return [(r[x], r[x + 1], r[x + 2]) for r in rows for x in range(0, stride, step)]


def _near(pixels: list[tuple[int, int, int]], color: str) -> int:
    want = tuple(int(color[i:i + 2], 16) for i in (1, 3, 5))
    return sum(1 for p in pixels if all(abs(a - b) <= 12 for a, b in zip(p, want, strict=True)))


def test_report_html_draws_the_outcome_charts_in_the_browser(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The outcome report page (funnel per step, exit reasons, days to rebirth) in headless
    Chromium: no console message, nothing loaded from outside; each chart, shot on its own,
    shows its bars in its colours (a chart with no bar, or one the browser does not draw,
    fails)."""
    world = World(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}", monkeypatch)
    try:
        for n in range(1, 6):
            world.lost(f"D{n}", account=f"A{n}", closed=date(2027, 2, 20 + n),
                       loss_reason="No decision" if n % 2 else "Lost to competitor")
        world.tick()
        world.advance(days=9)
        world.tick()
        for task in world.crm.admin_tasks()[::2]:
            world.crm.admin_complete_task(task.crm_id)
        world.advance(days=2)
        world.crm.admin_update_deal("D1", is_closed=False)
        world.crm.admin_update_deal("D2", is_won=True)
        world.tick()
    finally:
        world.close()
    dom = _report_in_browser(world, tmp_path)
    assert (tmp_path / "report.png").stat().st_size > 10_000
    colours = {"funnel": "#2e90fa", "exits": "#f04438", "rebirth": "#7a5af8"}
    charts = []
    for chart, colour in colours.items():
        found = re.search(rf'<svg[^>]*data-chart="{chart}".*?</svg>', dom, re.S)
        assert found is not None, chart
        sizes = [float(w) for w in re.findall(r'<rect class="bar"[^>]*?(?:width|height)='
                                              r'"([\d.]+)"[^>]*fill="' + colour, found.group(0))]
        assert sizes and max(sizes) > 0, chart
        charts.append(f'<div style="height:300px;overflow:hidden">{found.group(0)}</div>')
    alone = tmp_path / "charts.html"  # the three charts alone, one screenshot
    alone.write_text(f"<!DOCTYPE html><html><body style=\"margin:0;width:960px\">"
                     f"{''.join(charts)}</body></html>")
    shot = tmp_path / "charts.png"
    screenshot(alone, tmp_path, shot)
    pixels = _pixels(shot)
    for chart, colour in colours.items():
        assert _near(pixels, colour) > 200, (chart, _near(pixels, colour))


EXPERIMENT = """cadences:
  - id: lost-to-competitor
    steps:
      - {id: post-mortem, at: 14d, channel: call}
    experiment: {id: pm-2027, holdout: 50%}
"""


def test_report_html_draws_the_experiment_arms_with_their_intervals(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An experiment with a holdout, reborn deals in both arms, 100 days on: the page draws
    one row per arm with a dot at its rate inside a bar across its 95% interval, placed on
    the chart's own scale, in the control's grey and the arm's blue; the browser draws both
    colours (a chart it does not draw, or one with no arm, fails)."""
    start = datetime.now(UTC).replace(hour=15, minute=0) - timedelta(days=200)
    world = World(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}", monkeypatch,
                  extra=EXPERIMENT, start=start)  # (`report` counts to today's date)
    try:
        for n in range(40):
            world.lost(f"D{n}", account=f"A{n}", closed=start.date())
        world.tick()
        world.advance(days=30)
        for n in range(0, 40, 3):
            world.crm.admin_update_deal(f"D{n}", is_closed=False)
        world.tick()
        world.advance(days=75)
        world.tick()
    finally:
        world.close()
    dom = _report_in_browser(world, tmp_path)
    found = re.search(r'<svg[^>]*class="arms".*?</svg>', dom, re.S)
    assert found is not None
    chart = found.group(0)
    left, right, top = (float(v) for v in re.search(
        r'data-scale-left="([\d.]+)" data-scale-right="([\d.]+)" data-scale-top="([\d.]+)"',
        chart).groups())  # type: ignore[union-attr]
    arms = re.findall(r'<g class="arm" data-arm="(\w+)" data-window="(\d+)" data-rate="([\d.]+)" '
                      r'data-ci-low="([\d.]+)" data-ci-high="([\d.]+)">.*?<line class="ci" '
                      r'x1="([\d.]+)"[^>]*x2="([\d.]+)"[^>]*/?>(?:</line>)?<circle class="rate" '
                      r'cx="([\d.]+)"', chart, re.S)  # (the DOM closes the line: </line>)
    # 200 days on: a row per arm for 90 and 180 days, none for 365.
    assert sorted(a[:2] for a in arms) == [("base", "180"), ("base", "90"), ("holdout", "180"),
                                           ("holdout", "90")]
    for _arm, _window, rate, low, high, x1, x2, cx in arms:
        def at(value: str) -> float:
            return left + (right - left) * float(value) / top
        assert abs(float(x1) - at(low)) < 0.2 and abs(float(x2) - at(high)) < 0.2
        assert abs(float(cx) - at(rate)) < 0.2 and float(x1) <= float(cx) <= float(x2)
        assert float(rate) > 0
    assert "Verdict:</b> not enough deals yet" in dom
    alone = tmp_path / "arms.html"
    alone.write_text(f"<!DOCTYPE html><html><body style=\"margin:0;width:960px\">{chart}"
                     "</body></html>")
    shot = tmp_path / "arms.png"
    screenshot(alone, tmp_path, shot)
    pixels = _pixels(shot)
    assert _near(pixels, "#667085") > 100 and _near(pixels, "#2e90fa") > 100
