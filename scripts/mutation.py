"""The mutation check: does the test suite fail when one line of product code is broken?

Each mutation is an exact (file, old line, new line) edit. For each one the repository is
copied to a temporary directory (without .git and .venv), the line is replaced, and the suite
runs there with this repository's virtualenv (`pytest -x -q`; PYTHONPATH points at the copy,
so the `winback` processes the tests start run the mutated code too). A mutation is `caught`
when the run fails, `survived` when it passes. When the old line is not in the file exactly
once (a refactor moved or changed it), the script says "no longer applies" and exits non-zero
instead of passing silently: update the line here.

    .venv/bin/python scripts/mutation.py              # every mutation, the whole suite each
    .venv/bin/python scripts/mutation.py --quick      # each against its narrowed test list
    .venv/bin/python scripts/mutation.py --only lease-check-noop --only saturdays
    make mutation                                     # the first form (not part of make test)

Exit status: 0 when every mutation was caught, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IGNORE = shutil.ignore_patterns(".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache",
                                ".ruff_cache", "*.egg-info", "node_modules")


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    file: str
    old: str  # one whole line, exactly as it is in the file
    new: str
    tests: tuple[str, ...]  # --quick: the tests expected to catch it


MUTATIONS = (
    Mutation("double-send", "every CRM batch is sent twice", "worker/sync/write.py",
             "            results = ctx.connector.write_tasks(drafts)",
             "            results = ctx.connector.write_tasks(drafts); "
             "ctx.connector.write_tasks(drafts)",
             ("tests/reliability/test_write_calls.py",)),
    Mutation("partial-reconcile", "only one `sending` row is looked up, the rest re-sent",
             "worker/sync/write.py",
             "    found = ctx.connector.find_tasks([r.key for r in rows])",
             "    found = ctx.connector.find_tasks([r.key for r in rows][:1])",
             ("tests/reliability/test_crash.py::"
              "test_kill_between_sending_and_written_loses_and_duplicates_nothing",)),
    Mutation("lease-check-noop", "Lease.check() never raises (CRM calls after the deadline)",
             "worker/ledger/leases.py",
             "        if time.monotonic() > self.deadline:",
             "        if False:",
             ("tests/reliability/test_lease_deadline.py",)),
    Mutation("fence-noop", "a fenced write goes on after another process took the lease",
             "worker/ledger/leases.py",
             "        if result.rowcount != 1:",
             "        if False:",
             ("tests/reliability/test_replicas.py::"
              "test_a_paused_lease_holder_is_replaced_and_writes_nothing_twice",)),
    Mutation("no-on-conflict", "task insert without ON CONFLICT DO NOTHING",
             "worker/ledger/store.py",
             "        statement = _insert(conn, task).on_conflict_do_nothing("
             'index_elements=["key"])',
             "        statement = _insert(conn, task)",
             ("tests/unit/test_ledger_insert.py",)),
    Mutation("salesforce-batch-100", "the worker writes Salesforce tasks 100 per call",
             "connectors/salesforce/connector.py",
             "    write_batch = 200  # sObject Collections take 200 records per call "
             "(reference §3.4)",
             "    write_batch = 100  # sObject Collections take 200 records per call "
             "(reference §3.4)",
             ("tests/reliability/test_write_calls.py",)),
    Mutation("planner-first-task-only", "the planner keeps only each deal's first task",
             "worker/cadence/engine.py",
             "        return DealPlan(deal.id, cadence.id, day0, owner.owner_id, tuple(tasks), "
             "skipped,",
             "        return DealPlan(deal.id, cadence.id, day0, owner.owner_id, tuple(tasks[:1]), "
             "skipped,",
             ("tests/reliability/test_bad_data.py",)),
    Mutation("create-date-ignored", "due_tasks ignores create_after (the whole plan at once)",
             "worker/ledger/store.py",
             "                               task.c.create_after <= now)",
             "                               task.c.create_after.is_not(None))",
             ("tests/reliability/test_bad_data.py",)),
    Mutation("saturdays", "Saturday is a working day", "worker/cadence/calendar.py",
             "        self._weekend = frozenset(WEEKDAY_NUMBERS[d] for d in weekend)",
             '        self._weekend = frozenset(WEEKDAY_NUMBERS[d] for d in weekend if d != "sat")',
             ("tests/reliability/test_crash.py::"
              "test_kill_between_sending_and_written_loses_and_duplicates_nothing",)),
)


def apply(copy: Path, mutation: Mutation) -> str | None:
    """Replace the line in the copy; None when done, else why it no longer applies."""
    path = copy / mutation.file
    if not path.exists():
        return f"{mutation.file} does not exist"
    lines = path.read_text(encoding="utf-8").split("\n")
    hits = [i for i, line in enumerate(lines) if line == mutation.old]
    if len(hits) != 1:
        return (f"{mutation.file}: the line {mutation.old.strip()!r} occurs {len(hits)} times "
                "(expected once)")
    lines[hits[0]] = mutation.new
    path.write_text("\n".join(lines), encoding="utf-8")
    return None


def first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0]
    tail = [line for line in output.splitlines() if line.strip()]
    return tail[-1] if tail else "(no output)"


def run(mutation: Mutation, *, quick: bool, timeout: float) -> tuple[str, str, float]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"winback-mutation-{mutation.name}-") as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(ROOT, copy, ignore=IGNORE)
        problem = apply(copy, mutation)
        if problem:
            return "no longer applies", problem, 0.0
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(copy)
        probe = subprocess.run([sys.executable, "-c", "import worker; print(worker.__file__)"],
                               env=env, cwd=copy, capture_output=True, text=True, check=True)
        if not probe.stdout.strip().startswith(str(copy)):
            raise SystemExit(f"the copy's code is not the one imported: {probe.stdout.strip()}")
        argv = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                *(mutation.tests if quick else ())]
        try:
            proc = subprocess.run(argv, env=env, cwd=copy, capture_output=True, text=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return "caught?", f"the run timed out after {timeout:.0f} s", timeout
        seconds = time.monotonic() - started
        output = proc.stdout + proc.stderr
        if proc.returncode == 0:
            return "survived", "every test passed", seconds
        return "caught", first_failure(output), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="run each mutation against its narrowed test list only")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run this mutation (repeatable); names: "
                             + ", ".join(m.name for m in MUTATIONS))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    args = parser.parse_args(argv)
    unknown = set(args.only) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutation(s): {', '.join(sorted(unknown))}")
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    scope = "narrowed test lists (--quick)" if args.quick else "the whole suite (pytest -x -q)"
    print(f"mutation check against {scope}", flush=True)
    print("| mutation | file | result | first failing test | seconds |\n|---|---|---|---|---|",
          flush=True)
    ok = True
    for mutation in chosen:
        result, detail, seconds = run(mutation, quick=args.quick, timeout=args.timeout)
        ok = ok and result == "caught"
        print(f"| {mutation.name}: {mutation.what} | {mutation.file} | {result} | {detail} | "
              f"{seconds:.0f} |", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
