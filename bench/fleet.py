"""Many connections on several `winback run` replicas sharing one PostgreSQL ledger.

    python -m bench fleet --connections 1000 --replicas 10 --minutes 8
    python -m bench fleet --connections 50 --replicas 3 --minutes 1      # the small form

Half the connections are Salesforce orgs, half HubSpot portals, each an account of its own
(sandbox/tenants.py: one emulator per org or portal, behind one server per CRM), with a few
closed-lost deals each. Every connection polls every 5 minutes on the simulated clock, which
runs `--rate` times faster than real time (WINBACK_CLOCK_RATE): at 30, a poll every 10 s.
Halfway through, one replica holding a lease is killed (-9) and a new one started, as a pod
would be. Measured: each connection's tick lag (the start of a tick after the one before,
minus the poll interval), ticks per replica, PostgreSQL connections of the ledger database
(pg_stat_activity, sampled), the time until the killed replica's leased connections tick
again elsewhere, overlapping runs of one login (every emulator's run tracking) and task keys
created twice (every emulator's write log).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

POLL = 300.0  # poll_every, simulated seconds
PG_ADMIN = os.environ.get("WINBACK_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PASSWORD, TOKEN = "fleet-password", "FLEETTOKEN"


def _sql(url: str, statement: str) -> list[tuple[Any, ...]]:
    """Rows of one statement, on a connection of its own (autocommit)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            result = conn.execute(text(statement))
            return [tuple(row) for row in result] if result.returns_rows else []
    finally:
        engine.dispose()


def accounts(n_sf: int, n_hs: int, deals: int) -> tuple[list[Any], list[Any]]:
    from sandbox.hubspot import HubSpotEmulator
    from sandbox.hubspot.seeding import seed_generated as seed_hs
    from sandbox.salesforce import SalesforceEmulator
    from sandbox.salesforce.seeding import seed_generated as seed_sf

    orgs, portals = [], []
    for i in range(n_sf):
        org = SalesforceEmulator(seed=i, username=f"winback@org{i}.example", password=PASSWORD,
                                 security_token=TOKEN, org_id=f"00DWb{i + 1:010d}")
        with org.lock:
            seed_sf(org, {"deals": deals, "seed": i, "days_back": 6, "owners": 3,
                         "inactive_owners": 0})
        orgs.append(org)
    for i in range(n_hs):
        portal = HubSpotEmulator(seed=i, tokens=[f"pat-na1-fleet-{i}"], burst=100_000)
        with portal.lock:
            seed_hs(portal, {"deals": deals, "seed": i, "days_back": 6, "owners": 3,
                         "inactive_owners": 0})
        portals.append(portal)
    return orgs, portals


def _hubspot_owner(base: str, i: int) -> str:
    owners = requests.get(f"{base}/__sandbox/accounts/{i}/objects/owners", timeout=30).json()
    owners = owners.get("results", owners) if isinstance(owners, dict) else owners
    return next(str(o["id"]) for o in owners if not o.get("archived"))


def config_text(orgs: list[Any], portals: list[Any], hs_url: str, workers: int) -> str:
    from sandbox.runner import hubspot_connection, salesforce_connection
    from tests.reliability.expectation import rules_yaml

    text = ("version: 1\ndefaults:\n  timezone: America/New_York\n  calendar: {country: US}\n"
            "  lead_time: 7d\n  grace: 7d\n  horizon: 3y\n"
            f"service: {{tick: 1s, lease_ttl: 30s, http_port: 0, workers: {workers}}}\n"
            "connections:\n")
    extra = "    poll_every: 5m\n    timeout: 10s\n"
    for i, org in enumerate(orgs):
        text += salesforce_connection(f"sf{i}", username=org.options.username, flow="soap",
                                      fallback=org.default_user_id, extra=extra)
    for i in range(len(portals)):
        text += hubspot_connection(f"hs{i}", fallback=_hubspot_owner(hs_url, i), extra=extra,
                                   auth=f'access_token: "${{HS_FLEET_{i}}}"')
    return text + rules_yaml()


