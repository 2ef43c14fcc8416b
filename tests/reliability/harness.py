"""The reliability harness: the sandbox in this process, real `winback` processes against it,
and the checks that count: no key twice in a CRM, each key created by exactly one request and
re-sends counted (from the emulators' write log), every planned task present. `mode="weak"`
runs Salesforce in marker mode and HubSpot in create+search mode with search lag.

"Planned" is computed independently of the worker: the deals are read from each emulator's
admin API and planned by tests/reliability/expectation.py (fixed offsets on a plain calendar,
no product planner), and the CRMs are checked both ways: missing, extra, wrong fields.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sandbox.runner import Sandbox, hubspot_connection, salesforce_connection, start_sandbox
from tests.reliability import expectation
from tests.reliability.expectation import Expected
from worker.settings import Config, load_config

ROOT = Path(__file__).resolve().parent.parent.parent
SECRET_SF_PASSWORD = "SfPassw0rd-S3CRET-7f3a9"  # recognisable fake secrets: must never be logged
SECRET_SF_TOKEN = "SFTOKEN-S3CRET-44b1"
SECRET_HS_TOKEN = "pat-na1-S3CRET-0c9e-4d1f"
# The static tokens the (strict) HubSpot emulator accepts: HUBSPOT_TOKEN and HUBSPOT_TOKEN_<i>.
HS_TOKENS = [SECRET_HS_TOKEN, *(f"{SECRET_HS_TOKEN}-{i}" for i in range(1, 33))]
SECRET_HS_CLIENT = "hs-client-S3CRET-91ab"
SECRET_HS_REFRESH = "hs-refresh-S3CRET-5d2e"
SECRET_SF_CLIENT = "sf-client-S3CRET-2c7d"
SECRETS = (SECRET_SF_PASSWORD, SECRET_SF_TOKEN, SECRET_HS_TOKEN, SECRET_HS_CLIENT,
           SECRET_HS_REFRESH, SECRET_SF_CLIENT)

CONFIG_HEAD = """\
version: 1
defaults:
  timezone: America/New_York
  calendar: {{country: US}}
  lead_time: 7d
  grace: 7d
  horizon: 3y
