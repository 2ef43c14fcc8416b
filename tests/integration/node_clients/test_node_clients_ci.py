"""Without node, or without the pinned clients, the Node client tests skip locally, saying why,
and fail under CI=true (the rule of tests/ci.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.node_clients.nodejs import NODE_DIR, node_binary


def test_a_missing_node_fails_under_ci_with_the_reason_and_skips_locally(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no node on PATH
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception,
                       match=r"CI=true and node is not installed .*apt-get install nodejs npm"):
        node_binary()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="node is not installed"):
        node_binary()


def test_clients_not_installed_fail_under_ci_and_say_how_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin" / "node"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(fake.parent))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception,
                       match=r"CI=true and the Node clients jsforce, @hubspot/api-client are not "
                             r"installed .*run make test"):
        node_binary(tmp_path)
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="npm ci --prefix tests/node"):
        node_binary(tmp_path)
    assert NODE_DIR.name == "node" and (NODE_DIR / "package-lock.json").exists()
