"""Under CI=true a test that needs PostgreSQL fails, saying why, when there is none; locally it
skips. Checked by running a PostgreSQL test of this suite against a closed port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
PG_TEST = "tests/unit/test_migrations.py::test_migrations_build_the_declared_schema"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again once the socket is


def _run(ci: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env.update({"CI": ci, "WINBACK_TEST_PG":
                f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/postgres"})
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"{PG_TEST}[postgresql]"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)


def test_a_missing_postgresql_fails_under_ci_with_the_reason_and_skips_locally() -> None:
    ci = _run("true")
    assert ci.returncode != 0, ci.stdout[-2000:]
    assert "CI=true and no PostgreSQL at" in ci.stdout and "start one" in ci.stdout
    local = _run("")
    assert local.returncode == 0, local.stdout[-2000:]
    assert "1 skipped" in local.stdout
