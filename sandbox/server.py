"""Serving an emulator over real HTTP(S) on 127.0.0.1: uvicorn (httptools) in a background
thread with its own event loop, an ASGI adapter in front of `Emulator.handle`.

The HTTP/1.1 wire (Content-Length and chunked bodies, `Expect: 100-continue`, pipelining,
keep-alive) is uvicorn's; the emulator sees a whole `Request` and answers a whole `Response`.
Handlers block (the store lock, injected latency, slow faults that sleep for seconds), so each
runs in a worker thread, up to `WORKERS` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
import time
from datetime import datetime
from email.message import Message
from email.utils import formatdate
from typing import Protocol
from urllib.parse import parse_qs

import anyio.to_thread
import uvicorn
from anyio import CapacityLimiter
from starlette.requests import ClientDisconnect
from starlette.requests import Request as StarletteRequest
from starlette.types import Receive, Scope, Send

from sandbox.messages import Request, Response

WORKERS = 256  # requests handled at once (slow faults hold a worker for seconds)
# uvicorn's HTTP/1.1 implementation. `Response.drop` relies on it: the adapter aborts the
# transport of the request cycle (`send.__self__.transport`), which httptools' cycle exposes.
HTTP_IMPLEMENTATION = "httptools"
KEEP_ALIVE_SECONDS = 120  # idle keep-alive connections are closed after this long
SHUTDOWN_SECONDS = 1  # requests still running at stop() get this long to finish


class Served(Protocol):
    """What a server serves: an `Emulator`, or several behind one front (sandbox/tenants.py)."""

    name: str

    def now(self) -> datetime: ...

    def handle(self, request: Request) -> Response: ...


class _App:
    """The ASGI application: one emulator, whole requests in, whole responses out."""

    def __init__(self, emulator: Served) -> None:
        self.emulator = emulator
        self._limiter: CapacityLimiter | None = None  # made on the server's event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # lifespan is off and websockets are not served
            return
        incoming = StarletteRequest(scope, receive)
        try:
            body = await incoming.body()
        except ClientDisconnect:
            return
        headers = Message()
        for name, value in incoming.headers.items():
            headers[name] = value
        request = Request(
            method=scope["method"],
            # The path as sent (not percent-decoded), like the request line.
            path=scope.get("raw_path", scope["path"].encode()).decode("latin-1"),
            query=parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True),
            headers=headers,
            body=body,
        )
        if self._limiter is None:
            self._limiter = CapacityLimiter(WORKERS)
        response = await anyio.to_thread.run_sync(self._handle, request, limiter=self._limiter,
                                                  abandon_on_cancel=True)
        if response.drop:
            await _drop(send)
            return
        # The Date header follows the emulator's clock (the admin clock offset included), so a
        # skewed CRM clock can be staged.
        stamp = self.emulator.now().timestamp()
        head = [(name.encode("latin-1"), value.encode("latin-1"))
                for name, value in response.headers.items()]
        head += [(b"date", formatdate(stamp, usegmt=True).encode()),
                 (b"content-length", str(len(response.body)).encode())]
        await send({"type": "http.response.start", "status": response.status, "headers": head})
        body_out = b"" if scope["method"] == "HEAD" else response.body
        await send({"type": "http.response.body", "body": body_out})

    def _handle(self, request: Request) -> Response:
        try:
            return self.emulator.handle(request)
        except Exception as exc:  # a bug in an emulator must still answer like a server
            return Response.json(500, {"message": f"emulator error: {exc!r}"})


async def _drop(send: Send) -> None:
    """Close the connection without a byte of answer (a "dropped connection" fault)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if not isinstance(transport, asyncio.Transport):
        raise RuntimeError(f"cannot drop the connection: uvicorn's {HTTP_IMPLEMENTATION} cycle "
                           "no longer exposes its transport; pin a uvicorn that does")
    transport.abort()
    # connection_lost runs on a later loop turn (two over TLS) and marks the cycle
    # disconnected, so uvicorn does not answer 500 for an app that returned without a response.
    for _ in range(20):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0)


class EmulatorServer:
    """Serves one emulator on 127.0.0.1 (port 0 picks a free one), optionally over TLS.

    The socket is bound at construction (so `.port` and `.url` are known before `start()`);
    `start()` serves it from a background thread and returns once uvicorn is accepting.
    """

    def __init__(
        self,
        emulator: Served,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.emulator = emulator
        self.ssl_context = ssl_context
        # proto=IPPROTO_TCP: asyncio turns Nagle off only on sockets that say they are TCP;
        # with Nagle, a head and a body written apart meet the client's delayed ACK (40 ms).
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._socket.bind((host, port))
            self._socket.listen(128)
        except OSError:
            self._socket.close()
            raise
        self._host, self._port = self._socket.getsockname()[:2]
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{self._host!s}:{self._port}"

    @property
    def port(self) -> int:
        return int(self._port)

    def _config(self) -> uvicorn.Config:
        config = uvicorn.Config(
            _App(self.emulator), http=HTTP_IMPLEMENTATION, ws="none", lifespan="off",
            interface="asgi3", loop="asyncio", access_log=False, log_config=None,
            log_level="critical", server_header=False, date_header=False, proxy_headers=False,
            timeout_keep_alive=KEEP_ALIVE_SECONDS, timeout_graceful_shutdown=SHUTDOWN_SECONDS,
        )
        config.load()
        # uvicorn builds a context from cert/key files; the CA's own context is used as is.
        config.ssl = self.ssl_context
        return config

    def start(self) -> EmulatorServer:
        server = self._server = uvicorn.Server(self._config())
        failed: list[BaseException] = []

        def serve() -> None:
            try:
                # A fresh loop in this thread; uvicorn installs no signal handler off the
                # main thread.
                asyncio.run(server.serve(sockets=[self._socket]))
            except BaseException as exc:  # startup failures end up in start()
                failed.append(exc)

        self._thread = threading.Thread(target=serve, name=f"{self.emulator.name}-server",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if failed or not self._thread.is_alive():
                raise RuntimeError(f"the {self.emulator.name} emulator did not start: "
                                   f"{failed[0] if failed else 'server thread ended'!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the {self.emulator.name} emulator did not start in 30 s")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=SHUTDOWN_SECONDS + 5)
        with contextlib.suppress(OSError):
            self._socket.close()

    def __repr__(self) -> str:
        return f"EmulatorServer({self.emulator.name}, {self.url})"
