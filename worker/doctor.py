"""`winback doctor CONFIG`: everything a deployment needs, checked, each line with its fix.

Checks, in order: the configuration; every `${VAR}` set (names only); the ledger reachable and
migrated; then per connection the CRM's own set-up report (login, permissions, closed-lost
stages, fields, the task key field or property), the API budget left today, and the clock
skew against the CRM's `Date` header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import text

from connectors.errors import ConnectorError, FatalConnectionError
from worker.ledger import migrate
from worker.ledger.db import database_url, make_engine, shown_url
from worker.settings import Config, ConfigErrors, load_config
from worker.settings.models import HubSpotConnection, SalesforceConnection
from worker.wiring import default_connector

MAX_SKEW_SECONDS = 120
_MISSING_VAR = re.compile(r"environment variable (\w+) is not set")


@dataclass(frozen=True)
class Check:
    scope: str
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warn: bool = False  # passes (exit 0), but needs attention: shown as "warn" with its fix

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def run(path: Path) -> list[Check]:
    checks: list[Check] = []
    try:
        load_config(path, require_env=False)
    except ConfigErrors as exc:
        problems = list(exc.errors)
        checks.append(Check("config", "configuration valid", False,
                            f"{len(problems)} problem(s); first: {problems[0]}",
                            f"run `winback validate {path}` and fix each line"))
        return checks
    checks.append(Check("config", "configuration valid", True, str(path)))
    config: Config | None = None
    try:
        config = load_config(path)
    except ConfigErrors as exc:
        names = sorted({m.group(1) for e in exc.errors
                        if (m := _MISSING_VAR.search(e.message)) is not None})
        checks.append(Check("config", "environment variables set", False,
                            "not set: " + ", ".join(names),
                            "set them in the service's environment (values never printed)"))
        return checks
    checks.append(Check("config", "environment variables set", True,
                        "every ${VAR} the file uses has a value"))
    checks.append(_ledger(config, path))
    for settings in config.connections:
        if settings.enabled:
            checks += _connection(settings)
    return checks


def _ledger(config: Config, path: Path) -> Check:
    url = database_url(path)
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = migrate.current_revision(engine)
    except Exception as exc:
        return Check("ledger", "ledger reachable and migrated", False,
                     f"{shown_url(url)}: {type(exc).__name__}",
                     "check WINBACK_DATABASE_URL and that the database is running")
    finally:
        engine.dispose()
    head = migrate.HEAD
    if current != head:
        created = url.startswith("sqlite") and current is None
        return Check("ledger", "ledger reachable and migrated", created,
                     f"{shown_url(url)}: revision {current or 'none'}, needs {head}"
                     + (" (a new SQLite ledger is created on first start)" if created else ""),
                     "" if created else f"run `winback migrate {path}`")
    return Check("ledger", "ledger reachable and migrated", True,
                 f"{shown_url(url)} at revision {current}")


def _connection(settings: SalesforceConnection | HubSpotConnection) -> list[Check]:
    scope = settings.name
    checks: list[Check] = []
    try:
        connector = default_connector(settings, lambda call: None)
    except ConnectorError as exc:
        return [Check(scope, "connector", False, str(exc), getattr(exc, "fix", ""))]
    try:
        if _salesforce_login(connector, scope, checks):
            return [*checks, _clock(settings)]
        report = connector.ensure_setup(create=False)
        mode = report.key_mode
        for c in report.checks:
            if (c.name == "task key property" and not c.ok
                    and isinstance(settings, HubSpotConnection) and settings.create_key_property
                    and "does not exist" in c.detail):
                # doctor never changes the CRM; the first sync creates it, with unique values
                checks.append(Check(scope, c.name, True, f"{c.detail}; the first sync creates "
                                    "it with unique values (create_key_property: true)"))
                mode = "upsert"
                continue
            checks.append(Check(scope, c.name, c.ok, c.detail, c.fix, c.warn))
        checks.append(Check(scope, "task key mode", True, {
            "upsert": "upsert by key: writes can always be repeated safely",
            "marker": "marker in the subject, looked up before any re-send",
            "create+search": "create, searched by key before any re-send",
        }.get(mode, mode)))
        usage = connector.api_usage()
        if usage is None:
            checks.append(Check(scope, "API budget", True, "the CRM did not report usage"))
        else:
            left = usage.limit - usage.used
            ok = usage.share < settings.api_budget_share
            checks.append(Check(scope, "API budget", ok,
                                f"{usage.used} of {usage.limit} used today ({left} left; "
                                f"winback stops at {settings.api_budget_share:.0%})",
                                "" if ok else "wait for the daily reset or raise "
                                              "api_budget_share"))
    except FatalConnectionError as exc:
        checks.append(Check(scope, "login", False, str(exc), exc.fix))
    except ConnectorError as exc:
        checks.append(Check(scope, "CRM reachable", False, str(exc),
                            "check the URL, the network and the CRM's status page"))
    finally:
        connector.close()
    checks.append(_clock(settings))
    return checks


def _salesforce_login(connector: Any, scope: str, checks: list[Check]) -> bool:
    """Salesforce's login flow (a legacy one warns) and API version checks, appended to
    `checks`; True when the version is not offered (nothing else can work then). The
    version check logs in, so a refused login raises FatalConnectionError as usual."""
    flow_check = getattr(connector, "flow_check", None)
    version_check = getattr(connector, "version_check", None)
    if not callable(flow_check) or not callable(version_check):
        return False
    for probe in (flow_check, version_check):  # the flow is reported even if login fails
        item = probe()
        checks.append(Check(scope, item.name, item.ok, item.detail, item.fix, item.warn))
    return not checks[-1].ok


def _clock(settings: SalesforceConnection | HubSpotConnection) -> Check:
    url = settings.base_url if isinstance(settings, HubSpotConnection) else \
        (settings.instance_url or settings.login_url)
    session = requests.Session()
    session.trust_env = False
    if settings.ca_bundle:
        session.verify = settings.ca_bundle
    try:
        response = session.get(url.rstrip("/") + "/", timeout=settings.timeout)
        header = response.headers.get("Date")
    except requests.RequestException as exc:
        return Check(settings.name, "clock skew", False, f"{url}: {type(exc).__name__}",
                     "check the URL and the network")
    if not header:
        return Check(settings.name, "clock skew", True, "the CRM sent no Date header")
    skew = (datetime.now(UTC) - parsedate_to_datetime(header)).total_seconds()
    ok = abs(skew) <= MAX_SKEW_SECONDS
    return Check(settings.name, "clock skew", ok, f"{skew:+.0f} s against the CRM's clock",
                 "" if ok else "synchronise this host's clock (NTP)")
