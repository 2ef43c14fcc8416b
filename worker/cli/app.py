"""The `winback` Typer app and what every command module shares (errors, the config, the
console, output files). Command modules import this module and register on `app`; it imports
none of them (worker/cli/main.py, the entry point, imports them all)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Annotated, NoReturn, TextIO

import typer
from rich.console import Console

from worker.settings import Config, ConfigErrors, load_config

app = typer.Typer(
    name="winback",
    help="After a deal is lost, make sure the rep follows up, until the opportunity is reborn.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)

ConfigArg = Annotated[Path, typer.Argument(help="The configuration file (YAML).",
                                           show_default=False)]


def fail_input(lines: list[str], hint: str | None = None) -> NoReturn:
    for line in lines:
        err.print(line, markup=False)
    if hint:
        err.print(hint, markup=False)
    raise typer.Exit(2)


def config_or_exit(path: Path, *, require_env: bool = True) -> Config:
    try:
        return load_config(path, require_env=require_env)
    except ConfigErrors as exc:
        fail_input([str(e) for e in exc.errors],
                   f"{len(exc.errors)} problem(s) in the configuration; nothing was run.")


def table_console(out: TextIO | None = None) -> Console:
    """Tables are wide: off a terminal, lay them out for 160 columns instead of 80."""
    out = out or sys.stdout
    return Console(file=out, highlight=False, width=None if out.isatty() else 160)


def version_text() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"winback {version('winback')}"
    except PackageNotFoundError:  # a source tree that was never installed
        return "winback (not installed)"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(version_text())
        raise typer.Exit(0)


@app.callback()
def _root(
    _version: Annotated[bool, typer.Option("--version", help="Print the version and exit.",
                                           callback=_show_version, is_eager=True)] = False,
) -> None:
    """After a deal is lost, make sure the rep follows up, until the opportunity is reborn."""


def parse_now(text: str | None) -> datetime:
    """`--now`: an ISO 8601 date-time with a zone, or a plain date (the start of that day, UTC)."""
    if text is None:
        return datetime.now(UTC)
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail_input([f"--now: {text!r} is not an ISO 8601 date or date-time "
                    "(expected e.g. 2027-11-12 for the start of that day UTC, or "
                    "2027-11-12T14:00:00Z)"])
    if moment.tzinfo is None:
        fail_input([f"--now: {text!r} has no time zone (add Z for UTC or an offset like +01:00)"])
    return moment


@contextmanager
def ledger_errors(config: Path) -> Iterator[None]:
    """A ledger without the schema (or no SQLite file) exits 2, an unreachable one exits 1;
    both with a message that names the ledger and the fix."""
    from worker.ledger.migrate import SchemaOutOfDate
    from worker.service.wiring import LedgerUnavailable

    try:
        yield
    except SchemaOutOfDate as exc:
        fail_input([f"{config}: {exc}"])
    except LedgerUnavailable as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None


# The distributions of the `sandbox` extra (pyproject.toml), by the module each one installs.
SANDBOX_EXTRA = {"faker": "faker", "lark": "lark", "trustme": "trustme", "uvicorn": "uvicorn",
                 "httptools": "httptools", "starlette": "starlette", "anyio": "anyio"}


@contextmanager
def sandbox_extra(command: str) -> Iterator[None]:
    """Around the commands that run the CRM emulators (`demo`, `sandbox`): a plain install has
    no sandbox extra, so say how to get it instead of a traceback (exit 2)."""
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in {*SANDBOX_EXTRA.values(), "sandbox"}:
            raise
        fail_input([f"winback {command}: the CRM sandbox is not installed (no module "
                    f"{missing!r}); `{command}` needs the optional extra `sandbox`"],
                   "Install it with: pip install 'winback[sandbox]' (in a checkout, "
                   "`make demo` or `make install` installs it into .venv). Every other "
                   "command works without it (`winback demo --plan-only` too).")


@contextmanager
def output_stream(output: Path | None) -> Iterator[TextIO]:
    """stdout, or the `-o` file: written whole once the command succeeded, then `wrote FILE`."""
    if output is None:
        yield sys.stdout
        return
    buffer = io.StringIO()
    yield buffer
    try:
        output.write_text(buffer.getvalue(), encoding="utf-8")
    except OSError as exc:
        fail_input([f"--output: cannot write {output}: {exc.strerror}"])
    typer.echo(f"wrote {output}")
