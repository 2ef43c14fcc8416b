"""Salesforce logins, one per `flow`, every request through the connector's transport.

    jwt                 an RS256 assertion (iss = client_id, sub = username, aud = the login
                        host, exp 3 minutes ahead), signed with PyJWT, exchanged at
                        `{login_url}/services/oauth2/token`; a new one at every (re-)login,
                        since the flow issues no refresh token (reference §5)
    client_credentials  `grant_type=client_credentials` with the consumer key and secret as
                        HTTP Basic, at the org's My Domain host
    password, soap      legacy: simple-salesforce's `SalesforceLogin` as before (domain
                        "login"; the transport rewrites the host to `login_url`)

simple-salesforce's own JWT and client-credentials modes build the token URL as
`https://{domain}.salesforce.com` (reference §6), which cannot name a host that is not under
salesforce.com and ties `aud` to `domain`; so those two post to `login_url` themselves, through
simple-salesforce's `token_login` (its answer parsing and `SalesforceAuthenticationFailed`).
"""

from __future__ import annotations

import base64
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import jwt
from simple_salesforce.login import SalesforceLogin, token_login

from connectors.base import SalesforceSettings
from connectors.errors import AuthError
from connectors.salesforce.transport import SalesforceTransport

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ASSERTION_SECONDS = 180
# SOAP login() is not offered in API 65.0 and later (reference §5), whatever api_version is.
SOAP_LOGIN_VERSION = "64.0"


def audience(login_url: str) -> str:
    """The login host as the JWT's `aud`: https://login.salesforce.com, test, or My Domain."""
    parts = urlsplit(login_url)
    return f"{parts.scheme or 'https'}://{parts.netloc.lower()}"


def token_url(login_url: str) -> str:
    return login_url.rstrip("/") + "/services/oauth2/token"


def key_file_text(path: str | None) -> str | None:
    """The file's text if it can be read (to keep it out of messages), else None."""
    try:
        return Path(path).read_text(encoding="utf-8").strip() if path else None
    except (OSError, UnicodeDecodeError):
        return None


def private_key_text(s: SalesforceSettings) -> str:
    """The PEM text of the jwt key; errors name the file, never its content."""
    if s.auth.private_key:
        return s.auth.private_key
    path = Path(s.auth.private_key_file or "")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not a text file"
        error = AuthError(f"cannot read private_key_file {path}: {reason}",
                          connection=s.name, endpoint="login")
        error.fix = ("point auth.private_key_file at the PEM private key whose certificate "
                     "the app holds (readable by the service user)")
        raise error from None


def assertion(s: SalesforceSettings, now: float | None = None) -> str:
    """A signed JWT bearer assertion for `s` (exp ASSERTION_SECONDS ahead of `now`)."""
    issued = int(time.time() if now is None else now)
    claims = {"iss": s.auth.client_id, "sub": s.auth.username or "", "aud": audience(s.login_url),
              "exp": issued + ASSERTION_SECONDS}
    key = private_key_text(s)
    try:
        return jwt.encode(claims, key, algorithm="RS256")
    except (ValueError, TypeError, jwt.PyJWTError):
        where = f"private_key_file {s.auth.private_key_file}" if s.auth.private_key_file else \
            "private_key"
        error = AuthError(f"{where} is not a PEM RSA private key", connection=s.name,
                          endpoint="login")
        error.fix = ("give the unencrypted PEM key made with `openssl req -x509 -newkey rsa:2048 "
                     "-nodes` (docs/crm-setup.md, \"JWT bearer\")")
        raise error from None


def login(s: SalesforceSettings, transport: SalesforceTransport,
          clock: Callable[[], datetime] | None = None) -> tuple[str, str]:
    """(session id, instance host[:port]) for the configured flow; raises what simple-salesforce
    raises (SalesforceAuthenticationFailed, requests errors) or AuthError for a bad key. `clock`
    (the worker's, simulated in demos) times the jwt assertion, like every deadline."""
    flow = s.login_flow
    if flow == "jwt":
        now = clock().timestamp() if clock is not None else None
        return _token(s, {"grant_type": JWT_GRANT, "assertion": assertion(s, now)}, None,
                      transport)
    if flow == "client_credentials":
        basic = base64.b64encode(f"{s.auth.client_id}:{s.auth.client_secret}".encode()).decode()
        return _token(s, {"grant_type": "client_credentials"},
                      {"Authorization": f"Basic {basic}"}, transport)
    if flow == "password":
        # The OAuth password flow takes the security token appended to the password
        # (reference §5); SalesforceLogin picks SOAP whenever security_token is set.
        result: tuple[str, str] = SalesforceLogin(
            username=s.auth.username or "",
            password=(s.auth.password or "") + (s.auth.security_token or ""),
            consumer_key=s.auth.client_id, consumer_secret=s.auth.client_secret, domain="login",
            session=transport)
        return result
    result = SalesforceLogin(username=s.auth.username or "", password=s.auth.password or "",
                             security_token=s.auth.security_token,
                             sf_version=SOAP_LOGIN_VERSION,
                             domain="login", session=transport)
    return result


def _token(s: SalesforceSettings, form: dict[str, str], headers: dict[str, str] | None,
           transport: SalesforceTransport) -> tuple[str, str]:
    with warnings.catch_warnings():
        # token_login warns with an authorize URL on "user hasn't approved this consumer";
        # login_error gives the fix for a server-to-server flow instead.
        warnings.simplefilter("ignore")
        session_id, instance = token_login(token_url(s.login_url), form, "login",
                                           s.auth.client_id or "", headers, None, transport)
    return str(session_id), str(instance)
