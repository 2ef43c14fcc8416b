"""Assemble the service from a configuration: ledger, leases, metrics, one connector and one
sync context per connection. The only place that knows which adapter serves which `kind`."""

from __future__ import annotations

import fcntl
import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from connectors.base import CallRecord, Connector
from worker.cadence.engine import Planner
from worker.ledger import migrate
from worker.ledger.db import database_url, make_engine, shown_url
from worker.ledger.leases import Leases, process_owner_id
from worker.ledger.store import Ledger
from worker.settings.connections import HubSpotConnection, SalesforceConnection
from worker.settings.models import Config
from worker.sync.context import Clock, SyncContext, utc_now
from worker.sync.tick import prime_metrics
from worker.telemetry.logs import get_logger, register_secret
from worker.telemetry.metrics import Metrics

ConnectionSettings = SalesforceConnection | HubSpotConnection
ConnectorFactory = Callable[[ConnectionSettings, Callable[[CallRecord], None]], Connector]


class LedgerInUse(Exception):
    """Another winback process is using this SQLite ledger."""


def register_key_file(path: str) -> None:
    """The PEM text of a jwt key file, and each of its lines, never appear in a log line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return  # the login reports an unreadable key file, naming it
    register_secret(text.strip())
    for line in text.splitlines():
        if not line.startswith("-----"):
            register_secret(line.strip())


def default_connector(settings: SalesforceConnection | HubSpotConnection,
                      observer: Callable[[CallRecord], None], *,
                      retry_budget: float = 20.0, clock: Clock | None = None) -> Connector:
    """The adapter for a connection: a connection is its adapter's settings (plus the worker's
    own keys), passed as it is. `retry_budget` bounds the seconds one CRM call may spend
    retrying; it must stay well inside the lease (see build_service)."""
    for key, secret in settings.auth.model_dump().items():
        if key not in ("flow", "private_key_file"):  # names, not secrets: its text is one
            register_secret(secret if isinstance(secret, str) else None)
    if isinstance(settings, SalesforceConnection) and settings.auth.private_key_file:
        register_key_file(settings.auth.private_key_file)
    if isinstance(settings, SalesforceConnection):
        from connectors.salesforce import SalesforceConnector

        return SalesforceConnector(settings, observer=observer, retry_budget=retry_budget,
                                   clock=clock)
    from connectors.hubspot import HubSpotConnector

    return HubSpotConnector(settings, observer=observer, retry_budget=retry_budget)


@dataclass
class Service:
    config: Config
    config_path: Path
    url: str
    ledger: Ledger
    leases: Leases
    metrics: Metrics
    clock: Clock
    stop: threading.Event = field(default_factory=threading.Event)
    contexts: dict[str, SyncContext] = field(default_factory=dict)
    lock_file: IO[str] | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    def close(self) -> None:
        for ctx in self.contexts.values():
            ctx.connector.close()
        self.leases.close()
        self.ledger.engine.dispose()
        if self.lock_file is not None:
            self.lock_file.close()


class LedgerUnavailable(Exception):
    """The ledger database cannot be reached or opened (the message names it, no password)."""


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def open_ledger(config: Config, config_path: Path, *, create_if_empty: bool = True
                ) -> tuple[str, Ledger]:
    """The ledger at WINBACK_DATABASE_URL (or next to the config), schema checked.

    With `create_if_empty=False` (the read-only commands) a missing SQLite file is an error,
    never created. Errors name the ledger (its URL without the password)."""
    url = database_url(config_path)
    shown = shown_url(url)
    path = sqlite_file(url)
    if not create_if_empty and path is not None and not path.exists():
        raise migrate.SchemaOutOfDate(
            f"the SQLite ledger {path} does not exist: run `winback migrate CONFIG` or "
            "`winback sync CONFIG` first, or set WINBACK_DATABASE_URL to the ledger in use")
    engine = make_engine(url, pool_size=config.service.workers + 2)
    try:
        migrate.check(engine, create_if_empty=create_if_empty and url.startswith("sqlite"))
        ledger = Ledger(engine)
        ledger.ensure_connections((c.name, c.kind) for c in config.connections)
    except migrate.SchemaOutOfDate as exc:
        engine.dispose()
        raise migrate.SchemaOutOfDate(f"ledger {shown}: {exc}") from None
    except OperationalError as exc:
        engine.dispose()
        raise LedgerUnavailable(ledger_problem(shown, exc)) from None
    return url, ledger


def ledger_problem(shown: str, exc: OperationalError) -> str:
    """`cannot open the ledger URL: reason (fix)`, the reason being the driver's first line
    (it names host and port, never the password; SQLAlchemy's own text would add the SQL)."""
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    return (f"cannot open the ledger {shown}: {reason} (is the database running and "
            "reachable? check WINBACK_DATABASE_URL)")


def build_service(config: Config, config_path: Path, *, clock: Clock = utc_now,
                  connector_factory: ConnectorFactory | None = None,
                  only: str | None = None, metrics: Metrics | None = None,
                  lease_ttl: float | None = None) -> Service:
    url, ledger = open_ledger(config, config_path)
    lock = _lock_sqlite(url) if url.startswith("sqlite") else None
    if lock is not None:
        ledger.clear_leases()  # we are the only process: any lease left is a crashed one's
    ttl = lease_ttl or config.service.lease_ttl
    leases = Leases(ledger.engine, owner=process_owner_id(), ttl=ttl, clock=clock,
                    advisory_lock=config.service.takeover_lock)
    if connector_factory is None:
        # One call's retries must end well inside the lease (scale-out reference 5.2, 6).
        connector_factory = functools.partial(default_connector,
                                              retry_budget=min(20.0, ttl / 4), clock=clock)
    service = Service(config, config_path, url, ledger, leases, metrics or Metrics(), clock,
                      lock_file=lock)
    log = get_logger("winback.sync")
    for settings in config.connections:
        if not settings.enabled or (only is not None and settings.name != only):
            continue
        observer = _observer(service.metrics, settings.name, settings.kind)
        connector = connector_factory(settings, observer)
        service.contexts[settings.name] = SyncContext(
            config=config, settings=settings, connector=connector,
            planner=Planner(config, settings.name), ledger=ledger, leases=leases,
            metrics=service.metrics, clock=clock, stop=service.stop, log=log)
        prime_metrics(service.contexts[settings.name])
    get_logger("winback").debug("service.built", database=shown_url(url),
                                connections=list(service.contexts))
    return service


def _observer(metrics: Metrics, connection: str, crm: str) -> Callable[[CallRecord], None]:
    def observe(call: CallRecord) -> None:  # the adapters log `crm.call` themselves
        metrics.api_calls.labels(connection, crm, call.endpoint).inc()
        if call.error:
            metrics.api_errors.labels(connection, crm, call.endpoint, call.error).inc()

    return observe


def _lock_sqlite(url: str) -> IO[str]:
    """SQLite serves one process: hold an exclusive lock next to the database file."""
    path = Path(url.split("///", 1)[1] if "///" in url else "winback.db")
    handle = open(f"{path}.lock", "w")  # noqa: SIM115 - held for the life of the service
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise LedgerInUse(
            f"another winback process is using the SQLite ledger {path}; run one process per "
            "SQLite file, or use PostgreSQL (WINBACK_DATABASE_URL) for several") from None
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def describe(service: Service) -> dict[str, Any]:
    return {"database": shown_url(service.url), "connections": list(service.contexts)}
