"""`winback demo`: the real worker against the sandbox, with a simulated clock.

Starts both CRM emulators seeded with realistic closed-lost deals, writes a configuration for
them in a temporary directory (SQLite ledger included), and runs the worker's ticks while the
clock moves through the first weeks after the losses. Then it reopens one deal and shows what a
rep would see: the tasks in each CRM, the stopped cadence, the "reborn" task, the API calls.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from worker.logs import configure
from worker.settings import load_config
from worker.sync.tick import run_tick
from worker.wiring import build_service

DEALS = 60
WEEKS = 4

CONFIG = """\
version: 1
defaults:
  timezone: America/New_York
  calendar: {country: US}
  reminder_time: "09:00"
  lead_time: 7d
  grace: 7d
  horizon: 3y
service: {http_port: 0}
connections:
"""


class Demo:
    def __init__(self, console: Console) -> None:
        from sandbox.runner import start_sandbox

        self.console = console
        self.dir = Path(tempfile.mkdtemp(prefix="winback-demo-"))
        self.box = start_sandbox(seed=7, ca_dir=self.dir,
                                 hubspot_options={"burst": 100_000, "search_per_second": 100})
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, days: int) -> None:
        self.offset += timedelta(days=days)
        for crm in ("salesforce", "hubspot"):
            self.box.admin(crm, "POST", "clock", {"offset_seconds": self.offset.total_seconds()})

    def setup(self) -> Path:
        from sandbox.runner import hubspot_connection, salesforce_connection

        self.box.seed(DEALS, 7, days_back=6, owners=6, inactive_owners=1)
        sf_fallback, hs_fallback = self.box.active_owners()
        path = self.dir / "winback.yaml"
        path.write_text(CONFIG + salesforce_connection("demo-salesforce", fallback=sf_fallback)
                        + hubspot_connection("demo-hubspot", fallback=hs_fallback))
        os.environ.update(self.box.environment())
        os.environ["WINBACK_DATABASE_URL"] = f"sqlite:///{self.dir / 'winback.db'}"
        return path

    def tasks(self, crm: str) -> list[dict[str, Any]]:
        return self.box.tasks(crm)

    def calls(self) -> dict[str, int]:
        return {crm: int(self.box.admin(crm, "GET", "calls")["total"])
                for crm in ("salesforce", "hubspot")}

    def run(self) -> int:
        configure("WARNING")
        c = self.console
        path = self.setup()
        config = load_config(path)
        service = build_service(config, path, clock=self.now)
        c.print(f"[bold]winback demo[/bold]: the real worker against the CRM sandbox "
                f"({self.box.salesforce_url}, {self.box.hubspot_url}), SQLite ledger in "
                f"{self.dir}.\n{DEALS} generated deals in each CRM, most closed-lost in the "
                "last week; the clock moves a week per tick.\n")
        summary = Table(title="Ticks", title_justify="left")
        for column in ("day", "connection", "deals read", "enrolled", "stopped", "tasks written",
                       "API calls", "result"):
            summary.add_column(column)
        try:
            for week in range(WEEKS + 1):
                if week == WEEKS:
                    self._reopen_one()
                for name, ctx in service.contexts.items():
                    result = run_tick(ctx, ignore_schedule=True)
                    k = result.counts
                    summary.add_row(str(week * 7), name, str(k.pulled), str(k.enrolled),
                                    str(k.stopped), str(k.tasks_written), str(result.api_calls),
                                    result.result if not result.error else
                                    f"{result.result}: {result.error[:60]}")
                if week < WEEKS - 1:
                    self.advance(7)
                elif week == WEEKS - 1:
                    self.advance(1)
        except BaseException:
            service.close()
            raise
        c.print(summary)
        self._show_tasks(service)
        service.close()
        totals = self.calls()
        c.print(f"\nAPI calls used, whole demo: Salesforce {totals['salesforce']}, HubSpot "
                f"{totals['hubspot']} (tasks are written in batches of 200 and 100).")
        c.print(f"Try: WINBACK_DATABASE_URL=sqlite:///{self.dir / 'winback.db'} winback status "
                f"{path}")
        self.box.stop()
        return 0

    def _reopen_one(self) -> None:
        records = self.box.admin("salesforce", "GET", "records/Opportunity")
        rows = records.get("records", records) if isinstance(records, dict) else records
        lost = next(r for r in rows if r.get("StageName") == "Closed Lost")
        self.box.admin("salesforce", "PATCH", f"records/Opportunity/{lost['Id']}",
                       {"StageName": "Negotiation/Review"})
        self.reopened = lost
        self.console.print(f"\n[bold]A rep reopens[/bold] {lost.get('Name')} in Salesforce "
                           "(stage Negotiation/Review).\n")

    def _show_tasks(self, service: Any) -> None:
        from sqlalchemy import func, select

        from worker.ledger.schema import task

        c = self.console
        with service.ledger.engine.connect() as conn:
            rows = conn.execute(select(task.c.connection, task.c.step, func.count())
                                .where(task.c.status == "written")
                                .group_by(task.c.connection, task.c.step)).all()
        table = Table(title="Tasks written, by step of the playbook", title_justify="left")
        table.add_column("step")
        names = sorted({r[0] for r in rows})
        for name in names:
            table.add_column(name)
        steps: dict[str, dict[str, int]] = {}
        for name, step, count in rows:
            steps.setdefault(step, {})[name] = int(count)
        for step, counts in sorted(steps.items(), key=lambda i: -sum(i[1].values())):
            table.add_row(step, *(str(counts.get(n, 0)) for n in names))
        c.print(table)
        sample = Table(title="What a rep sees in Salesforce (a few tasks)", title_justify="left")
        for column in ("due", "subject", "status"):
            sample.add_column(column)
        for t in sorted(self.tasks("salesforce"), key=lambda t: str(t.get("ActivityDate")))[:6]:
            sample.add_row(str(t.get("ActivityDate")), _subject("salesforce", t),
                           str(t.get("Status")))
        c.print(sample)
        opp = getattr(self, "reopened", None)
        if opp is not None:
            mine = [t for t in self.tasks("salesforce") if t.get("WhatId") == opp["Id"]]
            reborn = [_subject("salesforce", t) for t in mine
                      if _subject("salesforce", t).startswith("Opportunity reborn")]
            closed = [t for t in mine if t.get("Status") == "Completed"]
            c.print(f"\nThe reopened deal {opp.get('Name')}: its cadence stopped, "
                    f"{len(closed)} open follow-up(s) were closed, later ones were dropped, "
                    f"and the owner got the task {reborn}.")


def _subject(crm: str, task: dict[str, Any]) -> str:
    if crm == "salesforce":
        return str(task.get("Subject") or "")
    return str((task.get("properties") or {}).get("hs_task_subject") or "")


def main(console: Console | None = None) -> int:
    return Demo(console or Console(highlight=False)).run()
