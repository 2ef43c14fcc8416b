"""`make demo` runs `winback demo`: the real worker over the sandbox, start to finish."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_syncs_both_crms_and_shows_the_reborn_deal() -> None:
    """The demo exits 0, writes tasks in both CRMs and stops the reopened deal's cadence."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WINBACK_", "SF_",
                                                                      "HUBSPOT_"))}
    proc = subprocess.run([sys.executable, "-m", "worker", "demo"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "demo-salesforce" in out and "demo-hubspot" in out
    assert "Opportunity reborn:" in out
    assert "Traceback" not in out + proc.stderr


def test_plan_only_demo_needs_nothing_but_python() -> None:
    """`winback demo --plan-only` plans the bundled sample."""
    proc = subprocess.run([sys.executable, "-m", "worker", "demo", "--plan-only"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "task(s) planned" in proc.stdout
