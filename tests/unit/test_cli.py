"""The command line's rough edges: --version, help that shows flags as flags, `--now` as a
plain date, `-o` honoured for every format, ledger errors that name the ledger, and read-only
commands that never create a database file."""

from __future__ import annotations

import json
import re
import socket
from importlib.metadata import version
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from worker.cli.main import app

SAMPLE = Path(__file__).resolve().parent.parent.parent / "worker" / "samples" / "deals.jsonl"
CONFIG = """\
version: 1
connections:
  - name: crm
    kind: hubspot
    auth: {access_token: "${WINBACK_TEST_TOKEN:-pat-x}"}
"""
COMMANDS = ("validate", "plan", "schema", "demo", "migrate", "sync", "run", "status", "report",
            "sandbox", "doctor")


def invoke(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("WINBACK_DATABASE_URL", raising=False)
    path = tmp_path / "winback.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def migrated(config: Path) -> Path:
    result = invoke("migrate", config)
    assert result.exit_code == 0, result.output
    return config


def test_version_prints_the_package_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"winback {version('winback')}"


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_flags_as_flags(command: str) -> None:
    """A flag is `--dry-run`, not `--dry-run <bool>` (an option that seems to want a value)."""
    result = invoke(command, "--help")
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.stdout, result.stdout
    assert re.search(r"^\s+--help\s+Show this message", result.stdout, re.M), result.stdout


def test_sync_help_lists_its_flags() -> None:
    text = invoke("sync", "--help").stdout
    assert re.search(r"^\s+--dry-run\s+Pull and plan; write nothing\.", text, re.M), text
    assert re.search(r"^\s+--connection <str>\s+Only this connection\.", text, re.M), text


def test_now_accepts_a_plain_date_as_the_start_of_that_day_utc(config: Path) -> None:
    plain = invoke("plan", config, "--deals", SAMPLE, "--format", "json", "--now", "2026-12-01")
    full = invoke("plan", config, "--deals", SAMPLE, "--format", "json", "--now",
                  "2026-12-01T00:00:00Z")
    assert plain.exit_code == 0, plain.output
    assert plain.stdout == full.stdout and plain.stdout.strip()


def test_now_rejects_a_bad_date_with_the_forms_it_takes(config: Path) -> None:
    result = invoke("plan", config, "--deals", SAMPLE, "--now", "2026-13-01")
    assert result.exit_code == 2
    assert "--now: '2026-13-01' is not an ISO 8601 date or date-time" in result.stderr
    assert "2027-11-12 for the start of that day UTC" in result.stderr


@pytest.mark.parametrize("fmt", ["table", "json", "html"])
def test_plan_writes_every_format_to_dash_o(config: Path, tmp_path: Path, fmt: str) -> None:
    """`-o` holds what stdout would have held; stdout only says where it went."""
    target = tmp_path / f"plan.{fmt}"
    args = ("plan", config, "--deals", SAMPLE, "--now", "2026-12-01", "--format", fmt)
    result = invoke(*args, "-o", target)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"wrote {target}")
    text = target.read_text()
    if fmt == "html":
        assert text.lstrip().lower().startswith("<!doctype html")
        return
    assert text == invoke(*args).stdout
    if fmt == "json":
        assert all(json.loads(line) for line in text.splitlines())
    else:
        assert "task(s) planned for 5 deal(s)" in text


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_plan_diff_writes_to_dash_o(migrated: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"diff.{fmt}"
    result = invoke("plan", migrated, "--diff", "--format", fmt, "-o", target)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {target}\n"
    assert target.read_text() == ("" if fmt == "json" else
                                  "No change: this configuration plans the same in-flight "
                                  "tasks.\n")


def test_plan_diff_refuses_html(migrated: Path) -> None:
    result = invoke("plan", migrated, "--diff", "--format", "html", "-o", "x.html")
    assert result.exit_code == 2
    assert "--format html: the diff is shown as table or json" in result.stderr


@pytest.mark.parametrize("fmt", ["table", "json", "csv", "html"])
def test_report_writes_every_format_to_dash_o(migrated: Path, tmp_path: Path, fmt: str) -> None:
    """The table goes to the file as a table (not as JSON)."""
    target = tmp_path / f"report.{fmt}"
    result = invoke("report", migrated, "--format", fmt, "-o", target)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {target}\n"
    text = target.read_text()
    assert text == invoke("report", migrated, "--format", fmt).stdout
    if fmt == "table":
        assert "Win-back report: deals lost since" in text and not text.startswith("{")


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_status_writes_every_format_to_dash_o(migrated: Path, tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"status.{fmt}"
    result = invoke("status", migrated, "--format", fmt, "-o", target)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"wrote {target}\n"
    text = target.read_text()
    if fmt == "json":
        assert [row["connection"] for row in json.loads(text)] == ["crm"]
    else:
        assert "connection crm" in text


def test_doctor_refuses_dash_o_rather_than_ignoring_it(config: Path) -> None:
    result = invoke("doctor", config, "-o", "out.txt")
    assert result.exit_code == 2
    assert "No such option: -o" in result.stderr


@pytest.mark.parametrize("argv", [("plan", "--diff"), ("status",), ("report",)])
def test_read_only_commands_never_create_the_sqlite_ledger(config: Path,
                                                           argv: tuple[str, ...]) -> None:
    result = invoke(argv[0], config, *argv[1:])
    ledger = config.parent / "winback.db"
    assert result.exit_code == 2, result.output
    assert not ledger.exists() and not Path(f"{ledger}-wal").exists()
    assert f"the SQLite ledger {ledger} does not exist" in result.stderr
    assert "run `winback migrate CONFIG` or `winback sync CONFIG` first" in result.stderr


def test_a_ledger_without_the_schema_is_named(config: Path) -> None:
    ledger = config.parent / "winback.db"
    ledger.touch()
    result = invoke("status", config)
    assert result.exit_code == 2
    assert f"ledger sqlite:///{ledger}: the ledger database has no winback schema yet: run " \
           "`winback migrate CONFIG` first" in result.stderr


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("argv", [("status",), ("plan", "--diff"), ("migrate",), ("sync",)])
def test_an_unreachable_ledger_is_named_without_its_password(
        config: Path, monkeypatch: pytest.MonkeyPatch, argv: tuple[str, ...]) -> None:
    port = _closed_port()
    monkeypatch.setenv("WINBACK_DATABASE_URL",
                       f"postgresql://winback:Hunter2-S3CRET@127.0.0.1:{port}/ledger")
    result = invoke(argv[0], config, *argv[1:])
    assert result.exit_code == 1, result.output
    assert f"cannot open the ledger postgresql+psycopg://winback:***@127.0.0.1:{port}/ledger" \
           in result.stderr
    assert "check WINBACK_DATABASE_URL" in result.stderr
    assert "S3CRET" not in result.output and "Traceback" not in result.output
