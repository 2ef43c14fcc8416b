"""Logins and sessions: SOAP `login()` and the OAuth 2.0 token endpoint (password, JWT bearer,
client credentials).

Shapes follow reference §5 and §6: the SOAP answer carries `<sessionId>` and a `<serverUrl>`
with host:port; SOAP faults carry `<sf:exceptionCode>`; OAuth answers JSON with
`access_token` and `instance_url` (no trailing slash) or `{"error", "error_description"}`.
OAuth refusals use Salesforce's own error_description strings (each seen in Salesforce's
documentation or in answers quoted by its users): "invalid assertion", "audience is invalid",
"user hasn't approved this consumer", "expired authorization code", "no client credentials
user enabled", "request not supported on this domain" (client credentials at the shared login
hosts), invalid_client "invalid client credentials", invalid_client_id "client identifier
invalid". JWT assertions are verified with PyJWT against the app's certificate. SOAP login()
at API 65.0 or later is refused with INVALID_OPERATION, as Salesforce does.
A session expires `ttl` after its last use (by the emulator clock), when an admin expires it,
or when its user is deactivated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs
from xml.etree import ElementTree
from xml.sax.saxutils import escape

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sandbox.messages import Response

INVALID_LOGIN = "Invalid username, password, security token; or user locked out."
NEW_LOCATION_MESSAGE = (
    "Invalid username, password, security token; or user locked out. Are you at a new "
    "location? When accessing Salesforce--either via a desktop client or the API--from outside "
    "of your company's trusted networks, you must add a security token to your password to log "
    "in.")
LOGIN_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
SHARED_LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
SOAP_LOGIN_GONE = 65.0  # login() is not in API 65.0 and later (INVALID_OPERATION)


@dataclass
class Credential:
    username: str
    password: str
    security_token: str
    user_id: str


@dataclass
class Session:
    token: str
    username: str
    user_id: str
    last_used: datetime
    revoked: bool = False


@dataclass
class ConnectedApp:
    """`jwt_public_key`: the PEM certificate (or public key) uploaded for the JWT bearer flow;
    `preauthorized`: usernames pre-authorised through the app's permission sets / profiles;
    `run_as`: the client credentials flow's Run As user (None: the flow is not enabled)."""

    consumer_key: str
    consumer_secret: str
    jwt_public_key: str | None = None
    preauthorized: frozenset[str] = frozenset()
    run_as: str | None = None

    def verifying_key(self) -> Any:
        if not self.jwt_public_key:
            return None
        pem = self.jwt_public_key.encode()
        try:
            if b"BEGIN CERTIFICATE" in pem:
                return x509.load_pem_x509_certificate(pem).public_key()
            return serialization.load_pem_public_key(pem)
        except ValueError:
            return None


class LoginFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Auth:
    def __init__(self, org_id: str, ttl_seconds: float | None) -> None:
        self.org_id = org_id
        self.ttl_seconds = ttl_seconds
        self.credentials: dict[str, Credential] = {}
        self.sessions: dict[str, Session] = {}
        self.apps: dict[str, ConnectedApp] = {}
        self.doomed = 0  # this many sessions issued from now on are revoked at birth

    def clear(self) -> None:
        self.credentials.clear()
        self.sessions.clear()
        self.apps.clear()
        self.doomed = 0

    # -- sessions -----------------------------------------------------------------------
    def issue(self, credential: Credential, now: datetime) -> Session:
        token = f"{self.org_id[:15]}!AQ{secrets.token_urlsafe(72)}"
        session = Session(token, credential.username, credential.user_id, now)
        if self.doomed > 0:  # an admin revoking it as soon as it was issued
            self.doomed -= 1
            session.revoked = True
        self.sessions[token] = session
        return session

    def session_for(self, authorization: str | None) -> Session | None:
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("bearer", "oauth"):
            return None
        return self.sessions.get(token.strip())

    def authenticate(self, authorization: str | None, now: datetime,
                     user_active: Callable[[str], bool]) -> Session | None:
        session = self.session_for(authorization)
        if session is None or session.revoked:
            return None
        if self.ttl_seconds is not None and now - session.last_used > timedelta(
                seconds=self.ttl_seconds):
            session.revoked = True
            return None
        if not user_active(session.user_id):
            return None
        session.last_used = max(session.last_used, now)
        return session

    def expire(self, username: str | None = None) -> int:
        count = 0
        for session in self.sessions.values():
            if not session.revoked and (username is None or session.username == username):
                session.revoked = True
                count += 1
        return count

    # -- credentials --------------------------------------------------------------------
    def check(self, username: str, secret: str, user_active: Callable[[str], bool]) -> Credential:
        credential = self.credentials.get(username.lower())
        if credential is None or not user_active(credential.user_id):
            raise LoginFailed("INVALID_LOGIN", INVALID_LOGIN)
        if secret == credential.password + credential.security_token:
            return credential
        if secret == credential.password and credential.security_token:
            raise LoginFailed("LOGIN_MUST_USE_SECURITY_TOKEN", NEW_LOCATION_MESSAGE)
        raise LoginFailed("INVALID_LOGIN", INVALID_LOGIN)

    # -- SOAP ---------------------------------------------------------------------------
    def soap_login(self, body: bytes, instance_url: str, version: str, now: datetime,
                   user_active: Callable[[str], bool]) -> Response:
        if float(version) >= SOAP_LOGIN_GONE:
            return soap_fault("INVALID_OPERATION", "The SOAP Login operation is not available in "
                              f"the API version specified ({version}). Refer to the "
                              "documentation for supported versions.")
        try:
            username, password = soap_credentials(body)
            credential = self.check(username, password, user_active)
        except LoginFailed as exc:
            return soap_fault(exc.code, exc.message)
        session = self.issue(credential, now)
        server = f"{instance_url}/services/Soap/u/{version}/{self.org_id[:15]}"
        xml = (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns="urn:partner.soap.sforce.com" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
            "<loginResponse><result>"
            f"<metadataServerUrl>{escape(server.replace('/u/', '/m/'))}</metadataServerUrl>"
            "<passwordExpired>false</passwordExpired><sandbox>false</sandbox>"
            f"<serverUrl>{escape(server)}</serverUrl>"
            f"<sessionId>{escape(session.token)}</sessionId>"
            f"<userId>{credential.user_id}</userId><userInfo>"
            f"<organizationId>{self.org_id}</organizationId>"
            f"<userId>{credential.user_id}</userId>"
            f"<userName>{escape(credential.username)}</userName>"
            "</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>")
        return Response.text(200, xml, "text/xml; charset=utf-8")

    # -- OAuth --------------------------------------------------------------------------
    def oauth_token(self, body: bytes, instance_url: str, now: datetime,
                    user_active: Callable[[str], bool], *, authorization: str | None = None,
                    host: str = "", identity_base: str | None = None) -> Response:
        """The token endpoint; `id` is the identity URL under `identity_base` (the emulator's
        own base URL; default `instance_url`), which the emulator serves (identity.py)."""
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        grant = form.get("grant_type", "")
        try:
            if grant == "password":
                app = self._app(form.get("client_id", ""), form.get("client_secret"))
                credential = self._password_grant(form, user_active)
            elif grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
                app, credential = self._jwt_grant(form.get("assertion", ""), instance_url, now,
                                                  user_active)
            elif grant == "client_credentials":
                app, credential = self._client_credentials(form, authorization, host,
                                                           user_active)
            else:
                return oauth_error("unsupported_grant_type", "grant type not supported")
        except LoginFailed as exc:
            return oauth_error(exc.code, exc.message)
        session = self.issue(credential, now)
        issued = str(int(now.timestamp() * 1000))
        identity = f"{identity_base or instance_url}/id/{self.org_id}/{credential.user_id}"
        signature = base64.b64encode(hmac.new(app.consumer_secret.encode(),
                                              (identity + issued).encode(),
                                              hashlib.sha256).digest()).decode()
        return Response.json(200, {
            "access_token": session.token, "instance_url": instance_url, "id": identity,
            "token_type": "Bearer", "issued_at": issued, "signature": signature,
            "scope": "api"})

    def _app(self, client_id: str, secret: str | None) -> ConnectedApp:
        app = self.apps.get(client_id)
        if app is None:
            raise LoginFailed("invalid_client_id", "client identifier invalid")
        if secret is not None and not hmac.compare_digest(secret.encode(),
                                                          app.consumer_secret.encode()):
            raise LoginFailed("invalid_client", "invalid client credentials")
        return app

    def _password_grant(self, form: dict[str, str],
                        user_active: Callable[[str], bool]) -> Credential:
        try:
            return self.check(form.get("username", ""), form.get("password", ""), user_active)
        except LoginFailed:
            raise LoginFailed("invalid_grant", "authentication failure") from None

    def _jwt_grant(self, assertion: str, instance_url: str, now: datetime,
                   user_active: Callable[[str], bool]) -> tuple[ConnectedApp, Credential]:
        try:
            claims: dict[str, Any] = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise LoginFailed("invalid_grant", "invalid assertion") from None
        app = self._app(str(claims.get("iss", "")), None)
        key = app.verifying_key()
        if key is None:  # no certificate uploaded: nothing the signature could match
            raise LoginFailed("invalid_grant", "invalid assertion")
        try:
            # exp arrives as a string from simple-salesforce; Salesforce accepts that, PyJWT
            # does not, so the time checks are done here.
            jwt.decode(assertion, key, algorithms=["RS256"],
                       options={"verify_exp": False, "verify_aud": False})
            expires = float(claims["exp"])
        except (jwt.PyJWTError, KeyError, TypeError, ValueError):
            raise LoginFailed("invalid_grant", "invalid assertion") from None
        if expires <= now.timestamp():
            raise LoginFailed("invalid_grant", "expired authorization code")
        if claims.get("aud") not in (*LOGIN_AUDIENCES, instance_url):
            raise LoginFailed("invalid_grant", "audience is invalid")
        username = str(claims.get("sub", "")).lower()
        credential = self.credentials.get(username)
        if credential is None or not user_active(credential.user_id) \
                or username not in app.preauthorized:
            raise LoginFailed("invalid_grant", "user hasn't approved this consumer")
        return app, credential

    def _client_credentials(self, form: dict[str, str], authorization: str | None, host: str,
                            user_active: Callable[[str], bool]
                            ) -> tuple[ConnectedApp, Credential]:
        if host.lower().partition(":")[0] in SHARED_LOGIN_HOSTS:
            raise LoginFailed("invalid_grant", "request not supported on this domain")
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() == "basic":
            try:
                client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
            except ValueError:
                raise LoginFailed("invalid_client", "invalid client credentials") from None
        app = self._app(client_id, secret)
        credential = self.credentials.get((app.run_as or "").lower())
        if credential is None or not user_active(credential.user_id):
            raise LoginFailed("invalid_grant", "no client credentials user enabled")
        return app, credential


def soap_credentials(body: bytes) -> tuple[str, str]:
    """Username and password(+token) of a SOAP login request."""
    try:
        root = ElementTree.fromstring(body)  # noqa: S314 - the emulator's own test traffic
    except ElementTree.ParseError:
        raise LoginFailed("INVALID_LOGIN", INVALID_LOGIN) from None
    found = {el.tag.rpartition("}")[2]: (el.text or "") for el in root.iter()}
    if "username" not in found:
        raise LoginFailed("INVALID_LOGIN", INVALID_LOGIN)
    return found["username"], found.get("password", "")


def soap_username(body: bytes) -> str | None:
    try:
        return soap_credentials(body)[0]
    except LoginFailed:
        return None


def soap_fault(code: str, message: str, status: int = 500) -> Response:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
        'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>sf:{code}</faultcode><faultstring>{code}: {escape(message)}</faultstring>"
        '<detail><sf:LoginFault xsi:type="sf:LoginFault">'
        f"<sf:exceptionCode>{code}</sf:exceptionCode>"
        f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage>"
        "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>")
    return Response.text(status, xml, "text/xml; charset=utf-8")


def oauth_error(code: str, description: str, status: int = 400) -> Response:
    return Response.json(status, {"error": code, "error_description": description})
