"""`winback demo`: the real worker against the sandbox, with a simulated clock.

Starts both CRM emulators seeded with realistic closed-lost deals, writes a configuration for
them in a temporary directory (SQLite ledger included), and runs the worker's ticks while the
clock moves through the first weeks after the losses. Then it reopens one deal, and reps work
in each CRM (worker/cli/demo_activity.py: a call logged just before an insight email, a
post-mortem done late, a deal paused, one opted out); it shows what a rep would see: the
tasks in each CRM, the stopped cadence, the "reborn" task, what winback made of the reps'
work and why, the API calls.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich.console import Console
from rich.table import Table

from worker.cli.demo_activity import Reps, activity_cadences
from worker.service.wiring import build_service
from worker.settings import load_config
from worker.sync.tick import run_tick
from worker.telemetry.logs import configure

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
        path.write_text(CONFIG + salesforce_connection("demo-salesforce", fallback=sf_fallback,
                                                       activity_fields=True)
                        + hubspot_connection("demo-hubspot", fallback=hs_fallback,
                                             activity_fields=True)
                        + activity_cadences())
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
                "last week; the clock moves a week per tick. What happens, in order:\n")
        try:
            reps = Reps(self, service.ledger.engine)
            for week in range(WEEKS + 1):
                if week == WEEKS:
                    self._reopen_one()
                    reps.choose_calls()
                    reps.before_tick(self.now())
                self._tick(service)
                if week < WEEKS - 1:
                    self.advance(7)
                elif week == WEEKS - 1:
                    self.advance(1)
            reps.act()
            self.advance(1)
            reps.before_tick(self.now())
            self._tick(service)
            while not reps.done():
                self.advance(7)
                reps.before_tick(self.now())
                self._tick(service)
            c.print()
            self._show_tasks(service)
            reps.report()
            self._show_one_task()
        finally:
            service.close()
        totals = self.calls()
        c.print(f"\nAPI calls used, whole demo: Salesforce {totals['salesforce']}, HubSpot "
                f"{totals['hubspot']} (tasks are written in batches of 200 and 100).")
        self.box.stop()
        from worker.cli.demo_experiment import ExperimentScene

        ExperimentScene(self.console).run()
        self._next_steps(path)
        return 0

    def _tick(self, service: Any) -> None:
        for name, ctx in service.contexts.items():
            result = run_tick(ctx, ignore_schedule=True)
            k = result.counts
            outcome = (result.result if not result.error
                       else f"{result.result}: {result.error[:60]}")
            skipped = (f", {k.skipped_by_activity} skipped (activity)"
                       if k.skipped_by_activity else "")
            self.console.print(
                f"day {self.offset.days:>2}  {name:<16} tick {outcome}: {k.pulled} deals read, "
                f"{k.enrolled} enrolled, {k.stopped} stopped, {k.tasks_written} tasks written"
                f"{skipped}, {result.api_calls} API calls", soft_wrap=True)

    def _next_steps(self, path: Path) -> None:
        ledger = f"WINBACK_DATABASE_URL=sqlite:///{self.dir / 'winback.db'}"
        self.console.print(
            "\n[bold]Try next[/bold] (from the repository):\n"
            f"  the demo's ledger:     {ledger} .venv/bin/winback status {path}\n"
            "  plan the sample deals: .venv/bin/winback plan config/winback.yaml "
            "--deals worker/samples/deals.jsonl\n"
            "  the same as a page:    .venv/bin/winback plan config/winback.yaml "
            "--deals worker/samples/deals.jsonl --format html -o plan.html\n"
            "  your own rules:        edit config/playbook.yaml, then .venv/bin/winback "
            "validate config/winback.yaml\n"
            "  a sandbox to sync:     see \"Try the example configuration against the "
            "sandbox\" in README.md\n"
            f"The demo's files stay in {self.dir} for the first command; remove them with "
            f"rm -r {self.dir}", soft_wrap=True)

    def _reopen_one(self) -> None:
        records = self.box.admin("salesforce", "GET", "records/Opportunity")
        rows = records.get("records", records) if isinstance(records, dict) else records
        lost = next(r for r in rows if r.get("StageName") == "Closed Lost")
        self.box.admin("salesforce", "PATCH", f"records/Opportunity/{lost['Id']}",
                       {"StageName": "Negotiation/Review"})
        self.reopened = lost
        self.console.print(f"day {self.offset.days:>2}  a rep reopens {lost.get('Name')} in "
                           "Salesforce (stage Negotiation/Review)", soft_wrap=True)

    def _show_tasks(self, service: Any) -> None:
        from worker.ledger.queries import written_by_step

        c = self.console
        with service.ledger.engine.connect() as conn:
            rows = written_by_step(conn)
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
            told = (f"the owner got the task \"{reborn[0]}\"" if reborn
                    else "no \"reborn\" task reached the owner")
            c.print(f"\nThe reopened deal {opp.get('Name')}: its cadence stopped, "
                    f"{len(closed)} open follow-up(s) were closed, later ones were dropped, "
                    f"and {told}.")

    def _show_one_task(self) -> None:
        """One task in full, as its owner sees it in Salesforce: who, when, what to say."""
        tasks = [t for t in self.tasks("salesforce") if t.get("Description")
                 and t.get("Status") != "Completed"]
        if not tasks:
            return
        chosen = next((t for t in tasks if t.get("TaskSubtype") == "Call"), tasks[0])
        users = self.admin_records("User")
        owner = users.get(str(chosen.get("OwnerId")), {})
        zone_name = str(owner.get("TimeZoneSidKey") or "UTC")
        try:
            zone: tzinfo = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            zone, zone_name = UTC, "UTC"
        reminder = "none"
        if chosen.get("ReminderDateTime"):
            raw = str(chosen["ReminderDateTime"]).replace("Z", "+00:00")
            moment = datetime.fromisoformat(raw)
            reminder = f"{moment.astimezone(zone):%a %d %b %Y, %H:%M} ({zone_name})"
        lines = ["\n[bold]One task as its owner sees it in Salesforce[/bold]",
                 f"  subject:   {_subject('salesforce', chosen)}",
                 f"  owner:     {owner.get('Name') or chosen.get('OwnerId')}",
                 f"  due:       {chosen.get('ActivityDate')}",
                 f"  reminder:  {reminder}",
                 f"  priority:  {chosen.get('Priority')}",
                 "  talking points:"]
        lines += [f"    {line}" for line in str(chosen["Description"]).splitlines() if line.strip()]
        self.console.print("\n".join(lines), soft_wrap=True)

    def admin_records(self, sobject: str) -> dict[str, dict[str, Any]]:
        found = self.box.admin("salesforce", "GET", f"records/{sobject}")
        rows = found.get("records", found) if isinstance(found, dict) else found
        return {str(r.get("Id")): r for r in rows}


def _subject(crm: str, task: dict[str, Any]) -> str:
    if crm == "salesforce":
        return str(task.get("Subject") or "")
    return str((task.get("properties") or {}).get("hs_task_subject") or "")


def main(console: Console | None = None) -> int:
    return Demo(console or Console(highlight=False)).run()
