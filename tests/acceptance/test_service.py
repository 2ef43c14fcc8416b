"""`winback run` as ops run it: health, readiness and metrics over HTTP, a clean SIGTERM; and a
start against a ledger without the current schema refused with exit 2."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

from sqlalchemy import create_engine, select

from tests.reliability.harness import Stack
from worker.ledger.schema import connection_state


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_run_serves_health_readiness_metrics_and_stops_cleanly(tmp_path: Path) -> None:
    """/healthz 200, /readyz 200 once both connections ticked, /metrics has the counters;
    SIGTERM exits 0 and releases the leases."""
    stack = Stack(tmp_path, f"sqlite:///{tmp_path / 'ledger.db'}").start(deals=50)
    port = _free_port()
    text = stack.config_path.read_text().replace("http_port: 0", f"http_port: {port}")
    stack.config_path.write_text(text)
    proc = stack.spawn("run", str(stack.config_path))
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        ready = (0, "")
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(stack.collect_logs()[-3000:])
            try:
                ready = _get(f"{base}/readyz")
                body = json.loads(ready[1])
                if ready[0] == 200 and all(c["last_tick_at"] for c in
                                           body["connections"].values()):
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert ready[0] == 200, ready
        assert _get(f"{base}/healthz") == (200, '{"status":"alive"}')
        status, metrics = _get(f"{base}/metrics")
        assert status == 200
        for name in ("winback_ticks_total", "winback_tasks_total", "winback_api_calls_total",
                     "winback_outbox_depth", "winback_tick_seconds_bucket",
                     "winback_deals_enrolled_total"):
            assert name in metrics, name
        assert 'result="ok"' in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        stack.stop()
    assert proc.returncode == 0
    assert '"service.stopped"' in stack.collect_logs()
    engine = create_engine(stack.database_url)
    with engine.connect() as conn:
        assert list(conn.execute(select(connection_state.c.owner)).scalars()) == [None, None]
    engine.dispose()


def test_start_against_an_unmigrated_postgresql_ledger_exits_2(tmp_path: Path,
                                                               pg_url: str) -> None:
    """A replica never creates the schema itself: it says to run `winback migrate`."""
    stack = Stack(tmp_path, pg_url).start(deals=5)
    try:
        run = stack.run_once(stack.command("sync", str(stack.config_path)), timeout=120)
    finally:
        stack.stop()
    assert run.returncode == 2
    assert "winback migrate" in run.log
    assert "Traceback" not in run.log

