"""Planner throughput: plan N generated closed-lost deals with the default playbook, one core.

    python -m bench planner --deals 100000
    python -m bench planner --deals 100000 --experiment   # every cadence runs an experiment

Prints deals/s and tasks/s for planning (dates, owners, keys), then for rendering the tasks
that fall within the lead time (what the worker renders on a tick), and the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from connectors.models import Contact, Deal, Owner, Priority
from sandbox.seed import generate
from worker.cadence.engine import Planner
from worker.settings import Config, load_config
from worker.settings.experiments import Experiment, StepOverride, Variant
from worker.settings.loader import default_config_dir


def deals_from_seed(count: int, seed: int, now: datetime) -> Iterator[Deal]:
    data = generate(count, seed=seed, now=now, lost_share=1.0, won_share=0.0)
    owners = [Owner(id=f"U{o.index}", email=o.email, timezone=o.timezone, country=o.country,
                    active=o.active) for o in data.owners]
    for d in data.deals:
        account = data.accounts[d.account]
        yield Deal(
            id=f"D{d.index}", name=d.name, account_id=f"A{d.account}", account_name=account.name,
            closed_at=d.close_date, amount=d.amount, loss_reason=d.loss_reason,
            competitor=d.competitor, contract_end=d.contract_end, owner=owners[d.owner],
            contacts=tuple(Contact(id=f"C{c}", role=role,
                                   opted_out=data.contacts[c].opted_out)
                           for c, role in d.contacts),
        )


def with_experiments(config: Config) -> Config:
    cadences = [c.model_copy(update={"experiment": Experiment(
        id=f"bench-{c.id}", holdout=10,
        variants={"urgent": Variant(weight=45, steps={c.steps[0].id: StepOverride(
            priority=Priority.HIGH)})} if c.steps else {})}) for c in config.cadences]
    return config.model_copy(update={"cadences": cadences})


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="python -m bench planner")
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--experiment", action="store_true",
                        help="give every cadence an experiment: 10%% holdout, 45%% base, 45%% "
                             "a variant that makes its first step high priority")
    args = parser.parse_args(argv)
    now = datetime(2027, 6, 1, 12, tzinfo=UTC)
    config = load_config(default_config_dir() / "winback.yaml", require_env=False)
    if args.experiment:
        config = with_experiments(config)
    planner = Planner(config, "acme-sf")
    deals = list(deals_from_seed(args.deals, args.seed, now))
    rss_before = peak_rss_mb()

    started = time.process_time()
    tasks = 0
    soon = []
    for deal in deals:
        plan = planner.plan(deal, now)
        tasks += len(plan.tasks)
        soon.extend((t, deal, plan.day0) for t in plan.tasks if t.create_on <= now.date())
    plan_cpu = time.process_time() - started

    started = time.process_time()
    for task, deal, day0 in soon:
        planner.render(task, deal, day0)
    render_cpu = time.process_time() - started

    result = {
        "deals": len(deals), "experiment": args.experiment, "tasks_planned": tasks,
        "plan_cpu_s": round(plan_cpu, 2), "deals_per_s": round(len(deals) / plan_cpu),
        "tasks_per_s": round(tasks / plan_cpu),
        "tasks_due_within_lead_time": len(soon), "render_cpu_s": round(render_cpu, 2),
        "renders_per_s": round(len(soon) / render_cpu) if render_cpu else None,
        "peak_rss_mb": round(peak_rss_mb()), "rss_after_loading_deals_mb": round(rss_before),
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
