"""Salesforce login flows: which keys each needs, inference for configs written before `flow`,
and the facts behind the legacy-flow warnings (reference §5, checked 2026-12-01).

Pure functions over plain values (no CRM client imported), so the config model, `validate`,
the connector and `doctor` all say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

Flow = Literal["jwt", "client_credentials", "password", "soap"]
FLOWS: tuple[Flow, ...] = ("jwt", "client_credentials", "password", "soap")
LEGACY_FLOWS = frozenset({"password", "soap"})
# The shared login hosts; client credentials is refused there ("request not supported on
# this domain"): it needs the org's My Domain host.
SHARED_LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
CREDENTIAL_KEYS = ("username", "password", "security_token", "client_id", "client_secret",
                   "private_key_file", "private_key")

_REQUIRED: dict[str, tuple[str, ...]] = {
    "jwt": ("username", "client_id"),
    "client_credentials": ("client_id", "client_secret"),
    "password": ("username", "password", "client_id", "client_secret"),
    "soap": ("username", "password"),
}
_UNUSED: dict[str, tuple[str, ...]] = {
    "jwt": ("password", "security_token", "client_secret"),
    "client_credentials": ("password", "security_token", "private_key_file", "private_key"),
    "password": ("private_key_file", "private_key"),
    "soap": ("client_id", "client_secret", "private_key_file", "private_key"),
}
DESCRIPTIONS: dict[str, str] = {
    "jwt": "OAuth 2.0 JWT bearer (certificate-signed assertion)",
    "client_credentials": "OAuth 2.0 client credentials (the app's run-as user)",
    "password": "OAuth 2.0 username-password (legacy)",
    "soap": "SOAP login() with username, password and security token (legacy)",
}
RETIREMENT: dict[str, str] = {
    "soap": "SOAP login() is disabled by default in orgs created in Winter '26 and later, is "
            "not available in API 65.0 and later, and is retired in Summer '27",
    "password": "the OAuth username-password flow is blocked by default in orgs created since "
                "Summer '23, and Salesforce recommends against it",
}
MOVE_TO_JWT = ("move to `flow: jwt`: create a certificate and an app with the `api` scope, "
               "pre-authorise the integration user, then set auth.flow: jwt, client_id and "
               "private_key_file (docs/crm-setup.md, \"JWT bearer\")")


def infer_flow(values: Mapping[str, Any]) -> Flow:
    """The flow of an `auth` written without `flow`: what winback did with those keys before
    flows were named (password / soap), or the flow the keys can only mean."""
    given = {k for k in CREDENTIAL_KEYS if values.get(k) is not None}
    if given & {"private_key_file", "private_key"}:
        return "jwt"
    if "password" not in given and {"client_id", "client_secret"} <= given:
        return "client_credentials"
    if given & {"client_id", "client_secret"}:
        return "password"
    return "soap"


def problems(flow: str, values: Mapping[str, Any]) -> list[str]:
    """What is wrong with `values` for `flow`, each with its fix. A key is given when it is
    in the file, even if its ${VAR} is empty (validate without the environment)."""
    found: list[str] = []
    missing = [k for k in _REQUIRED[flow] if values.get(k) is None]
    if missing:
        keys = ", ".join(repr(k) for k in missing)
        found.append(f"missing required key{'s' if len(missing) > 1 else ''} {keys} (flow "
                     f"{flow} needs {', '.join(_REQUIRED[flow])})")
    if flow == "jwt":
        given = [k for k in ("private_key_file", "private_key") if values.get(k) is not None]
        if len(given) != 1:
            found.append("flow jwt needs exactly one of private_key_file (a PEM file) or "
                         "private_key (the PEM text)" + (", not both" if given else ""))
    unused = [k for k in _UNUSED[flow] if values.get(k)]
    if unused:
        found.append(f"{', '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used by "
                     f"flow {flow}: remove {'it' if len(unused) == 1 else 'them'}")
    return found


def is_shared_login_host(url: str) -> bool:
    return (urlsplit(url).hostname or "").lower() in SHARED_LOGIN_HOSTS


def legacy_notice(flow: str, *, inferred: bool) -> str | None:
    """The warning for a legacy flow (None for jwt / client_credentials)."""
    if flow not in LEGACY_FLOWS:
        return None
    how = f"auth has no flow, so {flow} is inferred" if inferred else f"auth.flow is {flow}"
    return f"{how}, a legacy login: {RETIREMENT[flow]}; {MOVE_TO_JWT}"

