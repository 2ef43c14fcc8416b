"""`make demo` runs `winback demo`: the real worker over the sandbox, start to finish."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def demo() -> Iterator[subprocess.CompletedProcess[str]]:
    """One run of the demo, shared by the tests below (it takes a few seconds)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WINBACK_", "SF_",
                                                                      "HUBSPOT_"))}
    proc = subprocess.run([sys.executable, "-m", "worker", "demo"], capture_output=True,
                          text=True, timeout=300, env=env, cwd=ROOT)
    yield proc
    found = re.search(r"SQLite ledger in (\S+?)\.?\n", proc.stdout)
    if found and Path(found.group(1)).name.startswith("winback-demo-"):
        shutil.rmtree(found.group(1), ignore_errors=True)


def test_demo_syncs_both_crms_and_shows_the_reborn_deal(
        demo: subprocess.CompletedProcess[str]) -> None:
    """The demo exits 0, writes tasks in both CRMs and stops the reopened deal's cadence."""
    assert demo.returncode == 0, demo.stderr[-2000:]
    out = demo.stdout
    assert "demo-salesforce" in out and "demo-hubspot" in out
    assert "Opportunity reborn:" in out
    assert "Traceback" not in out + demo.stderr


def test_demo_prints_events_in_the_order_they_happen(
        demo: subprocess.CompletedProcess[str]) -> None:
    """Ticks and the reopening come out in clock order: the reopen line sits between the tick
    before it and the tick that stops the deal, and days never go backwards."""
    events = [line for line in demo.stdout.splitlines() if re.match(r"day +\d+ ", line)]
    days = [int(line.split()[1]) for line in events]
    assert days == sorted(days) and len(events) >= 5, events
    reopen = next(i for i, line in enumerate(events) if "reopens" in line)
    assert 0 < reopen < len(events) - 1
    after = events[reopen + 1:]
    assert any("demo-salesforce" in line and "1 stopped" in line for line in after), after
    assert all("1 stopped" not in line for line in events[:reopen])


def test_demo_ends_with_a_small_experiment(demo: subprocess.CompletedProcess[str]) -> None:
    """The experiment scene: a holdout and a base arm, deals back within 90 days with their
    intervals (the sandbox's prospect simulator brought them back), and a verdict."""
    out = demo.stdout
    assert "A small experiment" in out
    part = out[out.index("A small experiment"):]
    assert "Experiment demo-holdout on cadence winback" in part
    rows = re.findall(r"≤90d +(\d+)/(\d+) +[\d.]+%", part)
    assert len(rows) == 2, part
    (held, n_held), (base, n_base) = ((int(a), int(b)) for a, b in rows)
    assert n_held + n_base == 240 and 0 < held < base, rows
    assert "verdict: not enough deals yet" in part


def test_demo_output_has_no_python_repr(demo: subprocess.CompletedProcess[str]) -> None:
    """What the demo prints is prose and tables, never a list or dict repr or a None."""
    for pattern in (r"\['", r"'\]", r"\[\]", r"\{'", r"\bNone\b"):
        assert not re.search(pattern, demo.stdout), (pattern, demo.stdout[-3000:])


def test_demo_shows_a_task_as_its_owner_sees_it(demo: subprocess.CompletedProcess[str]
                                                ) -> None:
    """One task in full: owner by name, due date, reminder in the owner's time zone, the
    talking points; then what to try next."""
    out = demo.stdout
    block = out.split("One task as its owner sees it", 1)[1]
    assert re.search(r"owner: +[A-Z][a-z]+ [A-Z]", block), block
    assert re.search(r"due: +\d{4}-\d\d-\d\d", block)
    assert re.search(r"reminder: +\w{3} \d\d \w{3} \d{4}, \d\d:\d\d \([A-Za-z_]+/[A-Za-z_]+\)",
                     block), block
    points = block.split("talking points:", 1)[1].strip().splitlines()
    assert points and len(points[0].strip()) > 20
    assert "Try next" in out


