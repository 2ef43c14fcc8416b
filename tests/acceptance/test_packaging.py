"""The image and the wheel: what the Dockerfile installs works outside the checkout."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def test_wheel_carries_the_config_and_migrations(tmp_path: Path) -> None:
    """The built wheel holds the default playbook, the example config and the migrations."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-cache-dir",
                    "--wheel-dir", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("winback-*.whl"))
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
