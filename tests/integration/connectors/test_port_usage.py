"""The worker uses a connector only through the `Connector` protocol: no `getattr` on one."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def _getattr_on_connectors(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("getattr", "hasattr") and node.args \
                and "connector" in ast.unparse(node.args[0]).lower():
            lines.append(node.lineno)
    return lines


def test_no_getattr_on_a_connector_in_the_product() -> None:
    found = [f"{path.relative_to(ROOT)}:{line}"
             for folder in ("worker", "connectors", "sandbox")
             for path in sorted((ROOT / folder).rglob("*.py"))
             for line in _getattr_on_connectors(path.read_text(encoding="utf-8"))]
    assert found == [], "declare the member on connectors.base.Connector instead: " \
        + ", ".join(found)


def test_the_check_sees_a_getattr_on_a_connector() -> None:
    assert _getattr_on_connectors('getattr(ctx.connector, "write_batch", 100)') == [1]
    assert _getattr_on_connectors('getattr(exc, "fix", "")') == []
