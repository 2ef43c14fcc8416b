"""The identity service: `GET /id/{orgId}/{userId}` (Salesforce Help, "Identity URLs").

OAuth token answers carry `id`, the identity URL; jsforce's `identity()` and others follow it
with the access token. Salesforce serves it at the login host (login.salesforce.com in its
example); the emulator serves it itself, at the host the token was asked from, so a client
following it never leaves the emulator.

The access token comes in the `Authorization` header (Bearer / OAuth) or as the `oauth_token`
parameter, as documented. The API URLs in `urls` hold the literal `{version}` unless a
`version` parameter names one (`latest`: the newest). A missing, expired or revoked token is
answered 403 `Bad_OAuth_Token`, the answer jsforce's users report from Salesforce. Only JSON is
served (the `format` parameter's xml is not).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox.messages import Request, Response
from sandbox.salesforce.describe import API_VERSIONS
from sandbox.salesforce.errors import error_response
from sandbox.salesforce.paths import render

if TYPE_CHECKING:
    from sandbox.salesforce.emulator import SalesforceEmulator


def login_base(emu: SalesforceEmulator, request: Request) -> str:
    """The emulator's own base URL as the client reached it (the identity URL's host)."""
    host = request.header("Host")
    return f"https://{host}" if host else emu.base_url(request)


def identity_url(base: str, org_id: str, user_id: str) -> str:
    return f"{base}/id/{org_id}/{user_id}"


def _utc_offset_ms(zone: str, now: datetime) -> int:
    try:
        offset = now.astimezone(ZoneInfo(zone)).utcoffset()
    except (ZoneInfoNotFoundError, ValueError):
        return 0
    return int(offset.total_seconds() * 1000) if offset is not None else 0


def _urls(instance: str, org15: str, user_id: str, version: str) -> dict[str, str]:
    rest = f"{instance}/services/data/v{version}"
    return {
        "enterprise": f"{instance}/services/Soap/c/{version}/{org15}",
        "metadata": f"{instance}/services/Soap/m/{version}/{org15}",
        "partner": f"{instance}/services/Soap/u/{version}/{org15}",
        "rest": f"{rest}/", "sobjects": f"{rest}/sobjects/", "search": f"{rest}/search/",
        "query": f"{rest}/query/", "recent": f"{rest}/recent/",
        "tooling_soap": f"{instance}/services/Soap/T/{version}/{org15}",
        "tooling_rest": f"{rest}/tooling/", "profile": f"{instance}/{user_id}",
        "feeds": f"{rest}/chatter/feeds", "groups": f"{rest}/chatter/groups",
        "users": f"{rest}/chatter/users", "feed_items": f"{rest}/chatter/feed-items",
        "feed_elements": f"{rest}/chatter/feed-elements", "custom_domain": instance,
    }


def identity(emu: SalesforceEmulator, request: Request) -> Response:
    org_id, user_id = request.path_params["org"], request.path_params["user"]
    token = request.param("oauth_token")
    authorization = f"Bearer {token}" if token else request.header("Authorization")
    now = emu.now()
    with emu.lock:
        session = emu.auth.authenticate(authorization, now, emu.user_active)
        if session is None:
            return Response.text(403, "Bad_OAuth_Token")
        users = emu.store["User"]
        row = users.rows.get(user_id) if org_id in (emu.org_id, emu.org_id[:15]) else None
        if row is None:
            return error_response(404, "NOT_FOUND", "The requested resource does not exist")

        def value(name: str) -> Any:
            return row[users.slot(name)]

        wanted = request.param("version")
        version = API_VERSIONS[-1] if wanted == "latest" else (wanted or "{version}")
        instance = emu.base_url(request)
        zone = str(value("TimeZoneSidKey") or "America/Los_Angeles")
        username = str(value("Username"))
        body = {
            "id": identity_url(login_base(emu, request), emu.org_id, user_id),
            "asserted_user": session.user_id == user_id,
            "user_id": user_id, "organization_id": emu.org_id, "username": username,
            "nick_name": value("Alias") or username.partition("@")[0],
            "display_name": value("Name"), "email": value("Email"), "email_verified": True,
            "first_name": value("FirstName"), "last_name": value("LastName"),
            "timezone": zone,
            "photos": {"picture": f"{instance}/profilephoto/005/F",
                       "thumbnail": f"{instance}/profilephoto/005/T"},
            "addr_street": None, "addr_city": None, "addr_state": None,
            "addr_country": value("CountryCode"), "addr_zip": None,
            "mobile_phone": None, "mobile_phone_verified": False,
            "is_lightning_login_user": False,
            "status": {"created_date": None, "body": None},
            "urls": _urls(instance, emu.org_id[:15], user_id, version),
            "active": bool(value("IsActive")), "user_type": "STANDARD",
            "language": "en_US", "locale": "en_US", "utcOffset": _utc_offset_ms(zone, now),
            "last_modified_date": render(value("LastModifiedDate")),
            "is_app_installed": True,
        }
    return Response.json(200, body)
