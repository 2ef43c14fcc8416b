"""A connection's setup at its first tick in a process, from the setup cache when it holds a
fresh result (issue 15): a restart then pays no setup call (Salesforce describes and task
picklists; HubSpot pipelines, owners, properties).

- Kept: a setup whose checks all passed, for `service.setup_cache` (default 6h; 0 = off), on
  the tick clock. A setup with a failed check runs again at every start, so its warnings
  are logged and a fix in the CRM is seen.
- Forgotten (the next tick runs the setup again): when it expires, when the connection's
  configuration no longer matches it (the connector refuses it), on a fatal connection error
  (setup, permission, login) and on a task refused with an error that says the CRM's setup
  changed (SETUP_CHANGED).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection

from worker.ledger import setup_cache
from worker.sync.context import SyncContext, Tick

# Refusals that mean a field, property or picklist value winback learned at setup is gone.
SETUP_CHANGED = frozenset({
    "INVALID_FIELD", "INVALID_FIELD_FOR_INSERT_UPDATE", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
    "INVALID_TYPE", "PROPERTY_DOESNT_EXIST", "INVALID_OPTION",
})


def run_setup(tick: Tick) -> None:
    """Once per process and connection: check the CRM and learn how task keys are stored, or
    take what the setup cache kept."""
    ctx = tick.ctx
    keep = ctx.config.service.setup_cache
    if keep > 0 and _restore(ctx, tick):
        return
    tick.lease.renew_on_call = True  # setup calls write nothing: each call renews
    try:
        report = ctx.connector.ensure_setup(create=True)
    finally:
        tick.lease.renew_on_call = False
    ctx.key_mode = report.key_mode
    ctx.setup_done = True
    for check in report.checks:
        if not check.ok:
            ctx.log.warning("setup.check_failed", check=check.name, detail=check.detail,
                            fix=check.fix)
    ctx.log.info("setup.done", key_mode=report.key_mode,
                 checks=sum(c.ok for c in report.checks), failed=sum(not c.ok
                                                                     for c in report.checks))
    state = ctx.connector.setup_state() if keep > 0 and not tick.dry_run else None
    if state is None or not all(c.ok for c in report.checks):
        return
    with ctx.ledger.write() as conn:
        ctx.leases.fence(conn, tick.lease)
        setup_cache.store(conn, ctx.name, {"key_mode": report.key_mode, "connector": state},
                          tick.now, tick.now + timedelta(seconds=keep))


def _restore(ctx: SyncContext, tick: Tick) -> bool:
    with ctx.ledger.engine.connect() as conn:
        kept = setup_cache.read(conn, ctx.name, tick.now)
    if kept is None:
        return False
    connector_state = kept.get("connector")
    key_mode = kept.get("key_mode")
    if not isinstance(connector_state, dict) or not isinstance(key_mode, str) \
            or not ctx.connector.restore_setup(connector_state):
        ctx.log.info("setup.cache_refused")  # the configuration changed: set up again
        return False
    ctx.key_mode = key_mode
    ctx.setup_done = True
    ctx.log.info("setup.cached", key_mode=key_mode)
    return True


def forget_setup(ctx: SyncContext, conn: Connection | None = None, *, why: str) -> None:
    """Drop the kept setup; the next tick sets up again."""
    ctx.setup_done = False
    if conn is not None:
        forgotten = setup_cache.forget(conn, ctx.name)
    else:
        with ctx.ledger.write() as own:
            forgotten = setup_cache.forget(own, ctx.name)
    if forgotten:
        ctx.log.info("setup.cache_forgotten", reason=why)
