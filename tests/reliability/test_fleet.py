"""The small form of the many-connection benchmark (bench/fleet.py): 50 connections (25
Salesforce orgs, 25 HubSpot portals) on 3 `winback run` replicas sharing one PostgreSQL
ledger for a minute, polling every 5 simulated minutes (10 s real); one lease holder killed
(-9) halfway and replaced. Long form only (`--long`)."""

from __future__ import annotations

import pytest

from bench import fleet


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_fifty_connections_on_three_replicas_share_the_work(pg_url: str) -> None:
    figures = fleet.run(fleet.options(["--connections", "50", "--replicas", "3",
                                       "--minutes", "1"]), database_url=pg_url)
    assert figures["exit_codes"] == [0, 0, 0]
    assert figures["ticks"]["connections_ticked"] == 50
    assert figures["ticks"]["results"].get("error", 0) == 0, figures["ticks"]
    assert figures["overlapping_runs"] == 0
    assert figures["keys_created_twice"] == 0
    assert figures["task_keys_created"] == figures["ledger_written"] > 0
    # Each replica that ran throughout did about as many ticks as the others.
    assert figures["steady_replicas_max_over_min"] <= 1.5, figures["ok_ticks_per_replica"]
    # Every connection polled on time, give or take the 1 s dispatch poll (30 s simulated).
    assert figures["ticks"]["lag_of_poll"]["p95"] <= 0.5, figures["ticks"]
    kill = figures["kill"]
    assert kill["leases_held"] >= 1, kill  # the victim held leases when it was killed
    assert kill["taken_over"] == kill["leases_held"], kill
    assert kill["taken_over_max_s"] is not None and kill["taken_over_max_s"] <= 5, kill
