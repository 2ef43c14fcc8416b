"""`winback run`: APScheduler 3 as a ticker only. Each connection has a job that wakes every
`service.tick` seconds and runs a tick when the connection's lease is free and its `next_due`
(in the ledger) has come, so N replicas share the connections and never work one at once.

SIGTERM / SIGINT: finish the batch in flight, release the leases, exit 0.
SIGHUP: read the configuration file again (see worker/service/reload.py): validated first, refused
with its errors logged (`config.reload_refused`, the old rules kept), or taken by each
connection's next tick (`config.reloaded`).
"""

from __future__ import annotations

import signal
import threading
import time
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
            executors={"default": ThreadPoolExecutor(settings.workers)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=UTC,
        )
        self._running = 0
        self._idle = threading.Condition()
        self.health: HealthServer | None = None
        self.reloader = Reloader(service.config, service.config_path, log)

    def _job(self, ctx: SyncContext) -> None:
        if self.service.stop.is_set():
            return
        with self._idle:
            self._running += 1
        try:
            self.reloader.apply(ctx)
            run_tick(ctx)
        except Exception as exc:  # run_tick catches CRM errors; this is the ledger being down
            log.error("tick.crashed", connection=ctx.name, error=f"{type(exc).__name__}: {exc}")
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

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
        start = datetime.now(UTC)
        for index, (name, ctx) in enumerate(sorted(self.service.contexts.items())):
            interval = min(settings.tick, ctx.settings.poll_every)
            self.scheduler.add_job(
                self._job, "interval", args=[ctx], id=name, name=f"tick {name}",
                seconds=interval, jitter=max(1, int(interval / 5)),
                next_run_time=start + timedelta(milliseconds=200 * index), replace_existing=True)
        log.info("service.started", connections=sorted(self.service.contexts),
                 http_port=self.http_port or None)
        self.scheduler.start()  # blocks until a signal shuts it down
        deadline = time.monotonic() + settings.lease_ttl
        with self._idle:
            while self._running and time.monotonic() < deadline:
                self._idle.wait(timeout=0.5)
        if self.health is not None:
            self.health.stop()
        self.service.close()
        log.info("service.stopped")
        return 0
