"""HubSpot's error bodies (reference §5) and helpers that abort a handler with one."""

from __future__ import annotations

import json
import uuid
from typing import Any, NoReturn

from sandbox.messages import HttpError, Request, Response


def correlation_id() -> str:
    return str(uuid.uuid4())


def error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    """`{"status":"error","message":…,"correlationId":…,"category":…}` plus optional fields."""
    body: dict[str, Any] = {"status": "error", "message": message,
                            "correlationId": correlation_id(), "category": category}
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def error(status: int, category: str, message: str, **extra: Any) -> Response:
    return Response.json(status, error_body(category, message, **extra))


def fail(status: int, category: str, message: str, **extra: Any) -> NoReturn:
    raise HttpError(error(status, category, message, **extra))


def invalid(message: str, **extra: Any) -> NoReturn:
    """400 VALIDATION_ERROR."""
    fail(400, "VALIDATION_ERROR", message, **extra)


def not_found(message: str) -> NoReturn:
    fail(404, "OBJECT_NOT_FOUND", message)


class PropertyProblems(Exception):
    """Collected per-property validation failures (HubSpot reports them all in one message)."""

    def __init__(self, problems: list[dict[str, Any]]) -> None:
        super().__init__(problems[0]["message"] if problems else "invalid")
        self.problems = problems

    def response(self) -> Response:
        return error(400, "VALIDATION_ERROR", property_message(self.problems))


def problem(name: str, code: str, message: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": code, "name": name,
            "localizedErrorMessage": message}


def property_message(problems: list[dict[str, Any]]) -> str:
    return "Property values were not valid: " + json.dumps(problems, separators=(",", ":"))


def rate_limit_body(policy: str, group_name: str) -> dict[str, Any]:
    """The 429 body: no `category`, but `errorType` and `policyName` (reference §5)."""
    return {"status": "error", "message": f"You have reached your {policy.lower()} limit.",
            "errorType": "RATE_LIMIT", "correlationId": correlation_id(),
            "policyName": policy, "groupName": group_name}


def json_body(request: Request) -> Any:
    """The request's JSON body; 400 in HubSpot's shape when it is not JSON."""
    if not request.body:
        return None
    try:
        return json.loads(request.body)
    except ValueError:
        invalid("Invalid input JSON on line 1, column 1: Cannot build the request body from "
                "invalid JSON")


def json_object(request: Request) -> dict[str, Any]:
    data = json_body(request)
    if data is None:
        return {}
    if not isinstance(data, dict):
        invalid("Invalid input JSON: expected an object")
    return data


def inputs_of(body: dict[str, Any], *, maximum: int = 100) -> list[dict[str, Any]]:
    """The `inputs` list of a batch body, with the batch size cap (400 beyond it)."""
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        invalid("Invalid input JSON: 'inputs' must be a list of objects")
    if len(inputs) > maximum:
        invalid(f"Too many inputs: {len(inputs)} > {maximum}. The maximum number of inputs "
                f"for this batch operation is {maximum}.",
                context={"maxInputs": [str(maximum)], "inputs": [str(len(inputs))]})
    return inputs