service: {{tick: 1s, lease_ttl: {ttl}s, http_port: 0, workers: {workers}}}
connections:
"""
FAST = "    poll_every: 1s\n    timeout: 2s\n"


@dataclass
class Run:
    argv: list[str]
    returncode: int
    seconds: float
    log: str


SETTLE = timedelta(minutes=10)
# The weak key modes: Salesforce without the External ID field (a [wb:<key>] Subject marker,
# found by SOQL), HubSpot with a key property without unique values (create+search) whose
# search index trails writes by this long (reference/hubspot.md §1.3: "a few moments").
MODES = ("strict", "weak")
WEAK_SEARCH_LAG = 2.0
# In weak mode a HubSpot row left `sending` is held for the search-lag grace before it is
# re-sent (worker/sync/write.py); a run this much later stands for waiting it out.
PAST_GRACE = 150.0


@dataclass
class Stack:
    """The sandbox plus a configuration for `connections` CRM accounts, and ways to run
    winback processes against them."""

    tmp: Path
    database_url: str
    box: Sandbox = field(init=False)
    config_path: Path = field(init=False)
    logs: list[str] = field(default_factory=list)
    offset: float = 0.0
    hubspot_connections: int = 1
    mode: str = "strict"

    def start(self, *, deals: int = 300, seed: int = 3, salesforce: int = 1, hubspot: int = 1,
              ttl: float = 20, workers: int = 4, key_field: str = "Winback_Key__c",
              hubspot_options: dict[str, Any] | None = None,
              salesforce_options: dict[str, Any] | None = None,
              hubspot_oauth: bool = False, seed_data: bool = True,
              sf_flow: str = "soap", mode: str = "strict", activities: int = 0,
              rules: str | None = None, sf_extra: str = "") -> Stack:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.mode = mode
        weak_sf, weak_hs = weak_options(mode)
        self.box = start_sandbox(seed=seed, ca_dir=self.tmp / "ca",
                                 hubspot_options={"burst": 100_000, "search_per_second": 1000,
                                                  "client_secret": SECRET_HS_CLIENT,
                                                  "refresh_tokens": [SECRET_HS_REFRESH],
                                                  "tokens": HS_TOKENS,
                                                  **weak_hs, **(hubspot_options or {})},
                                 salesforce_options={"password": SECRET_SF_PASSWORD,
                                                     "security_token": SECRET_SF_TOKEN,
                                                     "consumer_secret": SECRET_SF_CLIENT,
                                                     **weak_sf, **(salesforce_options or {})})
        if mode == "weak":  # a key property without unique values: create+search
            self.box.admin("hubspot", "POST", "properties", {
                "objectType": "tasks", "name": "winback_key", "hasUniqueValue": False})
        self.box.seed(deals if seed_data else 0, seed, days_back=6, owners=8, inactive_owners=1,
                      **({"activities": activities} if activities else {}))
        expectation.uniform_owners(self.box)
        sf_fallback, hs_fallback = self.box.active_owners()
        text = CONFIG_HEAD.format(ttl=ttl, workers=workers)
        users = ["winback@sandbox.example"] + [f"winback{i}@sandbox.example"
                                               for i in range(1, salesforce)]
        if salesforce > 1:  # the sandbox app pre-authorises every integration user (jwt)
            self.box.admin("salesforce", "POST", "oauth/apps", {
                "consumer_key": "sandbox-client-id", "consumer_secret": SECRET_SF_CLIENT,
                "certificate": self.box.signing_key.certificate_pem, "run_as": users[0],
                "preauthorized": users})
        for i, username in enumerate(users):
            if i:
                self.box.admin("salesforce", "POST", "users", {
                    "username": username, "password": SECRET_SF_PASSWORD,
                    "security_token": SECRET_SF_TOKEN})
            text += salesforce_connection(f"sf{i}", username=username, key_field=key_field,
                                          fallback=sf_fallback, extra=FAST + sf_extra,
                                          flow=sf_flow)
        for i in range(hubspot):
            token = "${HUBSPOT_TOKEN}" if i == 0 else f"${{HUBSPOT_TOKEN_{i}}}"
            auth = (f'access_token: "{token}"' if not (hubspot_oauth and i == 0) else
                    'client_id: sandbox-client-id, client_secret: "${HS_CLIENT_SECRET}", '
                    'refresh_token: "${HS_REFRESH_TOKEN}"')
            text += hubspot_connection(f"hs{i}", fallback=hs_fallback, auth=auth, extra=FAST)
        text += rules if rules is not None else expectation.rules_yaml()
        self.hubspot_connections = hubspot
        self.config_path = self.tmp / "winback.yaml"
        self.config_path.write_text(text)
        return self

    def set_fallbacks(self, *, salesforce: str, hubspot: str) -> None:
        """Point the connections' fallback_owner at these owners (after a custom seed)."""
        lines = []
        kind = ""
        for line in self.config_path.read_text().splitlines():
            if line.strip().startswith("kind:"):
                kind = line.split(":", 1)[1].strip()
            if line.strip().startswith("fallback_owner:"):
                owner = salesforce if kind == "salesforce" else hubspot
                line = f'    fallback_owner: "{owner}"'
            lines.append(line)
        self.config_path.write_text("\n".join(lines) + "\n")

    # -- processes --------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WINBACK_", "SF_",
                                                                          "HUBSPOT_"))}
        env.update(self.box.environment())
        env.update({"SF_PASSWORD": SECRET_SF_PASSWORD, "SF_TOKEN": SECRET_SF_TOKEN,
                    "SF_CLIENT_SECRET": SECRET_SF_CLIENT,
                    "HUBSPOT_TOKEN": SECRET_HS_TOKEN, "HS_CLIENT_SECRET": SECRET_HS_CLIENT,
                    "HS_REFRESH_TOKEN": SECRET_HS_REFRESH,
                    "WINBACK_DATABASE_URL": self.database_url,
                    "WINBACK_LOG_LEVEL": "DEBUG", "LOG_FORMAT": "json",
                    "WINBACK_CLOCK_OFFSET": str(self.offset), "PYTHONUNBUFFERED": "1"})
        env.update({f"HUBSPOT_TOKEN_{i}": f"{SECRET_HS_TOKEN}-{i}"
                    for i in range(1, self.hubspot_connections)})
        return env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "worker", *args]

    def migrate(self) -> None:
        self.run_once(self.command("migrate", str(self.config_path)), timeout=120)

    def run_once(self, argv: list[str], timeout: float = 300) -> Run:
        started = time.monotonic()
        proc = subprocess.run(argv, env=self.env(), capture_output=True, text=True,
                              timeout=timeout, cwd=self.tmp)
        log = proc.stdout + proc.stderr
        self.logs.append(log)
        return Run(argv, proc.returncode, time.monotonic() - started, log)

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        log = open(self.tmp / f"proc-{time.monotonic_ns()}.log", "w")  # noqa: SIM115
        return subprocess.Popen(self.command(*args), env=self.env(), stdout=log,
                                stderr=subprocess.STDOUT, text=True, cwd=self.tmp)

    def collect_logs(self) -> str:
        for path in sorted(self.tmp.glob("proc-*.log")):
            self.logs.append(path.read_text(errors="replace"))
            path.unlink()
        return "\n".join(self.logs)

    @staticmethod
    def kill(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
        if proc.poll() is None:
            proc.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            proc.wait(timeout=60)

    # -- the CRMs' truth --------------------------------------------------------------------
    def crm_keys(self) -> dict[str, list[str]]:
        """Every task key written, per CRM (a key twice in a list is a duplicate task)."""
        return {
            "salesforce": [t.get("Winback_Key__c") or _marker(t.get("Subject", ""))
                           for t in self.box.tasks("salesforce")],
            "hubspot": [(t.get("properties") or {}).get("winback_key")
                        for t in self.box.tasks("hubspot")],
        }

    def duplicates(self) -> dict[str, int]:
        return {crm: sum(n - 1 for n in Counter(keys).values() if n > 1)
                for crm, keys in self.crm_keys().items()}

    def expected(self, now: datetime | None = None) -> dict[str, dict[str, Expected]]:
        """Every task the CRMs should hold, computed from the deals in the emulators without
        the product's planner (tests/reliability/expectation.py), planned as of `now`."""
        now = now or datetime.now(UTC) + timedelta(seconds=self.offset)
        connections = [expectation.Connection(c.name, c.kind,
                                              c.fallback_owners[0] if c.fallback_owners else None)
                       for c in self.config().connections]
        return expectation.plan(self.box, connections, now)

    def expected_keys(self, now: datetime | None = None) -> dict[str, set[str]]:
        """The keys due to be written by `now` (default: SETTLE ago, so a task that became
        due at some owner's midnight after the worker's last tick is not counted as missed)."""
        now = now or datetime.now(UTC) + timedelta(seconds=self.offset) - SETTLE
        return {crm: {k for k, e in planned.items() if e.create_after <= now}
                for crm, planned in self.expected(now).items()}

    def comparison(self, *, fields: bool = True) -> expectation.Comparison:
        """The CRMs against the independent expectation, both ways, per key (`fields=False`:
        without the plan as of SETTLE ago, which only the due-date check needs)."""
        now = datetime.now(UTC) + timedelta(seconds=self.offset)
        actual = {"salesforce": [expectation.salesforce_actual(t)
                                 for t in self.box.tasks("salesforce")],
                  "hubspot": [expectation.hubspot_actual(t) for t in self.box.tasks("hubspot")]}
        return expectation.compare(self.expected(now), actual, now, SETTLE,
                                   earlier=self.expected(now - SETTLE) if fields else None)

    def assert_tasks_as_planned(self) -> None:
        """Each CRM holds every task due by now, no other task, each with the planned due
        date, owner and subject."""
        result = self.comparison()
        assert result.clean(), result.describe()

    def config(self) -> Config:
        return load_config(self.config_path, env=self.env())

    def missing(self) -> dict[str, int]:
        """Planned tasks due by SETTLE ago that a CRM lacks (see `comparison` for all three
        directions)."""
        return {crm: len(keys) for crm, keys in
                self.comparison(fields=False).missing.items()}

    def record(self, scenario: str, **figures: Any) -> None:
        """Append this scenario's figures (tasks per CRM, duplicates, missed, extra, wrong,
        and `figures`) to $WINBACK_RELIABILITY_REPORT, which docs/reliability.md is written
        from."""
        target = os.environ.get("WINBACK_RELIABILITY_REPORT")
        if not target:
            return
        keys = self.crm_keys()
        checked = self.comparison().counts()
        line = {"scenario": scenario, "mode": self.mode,
                "tasks": {crm: len(k) for crm, k in keys.items()},
                "duplicates": self.duplicates(),
                "missed": {crm: c["missing"] for crm, c in checked.items()},
                "extra": {crm: c["extra"] for crm, c in checked.items()},
                "wrong": {crm: c["wrong"] for crm, c in checked.items()},
                "writes": self.write_figures(), **figures}
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")

    def assert_secrets_absent(self) -> None:
        """No fake secret in any process output (DEBUG logs included) or ledger error."""
        text = self.collect_logs() + "\n".join(self.ledger_errors())
        # The jwt private key too: its PEM text and each of its base64 lines.
        key = [line for line in self.box.signing_key.key_pem.splitlines()
               if line and not line.startswith("-----")]
        for secret in (*SECRETS, *key):
            assert secret not in text, f"a secret appears in the logs: {secret[:6]}..."

    def ledger_errors(self) -> list[str]:
        from sqlalchemy import create_engine, select

        from worker.ledger.schema import connection_state, task

        engine = create_engine(self.database_url)
        try:  # no fallback: an unreadable ledger must fail "no secret in ledger errors"
            with engine.connect() as conn:
                rows = list(conn.execute(select(connection_state.c.last_error)).scalars())
                rows += list(conn.execute(select(task.c.last_error)).scalars())
        finally:
            engine.dispose()
        return [r for r in rows if r]

    def stop(self) -> None:
        self.box.stop()

    # -- writes per key, as the emulators saw the requests -------------------------------------
    def writes(self) -> dict[str, dict[str, dict[str, int]]]:
        """Per CRM, per task key: create / upsert / update requests the emulator served, per
        record (`created`, `resent`, `updated`, `refused`; see sandbox.writelog.WriteLog)."""
        return {crm: self.box.admin(crm, "GET", "writes")["keys"]
                for crm in ("salesforce", "hubspot")}

    def write_figures(self) -> dict[str, dict[str, int]]:
        """Per CRM: keys written, keys created more than once, create requests, re-sends
        (requests for a key that already had its task: absorbed upserts, refused or updating
        re-sends)."""
        out = {}
        for crm, keys in self.writes().items():
            created = [k for k in keys.values() if k["created"]]
            out[crm] = {"keys": len(created),
                        "created_twice": sum(k["created"] > 1 for k in created),
                        "creates": sum(k["created"] for k in keys.values()),
                        "resends": sum(k["resent"] + k["updated"] for k in keys.values())}
        return out

    def resends(self) -> dict[str, int]:
        return {crm: f["resends"] for crm, f in self.write_figures().items()}

    def assert_created_once(self) -> None:
        """Every task key the CRMs hold was created by exactly one request, and every key a
        request created is still there (nothing created and then lost or overwritten)."""
        held = {crm: Counter(k for k in keys if k) for crm, keys in self.crm_keys().items()}
        for crm, keys in self.writes().items():
            twice = {k: v["created"] for k, v in keys.items() if v["created"] > 1}
            assert not twice, f"{crm}: {len(twice)} keys created more than once, e.g. " \
                f"{sorted(twice.items())[:3]}"
            never = [k for k in held[crm] if not keys.get(k, {}).get("created")]
            assert not never, f"{crm}: tasks no write request created, e.g. {never[:3]}"
            gone = [k for k, v in keys.items() if v["created"] and k not in held[crm]]
            assert not gone, f"{crm}: created keys missing from the CRM, e.g. {gone[:3]}"

    def run_past_grace(self, *args: str) -> Run:
        """One `winback sync` with the clock moved past the search-lag grace (weak mode):
        rows held `sending` because HubSpot search could not confirm them are looked up again
        and, if still absent, re-sent. The clock jump stands for the 2-minute wait, but it
        cannot make the emulator's search index catch up: the real search lag (and any create a
        killed process left on the wire) is waited out first, as the grace does in service."""
        time.sleep(WEAK_SEARCH_LAG + 0.5)
        self.offset += PAST_GRACE
        return self.run_once(self.command("sync", str(self.config_path), *args))


def weak_options(mode: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Emulator options (Salesforce, HubSpot) for a key mode."""
    if mode != "weak":
        return {}, {}
    return {"task_external_id_field": None}, {"search_lag_seconds": WEAK_SEARCH_LAG}


def _marker(subject: str) -> str | None:
    start = subject.rfind("[wb:")
    return subject[start + 4:subject.find("]", start)] if start >= 0 else None


def events(log: str, name: str) -> list[dict[str, Any]]:
    found = []
    for line in log.splitlines():
        if f'"{name}"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == name:
            found.append(record)
    return found
