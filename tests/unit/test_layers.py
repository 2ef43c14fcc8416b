"""The import contracts of pyproject.toml ([tool.importlinter], run by `make test`): each one
catches the import it forbids, the tree keeps them, and the README lists them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
LINT = Path(sys.executable).with_name("lint-imports")

# One import each contract forbids, added to a copy of the tree: (file, line, contract id).
BREAKS = [
    ("connectors/models.py", "import worker.telemetry.logs", "connectors"),
    ("sandbox/tls.py", "import connectors.models", "sandbox"),
    ("worker/views/planview.py", "import sandbox.seed", "extra"),
    ("worker/cadence/keys.py", "import sqlalchemy", "cadence"),
    ("worker/views/reports.py", "import worker.cli.app", "cli"),
    ("worker/settings/errors.py", "import worker.cadence.engine", "acyclic"),
]


def _contracts() -> list[dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(config["tool"]["importlinter"]["contracts"])


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT), "--no-logo", "--no-cache"], cwd=tree, capture_output=True,
                          text=True, timeout=120)


def _copy(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for name in ("worker", "connectors", "sandbox"):
        shutil.copytree(ROOT / name, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    proc = _lint(_copy(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in proc.stdout


def test_each_contract_catches_the_import_it_forbids(tmp_path: Path) -> None:
    """One forbidden import per contract, in a copy: every contract reports BROKEN."""
    assert {c for _, _, c in BREAKS} == {str(c["id"]) for c in _contracts()}
    tree = _copy(tmp_path)
    for path, line, _ in BREAKS:
        with (tree / path).open("a") as fh:
            fh.write(f"\n{line}  # noqa\n")
    proc = _lint(tree)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert f"Contracts: 0 kept, {len(BREAKS)} broken." in proc.stdout


def test_readme_lists_the_contracts() -> None:
    """README's Layout table names exactly the contracts pyproject.toml defines."""
    text = (ROOT / "README.md").read_text().split("## Layout", 1)[1]
    listed = set(re.findall(r"^\| `([a-z]+)` \|", text, re.M))
    assert listed == {str(c["id"]) for c in _contracts()}
