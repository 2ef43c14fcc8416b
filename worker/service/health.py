"""HTTP endpoints for the platform: /healthz (alive), /readyz (ledger reachable, ticks recent),
/metrics (Prometheus)."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from worker.service.wiring import Service

STARTUP_GRACE = timedelta(minutes=2)


def readiness(service: Service, started: datetime) -> tuple[bool, dict[str, Any]]:
    now = datetime.now(UTC)
    try:
        with service.ledger.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return False, {"ledger": f"unreachable: {type(exc).__name__}"}
    details: dict[str, Any] = {"ledger": "ok", "connections": {}}
    ready = True
    for name, ctx in service.contexts.items():
        row = service.ledger.connection_row(name)
        limit = timedelta(seconds=3 * ctx.settings.poll_every + service.config.service.lease_ttl
                          + 60)
        last = row.last_tick_at if row is not None else None
        fresh = (now - started < STARTUP_GRACE + limit) if last is None else (now - last < limit)
        details["connections"][name] = {
            "last_tick_at": last.isoformat() if last else None,
            "last_result": row.last_tick_result if row is not None else None,
            "recent": fresh,
        }
        ready = ready and fresh
    return ready, details


class HealthServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, service: Service, host: str, port: int) -> None:
        self.service = service
        self.started = datetime.now(UTC)
        super().__init__((host, port), _Handler)
        self._thread = threading.Thread(target=self.serve_forever, name="health", daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: HealthServer

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds are not worth a log line."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._send(200, "application/json", b'{"status":"alive"}')
        elif path == "/readyz":
            ready, details = readiness(self.server.service, self.server.started)
            body = json.dumps({"ready": ready, **details}).encode()
            self._send(200 if ready else 503, "application/json", body)
        elif path == "/metrics":
            self._send(200, CONTENT_TYPE_LATEST, generate_latest(self.server.service.metrics
                                                                 .registry))
        else:
            self._send(404, "application/json", b'{"error":"not found"}')

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
