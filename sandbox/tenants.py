"""Many CRM accounts behind one emulator server, kept apart as the CRMs keep them.

Salesforce: many orgs. A login names its user, and usernames are unique across Salesforce, so
a SOAP or OAuth username-password login goes to the org holding that user; every later call
carries the session, whose id starts with the org's id (`00D...!...`), so it goes to that
org. HubSpot: many portals behind one API host. A private app token belongs to one portal, so
each call goes to the portal whose token it carries. Each org or portal is a whole emulator of
its own (its data, call counts, write log, overlapping-run and Retry-After bookkeeping).

Admin routes address one account: `/__sandbox/accounts/<i>/<route>` is `<route>` of the i-th;
`/__sandbox/accounts` lists them. Made for the many-connection benchmark (bench/fleet.py).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from sandbox.core import ADMIN_PREFIX, Emulator
from sandbox.hubspot import HubSpotEmulator
from sandbox.messages import Request, Response
from sandbox.salesforce import SalesforceEmulator
from sandbox.salesforce.auth import soap_fault, soap_username
from sandbox.salesforce.errors import error_response
from sandbox.server import EmulatorServer
from sandbox.tls import TestCA

_ACCOUNT_ADMIN = re.compile(re.escape(ADMIN_PREFIX) + r"accounts/(?P<index>\d+)(?P<rest>/.*)?")


class Tenants(ABC):
    """The front of an `EmulatorServer` for several emulators of one CRM (the server only
    needs `name`, `now` and `handle`)."""

    def __init__(self, accounts: Sequence[Emulator]) -> None:
        if not accounts:
            raise ValueError("at least one account")
        self.accounts = list(accounts)
        self.name = f"{self.accounts[0].name}-accounts"
        self._by_key: dict[str, Emulator] = {}

    def now(self) -> datetime:
        return self.accounts[0].now()

    def handle(self, request: Request) -> Response:
        if request.path.startswith(ADMIN_PREFIX):
            return self._admin(request)
        account = self.route(request)
        if account is None:
            return self.unknown(request)
        return account.handle(request)

    def _admin(self, request: Request) -> Response:
        if request.path.rstrip("/") == ADMIN_PREFIX + "accounts":
            return Response.json(200, {"accounts": len(self.accounts)})
        match = _ACCOUNT_ADMIN.fullmatch(request.path)
        if match is None or int(match["index"]) >= len(self.accounts):
            return Response.json(404, {"message": "address one account: "
                                       f"{ADMIN_PREFIX}accounts/<i>/<route>"})
        request.path = ADMIN_PREFIX + (match["rest"] or "/").lstrip("/")
        return self.accounts[int(match["index"])].handle(request)

    def key(self, account: Emulator, key: str) -> None:
        """Calls carrying `key` (a username, an org id, a token) go to `account`."""
        self._by_key[key] = account

    @abstractmethod
    def route(self, request: Request) -> Emulator | None:
        """The account a CRM call is for (None: none of them), by the CRM's own way."""

    @abstractmethod
    def unknown(self, request: Request) -> Response:
        """The CRM's answer to a call for no account."""


def _bearer(request: Request) -> str | None:
    header = request.header("Authorization") or ""
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() in ("bearer", "oauth") and value.strip() else None


class SalesforceOrgs(Tenants):
    """Salesforce orgs: by the login's username, then by the session's org id."""

    def __init__(self, orgs: Sequence[SalesforceEmulator]) -> None:
        super().__init__(orgs)
        for org in orgs:
            self.key(org, org.options.username.lower())
            self.key(org, org.org_id[:15])

    def route(self, request: Request) -> Emulator | None:
        if request.path.rstrip("/").endswith("/services/oauth2/token"):
            form = parse_qs(request.body.decode("utf-8", "replace"))
            name = (form.get("username") or [""])[0]
            return self._by_key.get(name.lower())
        if request.path.startswith("/services/Soap/"):
            return self._by_key.get((soap_username(request.body) or "").lower())
        session = _bearer(request)
        if session is None:  # the version list needs no session: any org answers it
            return self.accounts[0] if request.path.rstrip("/") == "/services/data" else None
        return self._by_key.get(session.split("!", 1)[0][:15])

    def unknown(self, request: Request) -> Response:
        if "/services/Soap/" in request.path:
            return soap_fault("INVALID_LOGIN",
                              "INVALID_LOGIN: Invalid username, password, security token; or "
                              "user locked out.")
        return error_response(401, "INVALID_SESSION_ID", "Session expired or invalid")


class HubSpotPortals(Tenants):
    """HubSpot portals: by the private app token a call carries."""

    def __init__(self, portals: Sequence[HubSpotEmulator]) -> None:
        super().__init__(portals)
        for portal in portals:
            for token in portal.options.tokens:
                self.key(portal, token)

    def route(self, request: Request) -> Emulator | None:
        token = _bearer(request)
        return self._by_key.get(token) if token else None

    def unknown(self, request: Request) -> Response:
        return Response.json(401, {
            "status": "error", "category": "INVALID_AUTHENTICATION",
            "message": "Authentication credentials not found. This API supports OAuth 2.0 "
                       "authentication and you can find more details at "
                       "https://developers.hubspot.com/docs/methods/auth/oauth-overview"})


def serve_orgs(orgs: Sequence[SalesforceEmulator], ca: TestCA) -> EmulatorServer:
    """Serve these orgs over HTTPS on one port; each org's instance URL is that server."""
    front = SalesforceOrgs(orgs)
    server = EmulatorServer(front, ssl_context=ca.server_context)
    for org in orgs:
        org.instance_url = server.url
    return server.start()


def serve_portals(portals: Sequence[HubSpotEmulator]) -> EmulatorServer:
    """Serve these portals over HTTP on one port."""
    return EmulatorServer(HubSpotPortals(portals)).start()


def overlapping_runs(accounts: Sequence[Emulator]) -> list[dict[str, Any]]:
    """Every account's overlapping runs of one login (see Emulator.overlapping_runs)."""
    return [dict(run, account=i) for i, account in enumerate(accounts)
            for run in account.overlapping_runs()]
