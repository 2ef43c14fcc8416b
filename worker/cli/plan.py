"""The config and plan commands (validate, plan, diff, schema, try): offline, registered on the
app of worker/cli/app.py. Exit codes: 0 success, 2 bad config or input, 1 a failed run."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TextIO

import typer

from worker.cli.app import (
    ConfigArg,
    app,
    config_or_exit,
    err,
    fail_input,
    ledger_errors,
    output_stream,
    parse_now,
    sandbox_extra,
    table_console,
)
from worker.cli.dealsfile import InputErrors, deals_file_schema, read_deals, read_plan_inputs
from worker.settings import Config
from worker.settings.models import model_json_schema


class PlanFormat(StrEnum):
    table = "table"
    json = "json"
    html = "html"


@app.command()
def validate(config: ConfigArg) -> None:
    """Check a configuration file; print `ok`, or every problem as file:line:col. Legacy
    Salesforce logins are warned about on stderr (still exit 0)."""
    from worker.settings.salesforce_auth import legacy_warnings

    for line in legacy_warnings(config_or_exit(config), str(config)):
        err.print(line, markup=False)
    typer.echo("ok")


@app.command()
def plan(
    config: ConfigArg,
    deals: Annotated[Path | None, typer.Option("--deals",
                                               help="Deals as JSON lines (Deal shape).")] = None,
    now: Annotated[str | None, typer.Option(
        help="Plan as of this moment: 2027-11-12T14:00:00Z, or a date (00:00 UTC that day).")
                   ] = None,
    connection: Annotated[str | None, typer.Option(help="Connection whose keys and fallback "
                                                        "owner to use (default: the first).")
                          ] = None,
    output_format: Annotated[PlanFormat, typer.Option("--format")] = PlanFormat.table,
    show_diff: Annotated[bool, typer.Option("--diff", help="Compare this config's plan with "
                                            "the tasks in flight in the ledger.")] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Write the output (any format) to this "
                                                     "file instead of stdout; html defaults "
                                                     "to winback-plan.html.")] = None,
) -> None:
    """Show the tasks the rules plan for a file of deals (or, with --diff, what this config
    would change in the ledger's unwritten tasks), without touching any CRM."""
    from worker.cadence.engine import Planner
    from worker.views.planview import plan_deals, write_json, write_table

    settings = config_or_exit(config, require_env=False)
    moment = parse_now(now)
    if show_diff:
        if output_format is PlanFormat.html:
            fail_input(["--format html: the diff is shown as table or json (give --format "
                        "table or --format json with --diff)"])
        with output_stream(output) as out:
            _plan_diff(settings, config, moment, output_format, out)
        return
    if deals is None:
        fail_input(["--deals: give a deals file (JSON lines), or --diff to compare with the "
                    "ledger"])
    if connection is not None and settings.connection(connection) is None:
        names = ", ".join(c.name for c in settings.connections) or "none"
        fail_input([f"--connection: no connection named {connection!r} (configured: {names})"])
    try:
        inputs = read_plan_inputs(deals, today=moment.astimezone(UTC).date())
    except InputErrors as exc:
        fail_input(exc.lines, "Fix the deals file; nothing was planned.")
    planner = Planner(settings, connection)
    items = [i.deal for i in inputs]
    results = list(plan_deals(planner, items, moment, [i.activity(planner) for i in inputs]))
    from worker.sync.refusals import plan_warning

    warning = None if planner.fallback_owner else plan_warning(results, planner.connection,
                                                               str(config))
    if output_format is PlanFormat.html:
        from worker.views.html import plan_html

        page = plan_html(results, steps_by_cadence={c.id: [s.id for s in c.steps]
                                                    for c in settings.cadences},
                         horizon_days=settings.defaults.horizon.approx_days, now=moment,
                         config_name=str(config))
        target = output or Path("winback-plan.html")
        target.write_text(page, encoding="utf-8")
        typer.echo(f"wrote {target} ({len(items)} deals)")
        if warning:
            err.print(warning, markup=False)
        return
    with output_stream(output) as out:
        if output_format is PlanFormat.json:
            write_json(results, out)
        else:
            console = table_console(out)
            count = write_table(results, console)
            console.print(f"{count} task(s) planned for {len(items)} deal(s) as of "
                          f"{moment.isoformat()}")
    if warning:
        err.print(warning, markup=False)



def _plan_diff(settings: Config, config: Path, moment: datetime,
               output_format: PlanFormat, out: TextIO) -> None:
    from worker.service.wiring import open_ledger
    from worker.views.plandiff import diff

    with ledger_errors(config):
        _, ledger = open_ledger(settings, config, create_if_empty=False)
    changes = diff(settings, ledger, moment)
    ledger.engine.dispose()
    if output_format is PlanFormat.json:
        for change in changes:
            out.write(json.dumps(change.as_dict()) + "\n")
        return
    from worker.views.plandiff import write_table as write_diff

    write_diff(changes, table_console(out))


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="Write here instead of stdout.")] = None,
    deals: Annotated[bool, typer.Option("--deals", help="The schema of a line of the `plan "
                                        "--deals` file instead.")] = False,
) -> None:
    """Print the JSON Schema of the configuration file (for editor autocompletion)."""
    text = json.dumps(deals_file_schema() if deals else model_json_schema(), indent=2,
                      sort_keys=True) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


@app.command()
def demo(
    plan_only: Annotated[bool, typer.Option("--plan-only", help="Only plan the bundled sample "
                                            "of deals (no sandbox, no worker).")] = False,
) -> None:
    """See winback work with no credentials: the real worker syncs the CRM sandbox while a
    simulated clock moves through the first weeks after the losses."""
    if plan_only:
        _plan_sample()
        return
    with sandbox_extra("demo"):
        from worker.cli.demo import main as run_demo

        code = run_demo(table_console())
    raise typer.Exit(code)


def _plan_sample() -> None:
    from importlib.resources import files

    from worker.cadence.engine import Planner
    from worker.settings.loader import default_config_dir
    from worker.views.planview import plan_deals, write_table

    settings = config_or_exit(default_config_dir() / "winback.yaml", require_env=False)
    sample = Path(str(files("worker") / "samples" / "deals.jsonl"))
    items = read_deals(sample)
    latest = max((d.closed_at.date() if isinstance(d.closed_at, datetime) else d.closed_at)
                 for d in items if d.closed_at is not None)
    moment = datetime.combine(latest, time(15), tzinfo=UTC)
    console = table_console()
    console.print(f"Planning {len(items)} sample deals with the default playbook as of "
                  f"{moment.date()}\n")
    count = write_table(plan_deals(Planner(settings, "acme-sf"), items, moment), console)
    console.print(f"\n{count} task(s) planned. Edit the rules in config/playbook.yaml and run "
                  "`winback plan` to see the change.")
