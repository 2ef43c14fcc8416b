"""A second real client per CRM: jsforce (Salesforce) and @hubspot/api-client (Node), pinned in
tests/node/package-lock.json, run with Node's own test runner against the emulators.

One `node --test` process per CRM runs every case of its script (tests/node/*.test.mjs), both
at once; each script resets and seeds its own emulator, so the two share one sandbox. The
scripts get the sandbox's URLs and credentials through environment variables, the sandbox CA
through NODE_EXTRA_CA_CERTS, and nothing else of this environment (no proxy: 127.0.0.1 only).

Without node or the installed clients these tests skip, saying why (`make test` installs the
clients when npm is there); under CI=true they fail instead (tests/ci.py)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.runner import Sandbox, start_sandbox
from tests.integration.node_clients.nodejs import NODE_DIR, node_binary

SCRIPTS = {"hubspot": "hubspot.test.mjs", "salesforce": "salesforce.test.mjs"}
NODE_TIMEOUT = 180  # seconds for one script; each takes about 12 s


@pytest.fixture(scope="module")
def node() -> str:
    return node_binary()


@pytest.fixture(scope="module")
def sandbox(node: str) -> Iterator[Sandbox]:
    started = start_sandbox()
    try:
        yield started
    finally:
        started.stop()


@dataclass
class NodeRun:
    script: Path
    process: subprocess.Popen[bytes]
    output: Path  # stdout and stderr (a file, not a pipe: nothing blocks while the other runs)


@pytest.fixture(scope="module")
def runs(node: str, sandbox: Sandbox,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, NodeRun]]:
    """Both scripts started at once (each drives its own emulator), so the wall time is the
    slower one's, not the sum."""
    logs = tmp_path_factory.mktemp("node-clients")
    started: dict[str, NodeRun] = {}
    try:
        for crm, name in SCRIPTS.items():
            output = logs / f"{crm}.tap"
            with output.open("wb") as sink:
                process = subprocess.Popen([node, "--test", "--test-reporter=tap", name],
                                           cwd=NODE_DIR, env=node_environment(sandbox),
                                           stdout=sink, stderr=subprocess.STDOUT)
            started[crm] = NodeRun(NODE_DIR / name, process, output)
        yield started
    finally:
        for run in started.values():
            if run.process.poll() is None:
                run.process.kill()
            run.process.wait()


def node_environment(sandbox: Sandbox) -> dict[str, str]:
    """Only what the scripts read: PATH, the sandbox variables and its CA; no proxy."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1", "NODE_EXTRA_CA_CERTS": str(sandbox.ca.ca_path),
            **sandbox.environment()}


def declared_cases(script: Path) -> int:
    """How many `test(...)` cases the script declares (one per line, none made in a loop):
    all of them must run and pass."""
    return len(re.findall(r"^\s*test\(", script.read_text(), re.M))


def tap_count(output: str, name: str) -> int:
    found = re.findall(rf"^# {name} (\d+)$", output, re.M)
    return int(found[-1]) if found else -1


@pytest.mark.parametrize("crm", sorted(SCRIPTS))
def test_the_node_client_passes_against_the_emulator(crm: str,
                                                     runs: dict[str, NodeRun]) -> None:
    run = runs[crm]
    try:
        code = run.process.wait(timeout=NODE_TIMEOUT)
    except subprocess.TimeoutExpired:
        run.process.kill()
        run.process.wait()
        pytest.fail(f"node --test {run.script.name} ran past {NODE_TIMEOUT} s; its output so "
                    f"far:\n{run.output.read_text(errors='replace')[-20000:]}", pytrace=False)
    output = run.output.read_text(errors="replace")
    cases = declared_cases(run.script)
    counts = {k: tap_count(output, k) for k in ("tests", "pass", "fail", "cancelled")}
    failing = re.findall(r"^\s*not ok \d+ - (.*)$", output, re.M)
    assert code == 0 and counts == {"tests": cases, "pass": cases, "fail": 0, "cancelled": 0}, (
        f"node --test {run.script.name} exited {code} with {counts} ({cases} cases declared); "
        f"failing: {failing}; its output:\n{output[-20000:]}")
