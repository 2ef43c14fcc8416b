"""The service commands: migrate, sync, run, status, report (registered on the CLI app)."""

from __future__ import annotations

import csv
import json
import os
import sys
from contextlib import redirect_stdout
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TextIO

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import OperationalError

from worker.cli.app import (
    ConfigArg,
    app,
    config_or_exit,
    err,
    fail_input,
    ledger_errors,
    output_stream,
    sandbox_extra,
)
from worker.ledger import migrate as migrations
from worker.ledger.db import database_url, make_engine, shown_url
from worker.settings.durations import Duration
from worker.telemetry.logs import configure


class Format(StrEnum):
    table = "table"
    json = "json"


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"
    html = "html"


def _fail(message: str, code: int = 1) -> NoReturn:
    err.print(message, markup=False)
    raise typer.Exit(code)


def _clock() -> Any:
    """Real time, or real time shifted by WINBACK_CLOCK_OFFSET seconds and sped up
    WINBACK_CLOCK_RATE times from WINBACK_CLOCK_EPOCH (Unix seconds; default the process
    start; replicas sharing a ledger need the same one) for demos, tests and benchmarks that
    move through weeks in minutes; never set any of them in production."""
    from worker.sync.context import utc_now
    from worker.telemetry.logs import get_logger

    raw = os.environ.get("WINBACK_CLOCK_OFFSET", "").strip()
    raw_rate = os.environ.get("WINBACK_CLOCK_RATE", "").strip()
    if not raw and not raw_rate:
        return utc_now
    try:
        offset = timedelta(seconds=float(raw or 0))
    except ValueError:
        fail_input([f"WINBACK_CLOCK_OFFSET: {raw!r} is not a number of seconds"])
    try:
        rate = float(raw_rate or 1)
    except ValueError:
        rate = 0.0
    if not rate > 0:
        fail_input([f"WINBACK_CLOCK_RATE: {raw_rate!r} is not a positive number"])
    get_logger("winback").warning("clock.simulated", offset_seconds=offset.total_seconds(),
                                  rate=rate)
    if rate == 1:
        return lambda: utc_now() + offset
    raw_epoch = os.environ.get("WINBACK_CLOCK_EPOCH", "").strip()
    try:
        start = datetime.fromtimestamp(float(raw_epoch), UTC) if raw_epoch else utc_now()
    except ValueError:
        fail_input([f"WINBACK_CLOCK_EPOCH: {raw_epoch!r} is not a Unix time in seconds"])
    return lambda: start + offset + (utc_now() - start) * rate


def _service(config_path: Path, **kw: Any) -> Any:
    from worker.service.wiring import LedgerInUse, build_service

    config = config_or_exit(config_path)
    kw.setdefault("clock", _clock())
    try:
        with ledger_errors(config_path):
            return build_service(config, config_path, **kw)
    except LedgerInUse as exc:
        _fail(str(exc), 1)


@app.command()
def migrate(config: ConfigArg) -> None:
    """Create or upgrade the ledger's schema (run once per release, before the replicas)."""
    config_or_exit(config, require_env=False)  # a bad file is reported before the database
    url = database_url(config)
    engine = make_engine(url, pool_size=1)
    try:
        before, after = migrations.upgrade(engine)
    except OperationalError as exc:
        from worker.service.wiring import ledger_problem

        _fail(ledger_problem(shown_url(url), exc), 1)
    finally:
        engine.dispose()
    if before == after:
        typer.echo(f"ledger {shown_url(url)} is up to date (revision {after})")
    else:
        typer.echo(f"ledger {shown_url(url)} migrated from {before or 'empty'} to {after}")


@app.command()
def sync(
    config: ConfigArg,
    connection: Annotated[str | None, typer.Option(help="Only this connection.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Pull and plan; write nothing.")
                       ] = False,
) -> None:
    """Run one tick of every connection (or one), then exit. Exit 1 if any tick failed (tasks
    the CRM refused are counted, with their fix, but do not fail the run)."""
    from worker.sync.inputs import activity_kinds
    from worker.sync.refusals import failed_text, hints
    from worker.sync.tick import run_tick

    configure()
    settings = config_or_exit(config)
    if connection is not None and settings.connection(connection) is None:
        fail_input([f"--connection: no connection named {connection!r} (configured: "
                    f"{', '.join(c.name for c in settings.connections) or 'none'})"])
    service = _service(config, only=connection)
    failed = []
    try:
        with _progress() as progress:
            for name, ctx in service.contexts.items():
                task_id = progress.add_task(f"{name}: syncing", total=None) if progress else None

                def report(stage: str, done: int, total: int | None, _n: str = name,
                           _t: Any = task_id) -> None:
                    if progress is not None and _t is not None:
                        verb = "deals read" if stage == "pull" else "tasks written"
                        progress.update(_t, description=f"{_n}: {done} {verb}")

                ctx.progress = report
                result = run_tick(ctx, ignore_schedule=True, dry_run=dry_run)
                counts = result.counts
                line = (f"{name}: {result.result} in {result.seconds:.1f}s: {counts.pulled} deals "
                        f"read, {counts.enrolled} enrolled, {counts.stopped} stopped, "
                        f"{counts.tasks_written} tasks written, "
                        f"{failed_text(counts.tasks_failed, counts.failed_by_reason)}, "
                        f"{result.api_calls} API calls")
                if activity_kinds(settings):  # (the rules read CRM activity)
                    line += _activity_text(service, name, counts, dry_run)
                if ctx.planner.has_cap and (counts.moved_by_cap or counts.skipped_by_cap):
                    line += (f"; daily cap: {counts.moved_by_cap} tasks moved, "
                             f"{counts.skipped_by_cap} skipped")
                if dry_run:
                    line += f" (dry run: {counts.tasks_planned} tasks would be planned)"
                typer.echo(line + (f"; error: {result.error}" if result.error else ""))
                for hint in hints(name, counts, ctx.settings.fallback_owners, str(config)):
                    typer.echo(hint)
                if not result.ok:
                    failed.append(name)
    finally:
        service.close()
    if failed:
        raise typer.Exit(1)