def test_demo_closing_hint_works_from_the_repository(
        demo: subprocess.CompletedProcess[str]) -> None:
    """The command the demo suggests last runs, as printed, from the checkout."""
    hint = next(line for line in demo.stdout.splitlines() if "the demo's ledger:" in line)
    command = hint.split("the demo's ledger:", 1)[1].strip()
    assert command.split()[1].startswith(".venv/bin/winback"), command
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WINBACK_", "SF_",
                                                                      "HUBSPOT_"))}
    proc = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "demo-salesforce" in proc.stdout and "written" in proc.stdout


def test_plan_only_demo_needs_nothing_but_python() -> None:
    """`winback demo --plan-only` plans the bundled sample."""
    proc = subprocess.run([sys.executable, "-m", "worker", "demo", "--plan-only"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "task(s) planned" in proc.stdout


CRMS = ("Salesforce", "HubSpot")
DAY = r"\d{4}-\d\d-\d\d"


def _report(out: str, title: str) -> dict[str, str]:
    """One part of "What the reps did in the CRM": its line per CRM."""
    part = out.split("What the reps did in the CRM", 1)[1].split(f"\n{title}:\n", 1)[1]
    lines = part.split("\n\n", 1)[0].splitlines()
    return {crm: next(line for line in lines if line.strip().startswith(f"{crm}:"))
            for crm in CRMS}


def test_demo_reps_act_in_both_crms_in_clock_order(
        demo: subprocess.CompletedProcess[str]) -> None:
    """After the reopening, in each CRM a rep logs a call, completes a post-mortem late,
    pauses a deal and opts one out; the ticks after them skip a touch for the call."""
    events = [line for line in demo.stdout.splitlines() if re.match(r"day +\d+ ", line)]
    reopen = next(i for i, line in enumerate(events) if "reopens" in line)
    for crm in CRMS:
        for what in ("logs yesterday's call with", "completes the post-mortem call of",
                     'sets "paused until"', "ticks the opt-out box"):
            found = [i for i, line in enumerate(events) if what in line and f" in {crm}" in line]
            assert found and found[0] >= reopen, (crm, what, events)
    for name in ("demo-salesforce", "demo-hubspot"):
        assert any(name in line and "1 skipped (activity)" in line for line in events), events
        assert any(name in line and "1 stopped" in line
                   for line in events[next(i for i, line in enumerate(events)
                                           if "opt-out box" in line):]), events


def test_demo_says_what_winback_made_of_the_reps_work(
        demo: subprocess.CompletedProcess[str]) -> None:
    """Per CRM: the check-ins of the late post-mortem count from its completion (28 days on,
    not from the close), the touch after the call is not written and why, nothing is written
    for the paused deal and the task due in the pause moves or is skipped, the opted-out deal
    stops and its open future tasks are closed."""
    out = demo.stdout
    for crm, line in _report(out, "A post-mortem done late").items():
        done = date.fromisoformat(re.search(rf"completed on ({DAY}) \(", line)[1])  # type: ignore[index]
        moved = re.search(rf"count from that day .*due ({DAY}), ({DAY}), ({DAY}); from the "
                          rf"close \({DAY}\) they would have been due around ({DAY}), ", line)
        assert moved, (crm, line)
        first = date.fromisoformat(moved[1])
        assert done + timedelta(days=28) <= first <= done + timedelta(days=32), (crm, line)
        assert moved[1] != moved[4], (crm, line)
    for crm, line in _report(out, "A call logged before a touch").items():
        assert re.search(rf"a rep logged a call on {DAY} \(call \S+\); the [a-z-]+ due {DAY} "
                         r"was not written: someone spoke with them", line), (crm, line)
    for crm, line in _report(out, "A deal paused").items():
        assert "nothing was written for it during the pause" in line, (crm, line)
        assert re.search(rf"fell in the pause(: now due {DAY}| and was skipped)", line), line
    for crm, line in _report(out, "A deal opted out").items():
        closed = re.search(r"its cadence stopped \(reason: opted out in the CRM\); (\d+) of "
                           r"its (\d+) open task\(s\) due later were marked completed", line)
        assert closed and closed[1] == closed[2] and int(closed[2]) >= 1, (crm, line)
        assert "0 task(s) written for it since" in line, (crm, line)
