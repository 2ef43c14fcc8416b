"""`winback doctor` never crashes: whatever a CRM or a proxy in between answers, every check ends
passed or failed with a reason. A tiny HTTP server on 127.0.0.1 stands in for both CRMs and
answers every request with one kind of garbage; `Date` header trouble is also staged in front of
a working emulator (a proxy that doubles or strips the header)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from sandbox.keys import make_signing_key
from sandbox.runner import hubspot_connection, salesforce_connection, start_sandbox
from tests.acceptance.conftest import CONFIG
from worker.cli import doctor
from worker.cli.doctor import Check

HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
LOGIN = b"<html><body><form action='/login'><input name='password'></form></body></html>"
FAST = "    timeout: 2s\n"
DATE = "Tue, 01 Dec 2026 21:00:00 GMT"
Answer = Callable[[BaseHTTPRequestHandler], None]
CLOCK = {"duplicated headers": "2 Date headers, the first one read",
         "naive date": "the Date header has no time zone: read as GMT",
         "garbage date": "not checked: the Date header 'yesterday-ish' is not a date",
         "missing headers": "not checked: the CRM (or a proxy) sent no Date header"}


def _raw(handler: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]],
         body: bytes) -> None:
    handler.send_response_only(status)  # no automatic Server / Date headers
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def _redirect(handler: BaseHTTPRequestHandler) -> None:
    if handler.path.startswith("/login"):
        _raw(handler, 200, [("Date", DATE), ("Content-Type", "text/html")], LOGIN)
    else:
        _raw(handler, 302, [("Date", DATE), ("Location", "/login?next=sso")], b"")


ANSWERS: dict[str, Answer] = {
    "html error page": lambda h: _raw(h, 502, [("Date", DATE),
                                               ("Content-Type", "text/html")], HTML),
    "html page with 200": lambda h: _raw(h, 200, [("Date", DATE),
                                                  ("Content-Type", "text/html")], HTML),
    "empty body": lambda h: _raw(h, 200, [("Date", DATE),
                                          ("Content-Type", "application/json")], b""),
    "duplicated headers": lambda h: _raw(h, 200, [("Date", DATE), ("Date", DATE),
                                                  ("Content-Type", "application/json"),
                                                  ("Content-Type", "application/json")], b"{}"),
    "missing headers": lambda h: _raw(h, 200, [], b"{}"),
    "naive date": lambda h: _raw(h, 200, [("Date", "Tue, 01 Dec 2026 21:00:00"),
                                          ("Content-Type", "application/json")], b"[]"),
    "garbage date": lambda h: _raw(h, 200, [("Date", "yesterday-ish"),
                                            ("Content-Type", "application/json")], b"null"),
    "redirect to a login page": _redirect,
}


def serve(answer: Answer, *, reads_body: bool = True) -> tuple[str, Callable[[], None]]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length and reads_body:
                self.rfile.read(length)
            answer(self)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_address[1]}", stop


def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sf_url: str, hs_url: str) -> Path:
    """Salesforce on the JWT bearer flow (the default), with a key of the test's own."""
    signing = make_signing_key(tmp_path / "keys")
    for key, value in {"SF_CLIENT_ID": "3MVG9garbage",
                       "SF_PRIVATE_KEY_FILE": str(signing.key_path),
                       "SF_LOGIN_URL": sf_url, "SF_CA_BUNDLE": "", "SF_USERNAME": "u@example.com",
                       "SF_PASSWORD": "pw-garbage-test", "SF_TOKEN": "tok-garbage-test",
                       "HUBSPOT_BASE_URL": hs_url, "HUBSPOT_TOKEN": "pat-garbage-test",
                       "WINBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}.items():
        monkeypatch.setenv(key, value)
    path = tmp_path / "winback.yaml"
    sf = salesforce_connection("sf0", fallback="005000000000001AAA", extra=FAST).replace(
        "    ca_bundle: ${SF_CA_BUNDLE}\n", "")
    path.write_text(CONFIG + sf + hubspot_connection("hs0", fallback="1", extra=FAST))
    return path


def settled(checks: list[Check]) -> None:
    for check in checks:
        assert isinstance(check.ok, bool) and check.detail, check
        assert "garbage-test" not in check.detail + check.fix  # no secret in any answer


@pytest.fixture(params=sorted(ANSWERS))
def garbage(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    url, stop = serve(ANSWERS[request.param])
    yield request.param, url
    stop()


def test_every_check_ends_with_a_reason_whatever_the_crm_answers(
        garbage: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kind, url = garbage
    checks = doctor.run(config(tmp_path, monkeypatch, url, url))
    settled(checks)
    for scope in ("sf0", "hs0"):
        mine = [c for c in checks if c.scope == scope]
        assert any(not c.ok for c in mine), (kind, mine)  # nothing there is a working CRM
        assert not any(c.name == "login" and not c.ok for c in mine), (kind, mine)  # not
        # a verdict on the credentials: nothing there said they were wrong
        clock = next(c for c in mine if c.name == "clock skew")
        assert CLOCK.get(kind, "against the CRM's clock") in clock.detail, clock
        assert clock.warn == clock.detail.startswith("not checked"), clock  # unchecked: a warning


def proxy(upstream: str, ca_path: str, extra_date: str) -> tuple[str, Callable[[], None]]:
    """A plain-HTTP proxy in front of one emulator that adds its own `Date` header to every
    answer (the case `doctor` once crashed on: requests joins the two)."""
    session = requests.Session()
    session.trust_env = False
    session.verify = ca_path

    def forward(handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        headers = {k: v for k, v in handler.headers.items()
                   if k.lower() not in ("host", "content-length", "connection")}
        answer = session.request(handler.command, upstream + handler.path, data=body,
                                 headers=headers, timeout=30, allow_redirects=False)
        kept = [(k, v) for k, v in answer.raw.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                     "content-encoding")]
        _raw(handler, answer.status_code, [*kept, ("Date", extra_date)], answer.content)

    return serve(forward, reads_body=False)


def test_a_proxy_doubling_the_date_header_in_front_of_working_crms(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both CRMs work; the proxy's second Date is ignored (the first one is read), the clock
    check passes and says so, and every other check passes too."""
    box = start_sandbox(ca_dir=tmp_path / "ca")
    try:
        box.seed(5, 1, days_back=6, owners=3, inactive_owners=0)
        sf_fallback, hs_fallback = box.active_owners()
        stamp = formatdate(usegmt=True)
        sf_url, stop_sf = proxy(box.salesforce_url, str(box.ca.ca_path), stamp)
        hs_url, stop_hs = proxy(box.hubspot_url, str(box.ca.ca_path), stamp)
        try:
            for key, value in {**box.environment(), "SF_LOGIN_URL": sf_url,
                               "HUBSPOT_BASE_URL": hs_url,
                               "WINBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'l.db'}"}.items():
                monkeypatch.setenv(key, value)
            path = tmp_path / "winback.yaml"
            # SOAP: a JWT's audience is the login host, and the proxy is not a Salesforce host
            path.write_text(CONFIG + salesforce_connection("sf0", fallback=sf_fallback, flow="soap")
                            + hubspot_connection("hs0", fallback=hs_fallback))
            checks = doctor.run(path)
        finally:
            stop_sf()
            stop_hs()
    finally:
        box.stop()
    settled(checks)
    assert [c for c in checks if not c.ok] == []
    clocks = [c for c in checks if c.name == "clock skew"]
    assert len(clocks) == 2
    assert all("(2 Date headers, the first one read)" in c.detail for c in clocks), clocks