def _activity_text(service: Any, name: str, counts: Any, dry_run: bool) -> str:
    """The activity part of a `sync` line: what this tick read and decided, and the steps
    waiting for a completion now (the ledger's count, whichever tick planned them)."""
    if dry_run:
        return "; activity not read (dry run)"
    from worker.ledger.activities import activity_counts

    with service.ledger.engine.connect() as conn:
        waiting = activity_counts(conn, name)["waiting"]
    return (f"; {counts.activities_read} activities read, "
            f"{counts.skipped_by_activity} tasks skipped by activity, "
            f"{waiting} steps waiting for a completion")


def _progress() -> Any:
    if not sys.stderr.isatty():
        return _NoProgress()
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True)


class _NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@app.command()
def run(
    config: ConfigArg,
    http_port: Annotated[int | None, typer.Option(help="Health/metrics port (0 = off).")
                         ] = None,
) -> None:
    """Run the long-lived service: every connection on its schedule, until SIGTERM/SIGINT."""
    from worker.service.scheduler import Runner

    configure()
    service = _service(config)
    if not service.contexts:
        _fail("no enabled connections in the configuration: nothing to run", 2)
    raise typer.Exit(Runner(service, http_port=http_port).run())


@app.command()
def status(
    config: ConfigArg,
    output_format: Annotated[Format, typer.Option("--format")] = Format.table,
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Write to this file instead of stdout.")
                      ] = None,
) -> None:
    """Per connection: watermark, last tick, enrollments, tasks by status, next writes, lease."""
    from worker.views.reports import status as read_status

    settings = config_or_exit(config, require_env=False)
    _, ledger = _ledger_or_exit(settings, config)
    rows = read_status(ledger, [c.name for c in settings.connections], datetime.now(UTC))
    ledger.engine.dispose()
    with output_stream(output) as out:
        _print_status(rows, output_format, out)


def _print_status(rows: list[dict[str, Any]], output_format: Format, out: TextIO) -> None:
    if output_format is Format.json:
        out.write(json.dumps(rows, indent=2) + "\n")
        return
    console = Console(file=out, highlight=False)
    for row in rows:
        table = Table(title=f"connection {row['connection']}", show_header=False,
                      title_justify="left")
        table.add_column("what")
        table.add_column("value", overflow="fold")
        for key, value in row.items():
            if key == "connection":
                continue
            shown = (", ".join(f"{k} {v}" for k, v in sorted(value.items())) or "none"
                     if isinstance(value, dict) else value)
            table.add_row(key.replace("_", " "), "-" if shown is None else str(shown))
        console.print(table)


def _ledger_or_exit(settings: Any, config: Path) -> Any:
    from worker.service.wiring import open_ledger

    with ledger_errors(config):
        return open_ledger(settings, config, create_if_empty=False)


@app.command()
def report(
    config: ConfigArg,
    since: Annotated[str, typer.Option(help="Deals lost within this long (e.g. 90d, 1y).")
                     ] = "365d",
    output_format: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.table,
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Write to this file (html, csv, json).")
                      ] = None,
    from_crm: Annotated[bool, typer.Option("--from-crm",
                                           help="First read task completion from the CRM.")
                        ] = False,
) -> None:
    """The win-back report: deals enrolled, reborn, won back; per step done on time / late,
    open, overdue, skipped; why cadences ended; win-back rates with n; last touch."""
    from worker.views.reports import (
        cadence_shapes,
        failed_report,
        outcome_report,
        refresh_completion,
    )

    settings = config_or_exit(config, require_env=from_crm)
    try:
        window = Duration.parse(since)
    except ValueError as exc:
        fail_input([f"--since: {exc}"])
    start = window.subtract_from(datetime.now(UTC).date())
    names = [c.name for c in settings.connections]
    if from_crm:
        service = _service(config)
        try:
            for name, ctx in service.contexts.items():
                refresh_completion(service.ledger, service.leases, name, ctx.connector)
        finally:
            service.close()
    _, ledger = _ledger_or_exit(settings, config)
    today = datetime.now(UTC).date()
    failed = failed_report(ledger, names, start)
    outcomes = outcome_report(ledger, names, start, today, cadence_shapes(settings, today))
    ledger.engine.dispose()
    payload = {"since": start.isoformat(), "completion": "crm" if from_crm else "ledger",
               "failed_by_reason": failed, **outcomes}
    with output_stream(output) as out:
        if output_format is ReportFormat.table:
            with redirect_stdout(out):  # the table as on screen, into the -o file if given
                _print_report(payload)
        else:
            out.write(_render_report(payload, output_format))


