"""The image and the wheel: what the Dockerfile installs works outside the checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from worker.cli.app import SANDBOX_EXTRA
from worker.cli.main import app

ROOT = Path(__file__).resolve().parent.parent.parent
# What the sandbox needs and production must not carry.
EXTRA = {"faker", "lark", "trustme", "uvicorn", "httptools", "starlette", "anyio"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel `pip wheel .` builds (the Dockerfile's build stage), built once."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-cache-dir",
                    "--wheel-dir", str(out), str(ROOT)], check=True, capture_output=True)
    return next(out.glob("winback-*.whl"))


def test_wheel_carries_the_config_and_migrations(wheel: Path) -> None:
    """The built wheel holds the default playbook, the example config and the migrations."""
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("worker/_config/playbook.yaml", "worker/_config/winback.yaml",
                   "worker/ledger/migrations/env.py",
                   "worker/ledger/migrations/versions/0001_initial.py",
                   "worker/ledger/migrations/script.py.mako", "worker/samples/deals.jsonl",
                   "connectors/base.py", "sandbox/core.py"):
        assert needed in names, needed


def test_dockerfile_runs_winback_as_a_non_root_user_with_a_healthcheck() -> None:
    """Slim base, non-root user, HEALTHCHECK on /healthz, `winback run` on the mounted config."""
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.1[1-9]-slim", text, re.M)
    assert re.search(r"^USER winback$", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert 'CMD ["run", "/config/winback.yaml"]' in text
    for copied in re.findall(r"^COPY (?!--from)(.+?) \S+$", text, re.M):
        for name in copied.split():
            assert (ROOT / name).exists(), f"Dockerfile copies {name}, which is missing"


@pytest.mark.slow
@pytest.mark.timeout(1000)
def test_image_install_steps_work_in_a_fresh_venv() -> None:
    """deploy/check-image-steps.sh: the Dockerfile's pip steps in fresh venvs, then the CLI."""
    proc = subprocess.run(["bash", str(ROOT / "deploy" / "check-image-steps.sh")],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "image steps ok" in proc.stdout


def _requirements(wheel: Path) -> tuple[set[str], dict[str, set[str]]]:
    """The wheel's Requires-Dist: runtime distribution names, and names by extra."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(zf.read(meta).decode())
    runtime: set[str] = set()
    extras: dict[str, set[str]] = {}
    for line in message.get_all("Requires-Dist") or []:
        name = re.split(r"[\s\[<>=!~;(]", line, maxsplit=1)[0].lower()
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", line)
        if extra:
            extras.setdefault(extra.group(1), set()).add(name)
        else:
            runtime.add(name)
    return runtime, extras


def test_wheel_runtime_dependencies_leave_the_sandbox_to_its_extra(wheel: Path) -> None:
    """`pip install winback` brings none of the sandbox's packages (faker, lark, trustme, the
    HTTP layer); `winback[sandbox]` brings them all, and the names the CLI recognises as the
    missing extra are exactly those."""
    runtime, extras = _requirements(wheel)
    assert "simple-salesforce" in runtime and "sqlalchemy" in runtime
    assert not runtime & EXTRA, runtime & EXTRA
    assert extras.get("sandbox") == EXTRA
    assert set(SANDBOX_EXTRA) == EXTRA
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert {re.split(r"[<>=!~]", d)[0] for d in declared["optional-dependencies"]["sandbox"]
            } == EXTRA


@pytest.fixture
def no_sandbox_extra(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """This process as a plain install sees it: faker, lark and trustme cannot be imported
    (None in sys.modules makes `import` raise ModuleNotFoundError), nor anything needing them."""
    for name in list(sys.modules):
        if name.partition(".")[0] in {*EXTRA, "sandbox"}:
            monkeypatch.delitem(sys.modules, name)
    for name in EXTRA:
        monkeypatch.setitem(sys.modules, name, None)
    yield
    for name in list(sys.modules):  # what the command imported half-way goes too
        if name.partition(".")[0] == "sandbox":
            sys.modules.pop(name, None)


@pytest.mark.parametrize("command", ["demo", "sandbox"])
def test_without_the_extra_demo_and_sandbox_say_how_to_install_it(
        no_sandbox_extra: None, command: str) -> None:
    """Exit 2 with the pip command, not a traceback; the rest of the CLI is untouched."""
    result = CliRunner().invoke(app, [command, *(["--salesforce-port", "0", "--hubspot-port",
                                                  "0"] if command == "sandbox" else [])])
    assert result.exit_code == 2, result.output
    assert f"winback {command}: the CRM sandbox is not installed" in result.output
    assert "pip install 'winback[sandbox]'" in result.output
    assert "Traceback" not in result.output


def test_demo_plan_only_needs_no_sandbox(no_sandbox_extra: None) -> None:
    """`winback demo --plan-only` plans the bundled sample with the playbook alone."""
    result = CliRunner().invoke(app, ["demo", "--plan-only"])
    assert result.exit_code == 0, result.output
    assert "task(s) planned" in result.output


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_plain_install_in_a_fresh_venv_runs_the_product_without_the_sandbox(
        tmp_path: Path) -> None:
    """`pip install .` (no extras) in a fresh venv: `winback validate config/winback.yaml` and
    `winback --help` work, `import faker` fails, and `winback demo` says how to get the extra."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                              "--no-cache-dir", str(ROOT)], capture_output=True, text=True,
                             timeout=800)
    assert install.returncode == 0, install.stderr[-2000:]
    key = tmp_path / "sf.key"
    key.write_text("not read by validate\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WINBACK_", "SF_",
                                                                      "HUBSPOT_"))}
    env |= {"SF_CLIENT_ID": "client", "SF_PRIVATE_KEY_FILE": str(key), "SF_USERNAME": "u",
            "HUBSPOT_TOKEN": "pat-x"}
    winback = str(venv / "bin" / "winback")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path,
                              timeout=120)

    validated = run(winback, "validate", str(ROOT / "config" / "winback.yaml"))
    assert validated.returncode == 0 and validated.stdout.strip() == "ok", (
        validated.stdout + validated.stderr)
    helped = run(winback, "--help")
    assert helped.returncode == 0 and "validate" in helped.stdout, helped.stderr
    for name in sorted(EXTRA):
        imported = run(str(venv / "bin" / "python"), "-c", f"import {name}")
        assert imported.returncode != 0 and "ModuleNotFoundError" in imported.stderr, name
    demo = run(winback, "demo")
    assert demo.returncode == 2, demo.stdout + demo.stderr
    assert "pip install 'winback[sandbox]'" in demo.stderr
    assert "Traceback" not in demo.stderr
