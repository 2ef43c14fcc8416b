"""The demo's small experiment (issue 17): a Salesforce sandbox of its own with 240 lost deals,
half of them held out by the rules, reps who do every task winback writes, and prospects
who come back more often after a post-mortem call (the sandbox's prospect simulator, told a
true lift). Fourteen weeks on, `winback report`'s experiments section: per arm the deals
back within 90 days with the 95% intervals, and the verdict, which with this few deals is
that more are needed."""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console

from worker.service.wiring import build_service
from worker.settings import load_config
from worker.sync.tick import run_tick

DEALS = 240
BASE_RATE, TREATED_RATE = 0.10, 0.35  # back within 60 days: no post-mortem / post-mortem done
RULES = """\
version: 1
defaults:
  timezone: America/New_York
  calendar: {country: US}
  lead_time: 7d
  grace: 7d
  horizon: 1y
cadences:
  - id: winback
    steps:
      - id: post-mortem
        at: 14d
        channel: call
        subject: "Loss post-mortem call: {{ deal.name }}"
      - id: check-in
        at: 45d
        channel: email
        subject: "Check in: {{ deal.name }}"
    experiment: {id: demo-holdout, holdout: 50%}
service: {http_port: 0}
connections:
"""


class ExperimentScene:
    def __init__(self, console: Console) -> None:
        from sandbox.runner import start_sandbox

        self.console = console
        self.dir = Path(tempfile.mkdtemp(prefix="winback-demo-experiment-"))
        self.box = start_sandbox(seed=11, ca_dir=self.dir)
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, days: int) -> None:
        self.offset += timedelta(days=days)
        self.box.admin("salesforce", "POST", "clock",
                       {"offset_seconds": self.offset.total_seconds()})

    def run(self) -> None:
        from sandbox.runner import salesforce_connection
        from worker.views.reports import cadence_shapes, outcome_report
        from worker.views.reportview import experiment_tables

        c = self.console
        self.box.seed(DEALS, 11, days_back=3, owners=4, inactive_owners=0,
                      lost_share=1.0, won_share=0.0)
        fallback, _ = self.box.active_owners()
        path = self.dir / "winback.yaml"
        path.write_text(RULES + salesforce_connection("experiment-sf", fallback=fallback))
        os.environ.update(self.box.environment())
        os.environ["WINBACK_DATABASE_URL"] = f"sqlite:///{self.dir / 'winback.db'}"
        self.box.admin("salesforce", "POST", "prospects", {
            "seed": 11, "base": BASE_RATE, "completed": {"post-mortem": TREATED_RATE},
            "days": [20, 60], "reps": {"complete": 1.0, "after_days": 1}})
        c.print(f"\n[bold]A small experiment[/bold]: {DEALS} deals lost in the last 3 days in "
                "a Salesforce sandbox of its own; the rules hold out half of them (no tasks), "
                "reps do every "
                "task winback writes, and the sandbox's prospects come back within 60 days "
                f"with {BASE_RATE:.0%} odds, {TREATED_RATE:.0%} after a post-mortem call. "
                "Two weeks a tick:", soft_wrap=True)
        config = load_config(path)
        service = build_service(config, path, clock=self.now)
        try:
            ctx = service.contexts["experiment-sf"]
            for _ in range(8):
                result = run_tick(ctx, ignore_schedule=True)
                k = result.counts
                c.print(f"  experiment, day {self.offset.days:>3}: tick {result.result}, "
                        f"{k.enrolled} enrolled, {k.tasks_written} tasks written (reborn "
                        f"notices included), {k.stopped} came back",
                        soft_wrap=True)
                self.advance(14)
            today = self.now().date()
            report = outcome_report(service.ledger, ["experiment-sf"], today - timedelta(
                days=365), today, cadence_shapes(config, today))
        finally:
            service.close()
            self.box.stop()
        c.print(experiment_tables({"experiments": report["experiments"]}, c.width))
        c.print("The true lift the sandbox was given is "
                f"{(TREATED_RATE - BASE_RATE) * 100:.0f} points; the report reads it from the "
                "ledger alone.", soft_wrap=True)