def _render_report(payload: dict[str, Any], output_format: ReportFormat) -> str:
    if output_format is ReportFormat.json or output_format is ReportFormat.table:
        return json.dumps(payload, indent=2) + "\n"
    if output_format is ReportFormat.csv:
        import io

        from worker.views.reports import csv_rows

        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerows(csv_rows(payload))
        return buffer.getvalue()
    from worker.views.html import report_html

    return report_html(payload)


def _print_report(payload: dict[str, Any]) -> None:
    from worker.cli.app import table_console
    from worker.views.reportview import print_report

    console = table_console()
    print_report(payload, console)
    for name, reasons in payload.get("failed_by_reason", {}).items():
        console.print(f"{name}: {sum(reasons.values())} task(s) refused by the CRM ("
                      + ", ".join(f"{k} {v}" for k, v in reasons.items())
                      + "): `winback status` and the sync summary say how to fix them")


@app.command()
def sandbox(
    salesforce_port: Annotated[int, typer.Option(help="0 picks a free port.")] = 8443,
    hubspot_port: Annotated[int, typer.Option(help="0 picks a free port.")] = 8765,
    seed: Annotated[int, typer.Option(help="Random seed of the generated data.")] = 1,
    deals: Annotated[int, typer.Option(help="Deals to generate in each CRM.")] = 200,
    env_file: Annotated[Path | None, typer.Option(help="Also write the variables here.")
                        ] = None,
) -> None:
    """Run the Salesforce and HubSpot emulators on 127.0.0.1 until Ctrl-C or SIGTERM (either
    stops them and removes the sandbox's temporary directory)."""
    import signal
    import threading

    with sandbox_extra("sandbox"):
        from sandbox.runner import start_sandbox

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with sandbox_extra("sandbox"):
            box = start_sandbox(salesforce_port=salesforce_port, hubspot_port=hubspot_port,
                                seed=seed)
    except OSError as exc:
        fail_input([f"cannot start the sandbox: {exc.strerror} (a port is taken? pass "
                    "--salesforce-port 0 --hubspot-port 0 for free ones)"])
    try:
        box.seed(deals, seed)
        variables = box.environment()
        typer.echo(f"Salesforce emulator: {box.salesforce_url}  (HTTPS; CA: {box.ca.ca_path})")
        typer.echo(f"HubSpot emulator:    {box.hubspot_url}")
        typer.echo(f"{deals} generated deals in each (seed {seed}). To point "
                   "config/winback.yaml at them:")
        lines = [f"export {k}={v}" for k, v in variables.items()]
        typer.echo("\n".join(lines))
        if env_file is not None:
            env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
        typer.echo(f"Press Ctrl-C to stop (or send SIGTERM: kill {os.getpid()}; `kill %1` for "
                   "a background job).", color=False)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        box.stop()
        signal.signal(signal.SIGTERM, previous)


@app.command()
def doctor(
    config: ConfigArg,
    output_format: Annotated[Format, typer.Option("--format")] = Format.table,
) -> None:
    """Check everything a deployment needs; exit 0 when all pass (warnings included), 1 when
    any fails."""
    from worker.cli.doctor import run as run_checks

    configure("WARNING")
    checks = run_checks(config)
    passed = all(c.ok for c in checks)
    if output_format is Format.json:
        typer.echo(json.dumps({"ok": passed, "warnings": sum(c.level == "warn" for c in checks),
                               "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        from worker.cli.app import table_console

        console = table_console()
        marks = {"pass": "[green]ok[/green]  ", "warn": "[yellow]warn[/yellow]",
                 "fail": "[red]FAIL[/red]"}
        for check in checks:
            console.print(f"{marks[check.level]} {check.scope}: {check.name}: {check.detail}",
                          highlight=False)
            if check.level != "pass" and check.fix:
                console.print(f"      fix: {check.fix}", highlight=False)
        warned = sum(c.level == "warn" for c in checks)
        console.print(f"{sum(c.ok for c in checks)} of {len(checks)} checks passed"
                      + (f", {warned} with a warning" if warned else ""))
    if not passed:
        raise typer.Exit(1)
