"""The sandbox stands alone: nothing in sandbox/ imports worker or connectors."""

from __future__ import annotations

import ast
from pathlib import Path

SANDBOX = Path(__file__).resolve().parents[3] / "sandbox"


def test_sandbox_never_imports_worker_or_connectors() -> None:
    """Every module under sandbox/ is free of worker/connectors imports."""
    offenders = []
    files = sorted(SANDBOX.rglob("*.py"))
    assert any(f.parent.name == "salesforce" for f in files)
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names
                          if n.split(".")[0] in ("worker", "connectors")]
    assert offenders == []
