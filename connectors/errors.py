"""Connector errors, grouped by what the caller should do.

    ConnectorError                 anything a connector raises on purpose
    ├── RetryableError             try the same call again later (429, 5xx, timeout, lock)
    ├── FatalConnectionError       stop this connection's tick; a person must act
    │   ├── AuthError              credentials refused or expired beyond refresh
    │   ├── PermissionError_       the integration user may not do this
    │   ├── SetupError             a field/property winback needs is missing in the CRM
    │   └── BudgetExhausted        the daily API budget (or our share of it) is spent
    └── RecordError                one record is bad; skip it, the batch goes on
    Interrupted                    raised by the caller's run guard (Connector.begin_run):
                                   passed through untouched, never translated or retried

Every error carries the connection name and the endpoint, and messages never include
credentials or raw request bodies.
"""

from __future__ import annotations

from datetime import datetime


class Interrupted(Exception):
    """The run guard the caller gave `Connector.begin_run` stopped a call before it was sent
    (the worker's LeaseLost is one). Connectors let it through as it is."""


class ConnectorError(Exception):
    def __init__(self, message: str, *, connection: str = "", endpoint: str = "",
                 status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.connection = connection
        self.endpoint = endpoint
        self.status = status
        self.code = code

    def __str__(self) -> str:
        where = "/".join(x for x in (self.connection, self.endpoint) if x)
        code = f" [{self.code}]" if self.code else ""
        return f"{where}: {self.message}{code}" if where else f"{self.message}{code}"


class RetryableError(ConnectorError):
    """The call may succeed later. `retry_after` is the server's hint in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class FatalConnectionError(ConnectorError):
    """Nothing more can be done on this connection until a person acts (or the budget resets)."""

    fix: str = ""


class AuthError(FatalConnectionError):
    fix = "check the connection's credentials (see docs/crm-setup.md)"


class PermissionDenied(FatalConnectionError):
    fix = "grant the integration user the permission named in the message"


class SetupError(FatalConnectionError):
    fix = "create the missing field or property named in the message (see docs/crm-setup.md)"


class BudgetExhausted(FatalConnectionError):
    """The CRM's daily API budget, or the share of it winback may use, is spent."""

    fix = "wait for the budget to reset, or raise api_budget_share"

    def __init__(self, message: str, *, resume_after: datetime | None = None,
                 **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.resume_after = resume_after


class RecordError(ConnectorError):
    """One record cannot be read or written; the others can."""
