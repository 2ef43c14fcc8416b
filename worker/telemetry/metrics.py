"""Prometheus metrics, named once here; the sync pipeline, the scheduler and /metrics use them.

`prime` gives every family its series for a connection at startup (zeros, or what the ledger
already knows), so alerts and dashboards have data right after a restart, before any tick.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from worker.ledger import records

# The label values each family can take that are known before anything happens.
TASK_OUTCOMES = ("planned", "written", "failed", "cancelled", "closed")
TICK_RESULTS = ("ok", "not_due", "busy", "error", "lease_lost", "budget", "stopped")
OUTBOX_STATUSES = tuple(s.value for s in records.OUTBOX_STATUSES)
STOP_REASONS = tuple(r.value for r in records.StopReason)
REBORN_KINDS = tuple(r.value for r in (records.StopReason.REOPENED, records.StopReason.NEW_DEAL,
                                        records.StopReason.WON))
SKIP_REASONS = ("no close date", "deal has no owner and the connection has no fallback_owner")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.deals_pulled = Counter("winback_deals_pulled", "Deals read from the CRM",
                                    ["connection"], registry=r)
        self.deals_enrolled = Counter("winback_deals_enrolled", "Lost deals enrolled",
                                      ["connection", "cadence"], registry=r)
        self.deals_stopped = Counter("winback_deals_stopped", "Cadences stopped",
                                     ["connection", "reason"], registry=r)
        self.deals_reborn = Counter("winback_deals_reborn", "Lost deals reborn",
                                    ["connection", "kind"], registry=r)
        self.deals_skipped = Counter("winback_deals_skipped", "Deals that could not be planned",
                                     ["connection", "reason"], registry=r)
        self.tasks = Counter("winback_tasks", "Tasks by outcome (planned, written, failed, "
                             "cancelled, closed)", ["connection", "outcome"], registry=r)
        self.tasks_failed = Gauge("winback_tasks_failed",
                                  "Tasks in the ledger the CRM refused for good, by the CRM's "
                                  "error code", ["connection", "reason"], registry=r)
        self.api_calls = Counter("winback_api_calls", "CRM API calls",
                                 ["connection", "crm", "endpoint"], registry=r)
        self.api_errors = Counter("winback_api_errors", "CRM API calls that failed",
                                  ["connection", "crm", "endpoint", "error"], registry=r)
        self.tick_seconds = Histogram("winback_tick_seconds", "Duration of one tick",
                                      ["connection"], registry=r,
                                      buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900))
        self.ticks = Counter("winback_ticks", "Ticks by result", ["connection", "result"],
                             registry=r)
        self.outbox_depth = Gauge("winback_outbox_depth", "Tasks planned or queued, not written",
                                  ["connection", "status"], registry=r)
        self.lease_held = Gauge("winback_lease_held", "1 while this process holds the lease",
                                ["connection"], registry=r)
        self.last_success = Gauge("winback_last_success_timestamp",
                                  "Unix time of the last successful tick", ["connection"],
                                  registry=r)
        self.tasks_open = Gauge("winback_tasks_open",
                                "Written tasks not completed in the CRM (as last read)",
                                ["connection"], registry=r)
        self.tasks_overdue = Gauge("winback_tasks_overdue",
                                   "Written tasks not completed and past their due date",
                                   ["connection"], registry=r)
        self.owner_backlog_max = Gauge("winback_owner_backlog_max",
                                       "Open written tasks of the owner who has the most",
                                       ["connection"], registry=r)
        self.api_budget_used = Gauge("winback_api_budget_used_ratio",
                                     "Share of the CRM's daily API budget used", ["connection"],
                                     registry=r)

    def prime(self, connection: str, cadences: Iterable[str],
              failed_reasons: Iterable[str] = ()) -> None:
        """Create every family's series for this connection at zero. The API call families
        (`winback_api_calls`, `winback_api_errors`) are labelled by endpoint and error, known
        only once a call is made: they are listed (HELP/TYPE), without samples, until then."""
        self.deals_pulled.labels(connection)
        for cadence in cadences:
            self.deals_enrolled.labels(connection, cadence)
        for reason in STOP_REASONS:
            self.deals_stopped.labels(connection, reason)
        for kind in REBORN_KINDS:
            self.deals_reborn.labels(connection, kind)
        for reason in SKIP_REASONS:
            self.deals_skipped.labels(connection, reason)
        for outcome in TASK_OUTCOMES:
            self.tasks.labels(connection, outcome)
        for reason in failed_reasons:
            self.tasks_failed.labels(connection, reason)
        self.tick_seconds.labels(connection)
        for result in TICK_RESULTS:
            self.ticks.labels(connection, result)
        for status in OUTBOX_STATUSES:
            self.outbox_depth.labels(connection, status)
        self.tasks_open.labels(connection)
        self.tasks_overdue.labels(connection)
        self.owner_backlog_max.labels(connection)
        self.lease_held.labels(connection).set(0)
        self.last_success.labels(connection)
        self.api_budget_used.labels(connection)
