"""Serving an emulator over real HTTP(S) on 127.0.0.1: one request thread each, TLS in the
request thread, one write per answer."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.core import Emulator
from sandbox.messages import Request, Response

_STATUSES = {s.value for s in HTTPStatus}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: EmulatorServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the emulators keep their own counts."""

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
        )
        try:
            response = self.server.emulator.handle(request)
        except Exception as exc:  # a bug in an emulator must still answer like a server
            response = Response.json(500, {"message": f"emulator error: {exc!r}"})
        if response.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        reason = HTTPStatus(response.status).phrase if response.status in _STATUSES else ""
        head = [f"HTTP/1.1 {response.status} {reason}"]
        head += [f"{name}: {value}" for name, value in response.headers.items()]
        # The Date header follows the emulator's clock (the admin clock offset included), so a
        # skewed CRM clock can be staged.
        stamp = self.server.emulator.now().timestamp()
        head += [f"Date: {self.date_time_string(stamp)}",
                 f"Content-Length: {len(response.body)}"]
        # One write for head and body: two small writes meet Nagle + delayed ACK (40 ms each).
        payload = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
        if self.command != "HEAD":
            payload += response.body
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class EmulatorServer(ThreadingHTTPServer):
    """Serves one emulator on 127.0.0.1 (port 0 picks a free one), optionally over TLS.

    The TLS handshake runs in the request thread, so a slow client never blocks `accept()`.
    """

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        emulator: Emulator,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.emulator = emulator
        self.ssl_context = ssl_context
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{host!s}:{port}"

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.ssl_context is None:
            super().finish_request(request, client_address)
            return
        try:
            wrapped = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"{self.emulator.name}-server", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
