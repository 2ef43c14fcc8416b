"""Salesforce error bodies.

REST errors are a JSON array `[{"message", "errorCode", "fields"?}]`; per-record errors inside
sObject Collections results use the key `statusCode` instead (reference §3.4, §4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandbox.messages import Response

NOT_FOUND_MESSAGE = "The requested resource does not exist"


@dataclass(frozen=True)
class ApiError:
    code: str
    message: str
    fields: tuple[str, ...] = ()

    def rest(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields:
            body["fields"] = list(self.fields)
        return body

    def item(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields)}


@dataclass
class SFError(Exception):
    """Raised anywhere below a route to answer with a Salesforce error list."""

    status: int
    errors: list[ApiError] = field(default_factory=list)

    @classmethod
    def one(cls, status: int, code: str, message: str, fields: tuple[str, ...] = ()) -> SFError:
        return cls(status, [ApiError(code, message, fields)])

    def __str__(self) -> str:
        return "; ".join(f"{e.code}: {e.message}" for e in self.errors)

    def response(self) -> Response:
        return Response.json(self.status, [e.rest() for e in self.errors])


def error_response(status: int, code: str, message: str) -> Response:
    return Response.json(status, [{"message": message, "errorCode": code}])


def not_found() -> SFError:
    return SFError.one(404, "NOT_FOUND", NOT_FOUND_MESSAGE)


def invalid_session() -> Response:
    response = error_response(401, "INVALID_SESSION_ID", "Session expired or invalid")
    response.headers["WWW-Authenticate"] = 'Token'
    return response


def json_parser_error(detail: str) -> SFError:
    return SFError.one(400, "JSON_PARSER_ERROR", detail)
