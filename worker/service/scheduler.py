"""`winback run`: APScheduler 3 as a ticker only. One job wakes every `service.tick` seconds
(with jitter), reads in one query which connections are due and free, and which a dead
replica left (PostgreSQL: leased, but nobody holds their advisory lock; `Leases.claimable`), and
hands as many as it has idle workers to its thread pool, the dead replica's first, the rest in
random order (and polls again as a
tick ends while more were due than it had room for); each tick then claims
its connection's lease (a compare-and-set: a replica that lost the race does nothing), so N
replicas share the connections, each taking what it has room for, and never work one at once.
A replica's database load is one read per `service.tick` plus its ticks, whatever the number of
connections.

SIGTERM / SIGINT: finish the batch in flight, release the leases, exit 0.
SIGHUP: read the configuration file again (see worker/service/reload.py): validated first, refused
with its errors logged (`config.reload_refused`, the old rules kept), or taken by each
connection's next tick (`config.reloaded`).
"""

from __future__ import annotations

import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor as Pool
from datetime import UTC, datetime, timedelta
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from worker.service.health import HealthServer
from worker.service.reload import Reloader
from worker.service.wiring import Service
from worker.sync.context import SyncContext
from worker.sync.tick import run_tick
from worker.telemetry.logs import get_logger

log = get_logger("winback.scheduler")


class Runner:
    def __init__(self, service: Service, *, http_port: int | None = None) -> None:
        self.service = service
        settings = service.config.service
        self.http_port = settings.http_port if http_port is None else http_port
        self.scheduler = BlockingScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self.workers = settings.workers
        self.pool = Pool(settings.workers, thread_name_prefix="tick")
        self._active: set[str] = set()  # connections with a tick in this process's pool
        self._backlog = False  # the last poll found more due connections than idle workers
        self._running = 0
        self._idle = threading.Condition()
        self.health: HealthServer | None = None
        self.reloader = Reloader(service.config, service.config_path, log)

    def dispatch(self) -> list[str]:
        """Hand the due connections a dead replica left (its advisory lock gone: taken over
        first) and the due, free ones to idle workers (as many as there are idle ones, in
        random order, so that replicas polling at once mostly pick different ones); returns
        their names."""
        if self.service.stop.is_set():
            return []
        try:
            free, orphaned = self.service.leases.claimable()
        except Exception as exc:  # the ledger is down: the next poll tries again
            log.error("dispatch.failed", error=f"{type(exc).__name__}: {exc}")
            return []
        with self._idle:
            groups = []
            for group in (orphaned, free):
                names = [n for n in group if n in self.service.contexts and n not in self._active]
                random.shuffle(names)
                groups.append(names)
            candidates = groups[0] + groups[1]  # (orphaned first: their tasks are waiting)
            chosen = candidates[:max(0, self.workers - len(self._active))]
            self._active.update(chosen)
            self._backlog = len(candidates) > len(chosen)
        for name in chosen:
            self.pool.submit(self._job, self.service.contexts[name])
        return chosen

    def _job(self, ctx: SyncContext) -> None:
        with self._idle:
            self._running += 1
        try:
            if self.service.stop.is_set():
                return
            self.reloader.apply(ctx)
            run_tick(ctx)
        except Exception as exc:  # run_tick catches CRM errors; this is the ledger being down
            log.error("tick.crashed", connection=ctx.name, error=f"{type(exc).__name__}: {exc}")
        finally:
            with self._idle:
                self._running -= 1
                self._active.discard(ctx.name)
                self._idle.notify_all()
                again = self._backlog
        if again:  # more were due than this replica had room for: poll again now
            self.dispatch()

    def _signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("service.stopping", signal=signal.Signals(signum).name)
        self.service.stop.set()
        self.scheduler.shutdown(wait=False)

    def _hangup(self, _signum: int, _frame: FrameType | None) -> None:
        # Off the signal handler: reading and validating the file takes a while and locks.
        threading.Thread(target=self._reload, name="config-reload", daemon=True).start()

    def _reload(self) -> None:
        log.info("config.reloading", signal="SIGHUP", file=str(self.service.config_path))
        if self.reloader.reload():
            self.service.config = self.reloader.config

    def run(self) -> int:
        settings = self.service.config.service
        if self.http_port:
            self.health = HealthServer(self.service, settings.http_host, self.http_port).start()
        signal.signal(signal.SIGTERM, self._signal)
        signal.signal(signal.SIGINT, self._signal)
        signal.signal(signal.SIGHUP, self._hangup)
        interval = min([settings.tick, *(c.settings.poll_every
                                         for c in self.service.contexts.values())])
        self.scheduler.add_job(
            self.dispatch, "interval", id="dispatch", name="dispatch", seconds=interval,
            jitter=max(0.2, interval / 5), replace_existing=True,
            next_run_time=datetime.now(UTC) + timedelta(seconds=random.uniform(0.05, 0.5)))
        log.info("service.started", connections=sorted(self.service.contexts),
                 http_port=self.http_port or None)
        self.scheduler.start()  # blocks until a signal shuts it down
        deadline = time.monotonic() + settings.lease_ttl
        with self._idle:
            while self._running and time.monotonic() < deadline:
                self._idle.wait(timeout=0.5)
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.health is not None:
            self.health.stop()
        self.service.close()
        log.info("service.stopped")
        return 0
