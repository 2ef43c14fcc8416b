"""`winback sandbox` stops cleanly on Ctrl-C (SIGINT) and on SIGTERM (`kill`, `kill %1`):
the emulators stop, the process exits 0 and the temporary directory holding the sandbox's CA
is gone."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _start() -> tuple[subprocess.Popen[str], Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WINBACK_", "SF_",
                                                                      "HUBSPOT_"))}
    proc = subprocess.Popen([sys.executable, "-m", "worker", "sandbox", "--salesforce-port",
                             "0", "--hubspot-port", "0", "--deals", "5"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    text = "".join(seen)
    found = re.search(r"CA: (\S+)\)", text)
    assert found and "Press Ctrl-C" in text, text
    return proc, Path(found.group(1)).parent


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sandbox_removes_its_temp_dir_when_stopped(signum: signal.Signals) -> None:
    proc, tmp = _start()
    try:
        assert tmp.is_dir() and tmp.name.startswith("winback-sandbox-")
        assert (tmp / "ca.pem").exists() or any(tmp.iterdir())
        proc.send_signal(signum)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not tmp.exists(), f"{tmp} left behind after {signum.name}"
