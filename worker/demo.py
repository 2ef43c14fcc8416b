"""`winback demo`: the real worker against the sandbox, with a simulated clock.

Starts both CRM emulators seeded with realistic closed-lost deals, writes a configuration for
them in a temporary directory (SQLite ledger included), and runs the worker's ticks while the
clock moves through the first weeks after the losses. Then it reopens one deal and shows what a
rep would see: the tasks in each CRM, the stopped cadence, the "reborn" task, the API calls.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from worker.settings import load_config
from worker.sync.tick import run_tick
from worker.wiring import build_service

DEALS = 60
WEEKS = 4

CONFIG = """\
version: 1
defaults:
  timezone: America/New_York
  calendar: {{country: US}}
  reminder_time: "09:00"
  lead_time: 7d
  grace: 7d
  horizon: 3y
connections:
  - name: demo-salesforce
    kind: salesforce
    login_url: ${{SF_LOGIN_URL}}
    ca_bundle: ${{SF_CA_BUNDLE}}
    auth: {{username: "${{SF_USERNAME}}", password: "${{SF_PASSWORD}}",
            security_token: "${{SF_TOKEN}}"}}
    fields: {{loss_reason: Loss_Reason__c, competitor: Competitor__c,
              contract_end: Contract_End__c}}
    task_key_field: Winback_Key__c
    fallback_owner: "{sf_fallback}"
  - name: demo-hubspot
    kind: hubspot
    base_url: ${{HUBSPOT_BASE_URL}}
    auth: {{access_token: "${{HUBSPOT_TOKEN}}"}}
    fields: {{loss_reason: closed_lost_reason, competitor: competitor,
              contract_end: contract_end_date}}
    fallback_owner: "{hs_fallback}"
service: {{http_port: 0}}
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
        seeded = self.box.seed(DEALS, 7, days_back=6, owners=6, inactive_owners=1)
        sf = seeded["salesforce"]
        sf_active = [u for u in sf["ids"]["User"] if u not in sf["inactive_user_ids"]]
        hs_owners = self.box.admin("hubspot", "GET", "objects/owners")
        hs_owners = hs_owners.get("results", hs_owners) if isinstance(hs_owners, dict) \
            else hs_owners
        hs_active = [str(o["id"]) for o in hs_owners if not o.get("archived")]
        path = self.dir / "winback.yaml"
        path.write_text(CONFIG.format(sf_fallback=sf_active[0], hs_fallback=hs_active[0]))
        os.environ.update(self.box.environment())
        os.environ["WINBACK_DATABASE_URL"] = f"sqlite:///{self.dir / 'winback.db'}"
        return path

    def tasks(self, crm: str) -> list[dict[str, Any]]:
        found = self.box.admin(crm, "GET", "tasks")
        items = found.get("tasks", found.get("results", [])) if isinstance(found, dict) \
            else found
        return list(items or [])

    def calls(self) -> dict[str, int]:
        return {crm: int(self.box.admin(crm, "GET", "calls")["total"])
                for crm in ("salesforce", "hubspot")}

    def run(self) -> int:
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
        finally:
            service.close()
        c.print(summary)
        self._show_tasks()
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

    def _show_tasks(self) -> None:
        c = self.console
        for crm in ("salesforce", "hubspot"):
            tasks = self.tasks(crm)
            c.print(f"\n[bold]{crm}[/bold]: {len(tasks)} tasks written")
            subjects = Counter(_subject(crm, t).split(":")[0] for t in tasks)
            table = Table(show_header=True, title_justify="left")
            table.add_column("kind of task")
            table.add_column("count")
            for subject, count in subjects.most_common(12):
                table.add_row(subject, str(count))
            c.print(table)
        opp = getattr(self, "reopened", None)
        if opp is not None:
            reborn = [t for t in self.tasks("salesforce")
                      if _subject("salesforce", t).startswith("Opportunity reborn")]
            closed = [t for t in self.tasks("salesforce")
                      if t.get("WhatId") == opp["Id"] and t.get("Status") == "Completed"]
            c.print(f"\nThe reopened deal {opp.get('Name')}: cadence stopped, {len(closed)} "
                    f"open follow-up(s) closed, and the owner got: "
                    f"{[_subject('salesforce', t) for t in reborn]}")


def _subject(crm: str, task: dict[str, Any]) -> str:
    if crm == "salesforce":
        return str(task.get("Subject") or "")
    return str((task.get("properties") or {}).get("hs_task_subject") or "")


def main(console: Console | None = None) -> int:
    return Demo(console or Console(highlight=False)).run()
