"""The emulators' HTTP/1.1 wire, byte by byte, over plain sockets (TLS for Salesforce).

What Node clients (jsforce 3, @hubspot/api-client) and other HTTP stacks send and the Python
SDKs never do: chunked request bodies without Content-Length, `Expect: 100-continue`, several
requests pipelined in one write. After each, a follow-up request on the same connection must
answer correctly (the connection did not lose its place in the byte stream). A dropped
connection fault sends no byte at all.
"""

from __future__ import annotations

import json
import socket
import ssl
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from sandbox import tls
from sandbox.hubspot import HubSpotEmulator, start_hubspot
from sandbox.runner import HUBSPOT_TOKEN, SF_PASSWORD, SF_TOKEN, SF_USERNAME
from sandbox.salesforce import SalesforceEmulator, start_salesforce
from sandbox.server import EmulatorServer

SF_VERSION = "64.0"
CLIENT_ID, CLIENT_SECRET = "sandbox-client-id", "sandbox-client-secret"
LOGIN_FORM = urlencode({"grant_type": "password", "client_id": CLIENT_ID,
                        "client_secret": CLIENT_SECRET, "username": SF_USERNAME,
                        "password": SF_PASSWORD + SF_TOKEN}).encode()
SOAP_LOGIN = (
    '<?xml version="1.0" encoding="utf-8"?><env:Envelope '
    'xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:urn="urn:partner.soap.sforce.com"><env:Body><urn:login>'
    f"<urn:username>{SF_USERNAME}</urn:username>"
    f"<urn:password>{SF_PASSWORD}{SF_TOKEN}</urn:password>"
    "</urn:login></env:Body></env:Envelope>").encode()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Wire:
    """One client connection: raw bytes out, answers parsed from one buffered reader."""

    def __init__(self, url: str, ca: tls.TestCA | None) -> None:
        host, port = url.rsplit("/", 1)[-1].split(":")
        raw = socket.create_connection((host, int(port)), timeout=10)
        self.sock: socket.socket = raw
        if url.startswith("https://"):
            assert ca is not None
            self.sock = ca.client_context().wrap_socket(raw, server_hostname=host)
        self.host = f"{host}:{port}"
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None
                = None) -> bytes:
        """The bytes of one request with a Content-Length body (sent by the caller)."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body or method in ("POST", "PATCH", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def read(self) -> Answer:
        status_line = self.reader.readline()
        assert status_line.startswith(b"HTTP/1.1 "), f"not an HTTP answer: {status_line!r}"
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = self.reader.read(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while (size := int(self.reader.readline().split(b";")[0], 16)) > 0:
                body += self.reader.read(size)
                self.reader.readline()
            self.reader.readline()
        else:
            body = b""
        return Answer(status, headers, body)

    def rest(self) -> bytes:
        """Everything the server still sends until it closes the connection."""
        data = b""
        try:
            while chunk := self.sock.recv(65536):
                data += chunk
        except (ssl.SSLError, ConnectionResetError):
            pass  # a TLS connection torn down without close_notify: still no answer bytes
        return data

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def chunked(body: bytes, pieces: int = 3) -> bytes:
    step = max(1, len(body) // pieces)
    parts = [body[i:i + step] for i in range(0, len(body), step)]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


def head(method: str, path: str, host: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# -- the emulators ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def salesforce(tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[EmulatorServer, tls.TestCA, SalesforceEmulator]]:
    started = start_salesforce(ca_dir=Path(tmp_path_factory.mktemp("wire-ca")))
    yield started
    started[0].stop()


@pytest.fixture(scope="module")
def hubspot() -> Iterator[tuple[EmulatorServer, HubSpotEmulator]]:
    started = start_hubspot(seed=3, deals=3)
    yield started
    started[0].stop()


@pytest.fixture
def sf_wire(salesforce: tuple[EmulatorServer, tls.TestCA, SalesforceEmulator]) -> Iterator[Wire]:
    server, ca, _ = salesforce
    wire = Wire(server.url, ca)
    yield wire
    wire.close()
    _clear_faults(Wire(server.url, ca))


@pytest.fixture
def hs_wire(hubspot: tuple[EmulatorServer, HubSpotEmulator]) -> Iterator[Wire]:
    wire = Wire(hubspot[0].url, None)
    yield wire
    wire.close()
    _clear_faults(Wire(hubspot[0].url, None))


def _clear_faults(wire: Wire) -> None:
    body = b'{"clear": true}'
    wire.send(wire.request("POST", "/__sandbox/faults", body,
                           {"Content-Type": "application/json"}))
    assert wire.read().status == 200
    wire.close()


def _sf_token(wire: Wire) -> str:
    wire.send(wire.request("POST", "/services/oauth2/token", LOGIN_FORM,
                           {"Content-Type": "application/x-www-form-urlencoded"}))
    answer = wire.read()
    assert answer.status == 200, answer.body
    token: str = answer.json()["access_token"]
    return token


def _sf_follow_up(wire: Wire, token: str) -> None:
    """A request on the same connection answers correctly: still in sync."""
    wire.send(wire.request("GET", f"/services/data/v{SF_VERSION}/limits",
                           headers={"Authorization": f"Bearer {token}"}))
    answer = wire.read()
    assert answer.status == 200, answer.body
    assert "DailyApiRequests" in answer.json()


AUTH = {"Authorization": f"Bearer {HUBSPOT_TOKEN}"}


def _hs_deal_ids(wire: Wire) -> list[str]:
    wire.send(wire.request("GET", "/crm/v3/objects/deals?limit=3", headers=AUTH))
    answer = wire.read()
    assert answer.status == 200, answer.body
    return [str(d["id"]) for d in answer.json()["results"]]


# -- Salesforce (HTTPS) ----------------------------------------------------------------------
def test_salesforce_oauth_login_with_a_chunked_body(sf_wire: Wire) -> None:
    sf_wire.send(head("POST", "/services/oauth2/token", sf_wire.host, {
        "Content-Type": "application/x-www-form-urlencoded", "Transfer-Encoding": "chunked"})
        + chunked(LOGIN_FORM))
    answer = sf_wire.read()
    assert answer.status == 200, answer.body
    token = answer.json()["access_token"]
    _sf_follow_up(sf_wire, token)


def test_salesforce_soap_login_with_a_chunked_body(sf_wire: Wire) -> None:
    sf_wire.send(head("POST", f"/services/Soap/u/{SF_VERSION}", sf_wire.host, {
        "Content-Type": "text/xml", "SOAPAction": "login", "Transfer-Encoding": "chunked"})
        + chunked(SOAP_LOGIN))
    answer = sf_wire.read()
    assert answer.status == 200, answer.body
    assert b"<sessionId>" in answer.body
    token = answer.body.split(b"<sessionId>")[1].split(b"</sessionId>")[0].decode()
    _sf_follow_up(sf_wire, token)


def test_salesforce_answers_pipelined_requests_in_order(sf_wire: Wire) -> None:
    token = _sf_token(sf_wire)
    auth = {"Authorization": f"Bearer {token}"}
    sf_wire.send(sf_wire.request("GET", f"/services/data/v{SF_VERSION}/limits", headers=auth)
                 + sf_wire.request("GET", "/services/data/")
                 + sf_wire.request("GET", f"/services/data/v{SF_VERSION}/sobjects/User/describe",
                                   headers=auth))
    first, second, third = sf_wire.read(), sf_wire.read(), sf_wire.read()
    assert (first.status, second.status, third.status) == (200, 200, 200)
    assert "DailyApiRequests" in first.json()
    assert any(v["version"] == SF_VERSION for v in second.json())
    assert third.json()["name"] == "User"
    _sf_follow_up(sf_wire, token)


def test_salesforce_expect_100_continue(sf_wire: Wire) -> None:
    sf_wire.send(head("POST", "/services/oauth2/token", sf_wire.host, {
        "Content-Type": "application/x-www-form-urlencoded", "Expect": "100-continue",
        "Content-Length": str(len(LOGIN_FORM))}))
    interim = sf_wire.read()
    assert interim.status == 100 and interim.body == b""
    sf_wire.send(LOGIN_FORM)
    answer = sf_wire.read()
    assert answer.status == 200, answer.body
    _sf_follow_up(sf_wire, answer.json()["access_token"])


def test_salesforce_dropped_connection_sends_no_byte(sf_wire: Wire) -> None:
    token = _sf_token(sf_wire)
    sf_wire.send(sf_wire.request("POST", "/__sandbox/faults",
                                 b'{"endpoint": "limits", "drop_rate": 1.0}'))
    assert sf_wire.read().status == 200
    sf_wire.send(sf_wire.request("GET", f"/services/data/v{SF_VERSION}/limits",
                                 headers={"Authorization": f"Bearer {token}"}))
    assert sf_wire.rest() == b""


# -- HubSpot (HTTP) --------------------------------------------------------------------------
def test_hubspot_batch_read_with_a_chunked_body(hs_wire: Wire) -> None:
    ids = _hs_deal_ids(hs_wire)
    body = json.dumps({"inputs": [{"id": i} for i in ids],
                       "properties": ["dealname"]}).encode()
    hs_wire.send(head("POST", "/crm/v3/objects/deals/batch/read", hs_wire.host, {
        **AUTH, "Content-Type": "application/json", "Transfer-Encoding": "chunked"})
        + chunked(body))
    answer = hs_wire.read()
    assert answer.status == 200, answer.body
    assert sorted(r["id"] for r in answer.json()["results"]) == sorted(ids)
    assert _hs_deal_ids(hs_wire) == ids


def test_hubspot_answers_pipelined_requests_in_order(hs_wire: Wire) -> None:
    ids = _hs_deal_ids(hs_wire)
    hs_wire.send(b"".join(hs_wire.request("GET", f"/crm/v3/objects/deals/{i}", headers=AUTH)
                          for i in ids))
    answers = [hs_wire.read() for _ in ids]
    assert [a.status for a in answers] == [200] * len(ids)
    assert [a.json()["id"] for a in answers] == ids
    assert _hs_deal_ids(hs_wire) == ids


def test_hubspot_expect_100_continue(hs_wire: Wire) -> None:
    ids = _hs_deal_ids(hs_wire)
    body = json.dumps({"inputs": [{"id": ids[0]}], "properties": ["dealname"]}).encode()
    hs_wire.send(head("POST", "/crm/v3/objects/deals/batch/read", hs_wire.host, {
        **AUTH, "Content-Type": "application/json", "Expect": "100-continue",
        "Content-Length": str(len(body))}))
    interim = hs_wire.read()
    assert interim.status == 100 and interim.body == b""
    hs_wire.send(body)
    answer = hs_wire.read()
    assert answer.status == 200, answer.body
    assert [r["id"] for r in answer.json()["results"]] == ids[:1]
    assert _hs_deal_ids(hs_wire) == ids


def test_hubspot_dropped_connection_sends_no_byte(hs_wire: Wire) -> None:
    ids = _hs_deal_ids(hs_wire)
    hs_wire.send(hs_wire.request("POST", "/__sandbox/faults",
                                 b'{"endpoint": "*", "drop_rate": 1.0, "count": 1}'))
    assert hs_wire.read().status == 200
    hs_wire.send(hs_wire.request("GET", f"/crm/v3/objects/deals/{ids[0]}", headers=AUTH))
    assert hs_wire.rest() == b""


def test_answers_on_a_kept_alive_connection_do_not_wait_for_a_delayed_ack(hs_wire: Wire
                                                                           ) -> None:
    """Head and body leave at once (no Nagle): with Nagle, every answer on a kept-alive
    connection waits for the client's delayed ACK, 40 ms or more."""
    took = []
    for _ in range(15):
        started = time.perf_counter()
        hs_wire.send(hs_wire.request("GET", "/crm/v3/owners", headers=AUTH))
        assert hs_wire.read().status == 200
        took.append(time.perf_counter() - started)
    assert statistics.median(took) < 0.025, took
