"""Issue 10's rule edits, replayed through the real `winback sync` and `winback plan --diff`
against the sandbox: an owner override, then a fallback owner, then an unrelated defaults
edit. Each is applied by the next sync, only to the deals that read it, and the diff is then
empty."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.harness import Stack

OVERRIDE = "{timezone: Europe/Berlin, country: DE, subdivision: BY}"


@pytest.fixture
def stack(tmp_path: Path) -> Any:
    s = Stack(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}").start(deals=40)
    text = re.sub(r'fallback_owner: "[^"]*"', 'fallback_owner: ""',
                  s.config_path.read_text())  # as in the issue: no fallback owner at first
    s.config_path.write_text(text)
    yield s
    s.stop()


def run(stack: Stack, *args: str) -> str:
    result = stack.run_once(stack.command(*args, str(stack.config_path)), timeout=180)
    assert result.returncode == 0, result.log
    return result.log


def diff(stack: Stack) -> list[dict[str, Any]]:
    out = stack.run_once(stack.command("plan", str(stack.config_path), "--diff",
                                       "--format", "json"), timeout=180)
    assert out.returncode == 0, out.log
    return [json.loads(line) for line in out.log.splitlines() if line.startswith("{")]


def enrollments(stack: Stack) -> dict[tuple[str, str], dict[str, Any]]:
    """(connection, deal) -> the enrollment row, read straight from the ledger file."""
    db = sqlite3.connect(stack.tmp / "ledger.db")
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute("SELECT * FROM enrollment WHERE status = 'active'").fetchall()
    finally:
        db.close()
    return {(r["connection"], r["deal_id"]): dict(r) for r in rows}


def edit(stack: Stack, connection: str, line: str) -> None:
    """Add a line to one connection's entry (after its fallback_owner line)."""
    text = stack.config_path.read_text()
    head, rest = text.split(f"  - name: {connection}\n", 1)
    entry, sep, tail = rest.partition("  - name: ")
    entry = re.sub(r'    fallback_owner: "[^"]*"\n', lambda m: m.group(0) + line + "\n", entry)
    stack.config_path.write_text(head + f"  - name: {connection}\n" + entry + sep + tail)


def sync_changes(stack: Stack) -> set[tuple[str, str]]:
    """Run `winback sync`; the enrollments it re-planned (their fingerprint changed)."""
    before = enrollments(stack)
    run(stack, "sync")
    after = enrollments(stack)
    return {k for k, row in after.items() if before.get(k, {}).get("rule_version")
            != row["rule_version"]}


def crm_owner(row: dict[str, Any]) -> list[Any]:
    return json.loads(row["owner_input"]) if row["owner_input"] else [None, False, None]


def test_owner_override_fallback_owner_and_an_unrelated_edit(stack: Stack) -> None:
    run(stack, "migrate")
    run(stack, "sync")
    assert diff(stack) == []
    rows = enrollments(stack)

    # 1. An owner override for one HubSpot owner: only that owner's deals move, and why.
    owners = Counter(crm_owner(r)[0] for (c, _), r in rows.items()
                     if c == "hs0" and crm_owner(r)[1])
    owner = owners.most_common(1)[0][0]
    edit(stack, "hs0", f'    owners: {{"{owner}": {OVERRIDE}}}')
    shown = diff(stack)
    ours = {k for k, r in rows.items() if k[0] == "hs0" and crm_owner(r)[0] == owner}
    assert shown and {(c["connection"], c["deal_id"]) for c in shown} <= ours
    assert all(any(w.startswith("owner override timezone") for w in c["why"]) for c in shown)
    table = stack.run_once(stack.command("plan", str(stack.config_path), "--diff"),
                           timeout=180).log
    assert "owner override timezone: America/New_York -> Europe/Berlin" in table
    assert sync_changes(stack) == ours
    assert diff(stack) == []

    # 2. A fallback owner: the inactive owner's deals go to it (owner changes shown).
    fallback = stack.box.active_owners()[1]
    text = stack.config_path.read_text()
    head, tail = text.split("  - name: hs0\n", 1)
    stack.config_path.write_text(head + "  - name: hs0\n" + tail.replace(
        'fallback_owner: ""', f'fallback_owner: "{fallback}"', 1))
    shown = diff(stack)
    inactive = {k for k, r in enrollments(stack).items()
                if k[0] == "hs0" and not crm_owner(r)[1]}
    assert shown and {(c["connection"], c["deal_id"]) for c in shown} <= inactive
    assert all(c["owner_after"] == fallback and c["owner_before"] != fallback
               and any(w.startswith("fallback_owner") for w in c["why"])
               for c in shown if c["change"] in ("moved", "changed"))
    assert sync_changes(stack) == inactive
    assert diff(stack) == []

    # 3. defaults.timezone: re-plans only deals whose zone comes from it (HubSpot owners
    #    have none, except the overridden one; Salesforce users have their own).
    rows = enrollments(stack)
    text = stack.config_path.read_text()
    stack.config_path.write_text(text.replace("timezone: America/New_York",
                                              "timezone: Europe/London", 1))
    def effective(row: dict[str, Any]) -> Any:
        return crm_owner(row)[0] if crm_owner(row)[1] else fallback

    reads = {k for k, r in rows.items()
             if (k[0] == "hs0" and effective(r) != owner)
             or (k[0] == "sf0" and not crm_owner(r)[2])}
    assert diff(stack)
    replanned = sync_changes(stack)
    assert replanned == reads and 0 < len(replanned) < len(rows)
    assert diff(stack) == []
