"""`winback doctor CONFIG`: everything a deployment needs, checked, each line with its fix.

Checks, in order: the configuration; every `${VAR}` set (names only); the ledger reachable and
migrated; then per connection the CRM's own set-up report (login, permissions, closed-lost
stages, deal fields, the task key field or property; for Salesforce also the Task fields and
picklist values winback writes), the API budget left today, the clock skew against the
CRM's `Date` header, and the inactive owners of tracked deals.

Each check passes, warns (`warn`: sync runs, but something is lost or degraded; exit 0) or
fails (exit 1). Never a crash: whatever a CRM or a proxy answers (an HTML page, an empty
body, duplicated or missing headers, a redirect to a login page), each check ends with a
reason.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
from sqlalchemy import text

from connectors.base import Connector
from connectors.errors import ConnectorError, FatalConnectionError
from worker.ledger import migrate
from worker.ledger.db import database_url, make_engine, shown_url
from worker.service.wiring import default_connector
from worker.settings import Config, ConfigErrors, load_config
from worker.settings.connections import HubSpotConnection, SalesforceConnection

if TYPE_CHECKING:
    from worker.cli.owners import TrackedByOwner

MAX_SKEW_SECONDS = 120
# doctor is run by a person waiting for its answer: a CRM that keeps failing is reported after
# this many seconds of retries per call, not after the service's 20 s.
RETRY_BUDGET = 5.0
_MISSING_VAR = re.compile(r"environment variable (\w+) is not set")
_HTTP_DATE = re.compile(r"[A-Z][a-z]{2}, \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2}"
                        r"(?: ?(?:[A-Z]{1,5}|[+-]\d{4}))?")


@dataclass(frozen=True)
class Check:
    scope: str
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warn: bool = False  # ok, but with a problem ops should fix (shown as `warn`, exit 0)

    @property
    def level(self) -> str:
        return "fail" if not self.ok else "warn" if self.warn else "pass"

    def as_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "name": self.name, "ok": self.ok, "warn": self.warn,
                "level": self.level,
                "detail": self.detail, "fix": self.fix}


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
            try:
                checks += _inactive_owners(settings, path)
            except Exception as exc:  # an answer no connector rule foresaw: no crash
                checks.append(Check(settings.name, "inactive owners", False,
                                    f"the owners could not be read: {type(exc).__name__}",
                                    "see the login and reachability checks above"))
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
        connector = default_connector(settings, lambda call: None, retry_budget=RETRY_BUDGET)
    except ConnectorError as exc:
        return [Check(scope, "connector", False, str(exc), getattr(exc, "fix", ""))]
    try:
        if _login_checks(connector, scope, checks):
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
        for c in connector.access_checks():  # Salesforce: Bulk API 2.0 allowed
            checks.append(Check(scope, c.name, c.ok, c.detail, c.fix, c.warn))
    except FatalConnectionError as exc:
        checks.append(Check(scope, "login", False, str(exc), exc.fix))
    except ConnectorError as exc:
        checks.append(Check(scope, "CRM reachable", False, str(exc),
                            "check the URL, the network and the CRM's status page"))
    except Exception as exc:  # an answer no connector rule foresaw: a failed check, no crash
        checks.append(Check(scope, "CRM reachable", False,
                            f"unexpected answer from the CRM ({type(exc).__name__})",
                            "check that the URL points at the CRM's API and not at a proxy's "
                            "or a login page; run with WINBACK_LOG_LEVEL=DEBUG for the calls"))
    finally:
        with contextlib.suppress(Exception):
            connector.close()
    checks.append(_clock(settings))
    return checks


def _login_checks(connector: Connector, scope: str, checks: list[Check]) -> bool:
    """The connector's login checks (Salesforce: the login flow, a legacy one warns, and the
    API version), appended to `checks` one by one, so the flow is reported even if the
    version check's login fails; True when one failed (the version is not offered: nothing
    else can work then). A refused login raises FatalConnectionError as usual."""
    failed = False
    for item in connector.login_checks():
        checks.append(Check(scope, item.name, item.ok, item.detail, item.fix, item.warn))
        failed = failed or not item.ok
    return failed


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
    except (requests.RequestException, ValueError) as exc:
        return Check(settings.name, "clock skew", False, f"{url}: {type(exc).__name__}",
                     "check the URL and the network")
    if not header:
        return Check(settings.name, "clock skew", True,
                     "not checked: the CRM (or a proxy) sent no Date header",
                     "compare this host's clock with the CRM's by hand (NTP)", warn=True)
    moment, note = crm_time(header)
    if moment is None:  # a warning, not a failure: sync does not read the CRM's clock
        return Check(settings.name, "clock skew", True, f"not checked: {note}",
                     "look for a proxy between winback and the CRM that rewrites headers",
                     warn=True)
    skew = (datetime.now(UTC) - moment).total_seconds()
    ok = abs(skew) <= MAX_SKEW_SECONDS
    return Check(settings.name, "clock skew", ok,
                 f"{skew:+.0f} s against the CRM's clock" + (f" ({note})" if note else ""),
                 "" if ok else "synchronise this host's clock (NTP)")


def _inactive_owners(settings: SalesforceConnection | HubSpotConnection, path: Path
                     ) -> list[Check]:
    """Warn when tracked deals (or, before the first sync, any deal) belong to inactive owners
    and no fallback_owner takes their tasks: the CRM refuses those tasks. Fail when the
    fallback_owner itself is inactive or no owner. Nothing when the CRM cannot be read (the
    login / reachability check above says why)."""
    from worker.cli.owners import list_owners

    scope, name = settings.name, "inactive owners"
    try:
        owners = list_owners(settings, retry_budget=RETRY_BUDGET)
    except ConnectorError:
        return []
    by_id = {o.id: o for o in owners}
    inactive = [o for o in owners if not o.active]
    fallbacks = settings.fallback_owners
    for fallback in fallbacks:
        chosen = by_id.get(fallback)
        if chosen is None or not chosen.active:
            state = "is not an owner" if chosen is None else "is inactive"
            return [Check(scope, name, False, f"fallback_owner {fallback} {state} in the CRM",
                          f"set fallback_owner on connection {scope} to an active owner's id"
                          f"{' (each member of the team)' if len(fallbacks) > 1 else ''} "
                          f"(`winback owners {path}` lists them)")]
    if fallbacks:
        who = ", ".join(f"{by_id[f].name} ({f})" if by_id[f].name else f for f in fallbacks)
        return [Check(scope, name, True, f"{len(inactive)} inactive owner(s); their tasks go "
                      f"to the fallback_owner {who}")]
    if not inactive:
        return [Check(scope, name, True, f"all {len(owners)} owners are active")]
    shown = ", ".join(f"{o.name} ({o.id})" if o.name else o.id for o in inactive[:10])
    fix = (f"set fallback_owner on connection {scope} to an active owner's id (`winback owners "
           f"{path}` lists them), or reactivate the owners")
    tracked = _tracked(settings.name, [o.id for o in inactive], path)
    if tracked is None or not tracked.synced:
        return [Check(scope, name, True, f"{len(inactive)} inactive owner(s) ({shown}) and no "
                      "fallback_owner: the CRM will refuse the tasks of their deals (the ledger "
                      "has not synced this connection yet)", fix, warn=True)]
    deals, open_tasks = sum(tracked.deals.values()), sum(tracked.open_tasks.values())
    if not deals and not open_tasks:
        return [Check(scope, name, True, f"{len(inactive)} inactive owner(s) ({shown}), none "
                      "with a tracked deal")]
    return [Check(scope, name, True, f"{deals} tracked deal(s) with {open_tasks} unwritten "
                  f"task(s) belong to {len(inactive)} inactive owner(s) ({shown}) and no "
                  "fallback_owner is set: the CRM refuses those tasks", fix, warn=True)]


def _tracked(connection: str, owner_ids: list[str], path: Path) -> TrackedByOwner | None:
    """The ledger's tracked deals of these owners, or None when there is no ledger to read
    (a SQLite file that does not exist yet is not created)."""
    from worker.cli.owners import tracked_by_owner

    url = database_url(path)
    if url.startswith("sqlite") and "///" in url and \
            not Path(url.split("///", 1)[1]).exists():
        return None
    engine = make_engine(url, pool_size=1)
    try:
        return tracked_by_owner(engine, connection, owner_ids)
    except Exception:  # no schema yet, or unreachable: the ledger check says which
        return None
    finally:
        engine.dispose()


def crm_time(header: str) -> tuple[datetime | None, str]:
    """The moment a `Date` header gives, aware, and a note on anything odd about it. Two Date
    headers (a proxy adding its own) reach us joined by a comma: the first one is read. An
    HTTP date is always GMT (RFC 9110), so one without a zone is read as GMT."""
    found = _HTTP_DATE.findall(header)
    note = f"{len(found)} Date headers, the first one read" if len(found) > 1 else ""
    try:
        moment = parsedate_to_datetime(found[0] if found else header)
    except (TypeError, ValueError, IndexError):
        return None, f"the Date header {header[:60]!r} is not a date"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
        note = "; ".join(n for n in (note, "the Date header has no time zone: read as GMT") if n)
    return moment, note
