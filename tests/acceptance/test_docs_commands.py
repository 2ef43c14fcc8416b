"""The commands the README tells a new user to type work as written, in a shell, in order,
against the sandbox they start (and the migrate/status commands of docs/operations.md)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def readme_block() -> list[str]:
    """The shell block after "Try the example configuration against the sandbox"."""
    text = (ROOT / "README.md").read_text()
    section = text.split("Try the example configuration against the sandbox", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the README lost its sandbox walk-through"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()
            if line.strip()]


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """Copy the checkout's config and samples to a scratch dir and run the README's lines."""
    if not (_port_free(8443) and _port_free(8765)):
        pytest.skip("ports 8443/8765 are in use; the README's sandbox needs them")
    for name in ("config", "worker"):
        shutil.copytree(ROOT / name, tmp_path / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.db*"))
    venv = tmp_path / ".venv"
    (venv / "bin").mkdir(parents=True)
    for tool in ("winback", "python"):
        (venv / "bin" / tool).symlink_to(ROOT / ".venv" / "bin" / tool)
    lines = readme_block()
    background = [line for line in lines if line.endswith("&")]
    assert len(background) == 1 and "winback sandbox" in background[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WINBACK_", "SF_",
                                                                      "HUBSPOT_"))}
    sandbox = subprocess.Popen(["bash", "-c", background[0].rstrip("&").strip()],
                               cwd=tmp_path, env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "sandbox.env").exists():
            assert sandbox.poll() is None, sandbox.stdout.read() if sandbox.stdout else ""
            assert time.monotonic() < deadline, "the sandbox never wrote sandbox.env"
            time.sleep(0.2)
        stop = [line for line in lines if line.startswith("kill")]
        assert stop == ["kill %1"], "the README must say how to stop the sandbox"
        rest = [line for line in lines if line not in background and line not in stop]
        script = "set -e\n" + "\n".join(rest) + "\n"
        script += ".venv/bin/winback migrate config/winback.yaml\n"  # docs/operations.md
        script += ".venv/bin/winback status config/winback.yaml\n"
        proc = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        out = proc.stdout
        assert "checks passed" in out and "FAIL" not in out
        assert (tmp_path / "plan.html").exists()
        assert "acme-sf: ok" in out and "acme-hs: ok" in out
        assert "Win-back report" in out
        bundle = re.search(r"SF_CA_BUNDLE=(\S+)", (tmp_path / "sandbox.env").read_text())
        assert bundle, "sandbox.env lost SF_CA_BUNDLE"
        ca_dir = Path(bundle.group(1)).parent
        assert ca_dir.is_dir()
        os.killpg(sandbox.pid, signal.SIGTERM)  # what `kill %1` sends the background job
        assert sandbox.wait(timeout=30) == 0
        assert not ca_dir.exists(), "the stopped sandbox left its temporary directory"
    finally:
        if sandbox.poll() is None:
            os.killpg(sandbox.pid, signal.SIGINT)
            sandbox.wait(timeout=30)


def test_files_the_walkthrough_writes_are_git_ignored() -> None:
    """`--env-file X`, `-o X` in the README block, the default `plan --format html` page and
    the SQLite ledger next to the config: none of them shows up in `git status`."""
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    written = [m for line in readme_block()
               for m in re.findall(r"(?:--env-file|-o|--output)\s+(\S+)", line)]
    assert "sandbox.env" in written and "plan.html" in written
    names = [*written, "winback-plan.html", "config/winback.db"]
    proc = subprocess.run([git, "check-ignore", "--no-index", *names], cwd=ROOT,
                          capture_output=True, text=True)
    ignored = set(proc.stdout.split())
    assert ignored == set(names), f"not git-ignored: {sorted(set(names) - ignored)}"
