"""Prometheus metrics, named once here; the sync pipeline, the scheduler and /metrics use them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
                             "skipped, cancelled, closed)", ["connection", "outcome"], registry=r)
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
        self.api_budget_used = Gauge("winback_api_budget_used_ratio",
                                     "Share of the CRM's daily API budget used", ["connection"],
                                     registry=r)