class Sampler(threading.Thread):
    """pg_stat_activity of the ledger database every second: connections, and active ones."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.db = url, url.rsplit("/", 1)[1]
        self.samples: list[tuple[int, int]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            (total, active), = _sql(self.url, (
                "SELECT count(*), count(*) FILTER (WHERE state = 'active') FROM "
                f"pg_stat_activity WHERE datname = '{self.db}'"))
            self.samples.append((int(total) - 1, max(0, int(active) - 1)))  # less the sampler


def holders(url: str) -> dict[str, tuple[int, int]]:
    rows = _sql(url, "SELECT name, owner, epoch FROM connection_state WHERE owner IS NOT NULL")
    return {str(name): (int(str(owner).split(":")[1]), int(epoch)) for name, owner, epoch in rows}


def kill_one(db: str, procs: list[subprocess.Popen[str]], rng: random.Random,
             spawn: Any) -> dict[str, Any]:
    """kill -9 a replica holding leases; then the seconds until each of those connections was
    claimed again (a new epoch) by another replica."""
    pids = {p.pid for p in procs}
    deadline = time.monotonic() + 20
    held: dict[str, tuple[int, int]] = {}
    while time.monotonic() < deadline:
        held = {n: h for n, h in holders(db).items() if h[0] in pids}
        if held:
            break
        time.sleep(0.05)
    victim_pid = rng.choice(sorted({h[0] for h in held.values()})) if held else procs[0].pid
    mine = {n: e for n, (pid, e) in held.items() if pid == victim_pid}
    index = next(i for i, p in enumerate(procs) if p.pid == victim_pid)
    procs[index].send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    procs[index].wait()
    procs[index] = spawn()
    taken: dict[str, float] = {}
    while len(taken) < len(mine) and time.monotonic() - killed_at < 120:
        epochs = dict(_sql(db, "SELECT name, epoch FROM connection_state"))
        for name, epoch in mine.items():
            if name not in taken and int(epochs[name]) > epoch:
                taken[name] = round(time.monotonic() - killed_at, 2)
        time.sleep(0.05)
    return {"killed_pid": victim_pid, "leases_held": len(mine), "taken_over_s": taken,
            "replacement_pid": procs[index].pid}


def ticks(logs: dict[int, str]) -> dict[int, list[dict[str, Any]]]:
    """The sync.done / sync.failed lines of each replica (by pid)."""
    out: dict[int, list[dict[str, Any]]] = {}
    for pid, path in logs.items():
        lines = []
        for line in Path(path).read_text(errors="replace").splitlines():
            if '"sync.' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") in ("sync.done", "sync.failed"):
                lines.append(record)
        out[pid] = lines
    return out


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def lags(per_pid: dict[int, list[dict[str, Any]]], rate: float) -> dict[str, Any]:
    """Per connection: the start of each tick after the one before, minus the poll interval,
    in simulated seconds (real x rate); the first tick of each connection is the start-up."""
    starts: dict[str, list[float]] = defaultdict(list)
    results: Counter[str] = Counter()
    for records in per_pid.values():
        for r in records:
            end = datetime.fromisoformat(str(r["timestamp"]).replace("Z", "+00:00"))
            starts[str(r["connection"])].append(end.timestamp() - float(r["seconds"]))
            results[str(r["result"])] += 1
    poll_real = POLL / rate
    lag = [((b - a) - poll_real) * rate for s in starts.values()
           for a, b in zip(sorted(s), sorted(s)[1:], strict=False)]
    worst = {name: max(((b - a) - poll_real) * rate
                       for a, b in zip(sorted(s), sorted(s)[1:], strict=False))
             for name, s in starts.items() if len(s) > 1}
    return {"connections_ticked": len(starts), "intervals": len(lag), "results": dict(results),
            "lag_s": {"p50": round(_pct(lag, 0.5), 1), "p95": round(_pct(lag, 0.95), 1),
                      "max": round(max(lag, default=0.0), 1)},
            "lag_of_poll": {"p50": round(_pct(lag, 0.5) / POLL, 3),
                            "p95": round(_pct(lag, 0.95) / POLL, 3),
                            "max": round(max(lag, default=0.0) / POLL, 3)},
            "per_connection_max_lag_p95_s": round(_pct(list(worst.values()), 0.95), 1)}


def run(args: argparse.Namespace, database_url: str | None = None) -> dict[str, Any]:
    """The scenario; on `database_url` (an empty database), else on a database of its own
    made on the WINBACK_TEST_PG server (default 127.0.0.1:5432) and dropped after."""
    from sandbox.tenants import overlapping_runs, serve_orgs, serve_portals
    from sandbox.tls import make_ca

    own = database_url is None
    db = database_url or PG_ADMIN.rsplit("/", 1)[0] + f"/fleet_bench_{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="winback-fleet-"))
    started = time.monotonic()
    orgs, portals = accounts(args.connections // 2, args.connections - args.connections // 2,
                             args.deals)
    ca = make_ca(tmp / "ca")
    sf, hs = serve_orgs(orgs, ca), serve_portals(portals)
    setup_s = time.monotonic() - started
    config = tmp / "winback.yaml"
    config.write_text(config_text(orgs, portals, hs.url, args.workers))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WINBACK_", "SF_", "HS_"))}
    env.update({"SF_LOGIN_URL": sf.url, "SF_CA_BUNDLE": str(ca.ca_path), "SF_PASSWORD": PASSWORD,
                "SF_TOKEN": TOKEN, "HUBSPOT_BASE_URL": hs.url,
                "WINBACK_DATABASE_URL": db, "WINBACK_CLOCK_RATE": str(args.rate),
                "WINBACK_CLOCK_EPOCH": str(time.time()),
                "WINBACK_LOG_LEVEL": "INFO", "LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"})
    env.update({f"HS_FLEET_{i}": f"pat-na1-fleet-{i}" for i in range(len(portals))})
    if own:
        _sql(PG_ADMIN, f"CREATE DATABASE {db.rsplit('/', 1)[1]}")
    sampler = Sampler(db)
    procs: list[subprocess.Popen[str]] = []
    names: dict[int, str] = {}
    try:
        subprocess.run([sys.executable, "-m", "worker", "migrate", str(config)], env=env,
                       check=True, capture_output=True, timeout=300)

        def spawn() -> subprocess.Popen[str]:
            log = open(tmp / f"replica-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
            proc = subprocess.Popen([sys.executable, "-m", "worker", "run", str(config)],
                                    env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
                                    cwd=tmp)
            log.close()  # the child has its own descriptor
            names[proc.pid] = log.name
            return proc

        procs = [spawn() for _ in range(args.replicas)]
        original = {p.pid for p in procs}
        sampler.start()
        began = time.monotonic()
        time.sleep(args.minutes * 30)
        kill = kill_one(db, procs, random.Random(args.seed), spawn) if args.kill else {}
        time.sleep(max(0.0, args.minutes * 60 - (time.monotonic() - began)))
    finally:
        sampler.done.set()
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=90))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(-9)
        time.sleep(0.5)
        per_pid = ticks(names)
        (written,), = _sql(db, "SELECT count(*) FROM task WHERE status = 'written'")
        if own:
            _sql(PG_ADMIN, f"DROP DATABASE IF EXISTS {db.rsplit('/', 1)[1]} WITH (FORCE)")
        sf.stop()
        hs.stop()
    done = {pid: sum(r["result"] == "ok" for r in rs) for pid, rs in per_pid.items()}
    steady = {pid: n for pid, n in done.items() if pid in original and pid != kill.get(
        "killed_pid")}
    created_twice = sum(k["created"] > 1 for a in (*orgs, *portals)
                        for k in a.writes.snapshot().values())
    keys = sum(1 for a in (*orgs, *portals) for k in a.writes.snapshot().values()
               if k["created"])
    totals = [s[0] for s in sampler.samples]
    active = [s[1] for s in sampler.samples]
    taken = list(kill.get("taken_over_s", {}).values())
    return {
        "connections": args.connections, "replicas": args.replicas, "minutes": args.minutes,
        "rate": args.rate, "poll_real_s": POLL / args.rate, "workers": args.workers,
        "deals_each": args.deals, "setup_s": round(setup_s, 1), "exit_codes": codes,
        "ticks": lags(per_pid, args.rate),
        "ok_ticks_per_replica": sorted(done.values()),
        "steady_replicas_max_over_min": round(max(steady.values()) / max(1, min(
            steady.values())), 2) if steady else None,
        "pg_connections": {"max": max(totals, default=0),
                           "mean": round(statistics.fmean(totals), 1) if totals else 0,
                           "active_max": max(active, default=0),
                           "active_mean": round(statistics.fmean(active), 2) if active else 0,
                           "max_connections": int(_sql(PG_ADMIN, "SHOW max_connections")[0][0])},
        "kill": {**{k: v for k, v in kill.items() if k != "taken_over_s"},
                 "taken_over": len(taken), "taken_over_max_s": max(taken, default=None),
                 "taken_over_mean_s": round(statistics.fmean(taken), 2) if taken else None},
        "overlapping_runs": len(overlapping_runs([*orgs, *portals])),
        "keys_created_twice": created_twice, "task_keys_created": keys,
        "ledger_written": int(written),
    }


def options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench fleet")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=30.0,
                        help="simulated seconds per real second (poll_every 5m / rate)")
    parser.add_argument("--deals", type=int, default=3, help="closed-lost deals per account")
    parser.add_argument("--workers", type=int, default=2, help="service.workers per replica")
    parser.add_argument("--no-kill", dest="kill", action="store_false")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    print(json.dumps(run(options(argv)), indent=1))
