"""The CRM port: what the worker may ask of any CRM, and the settings an adapter is built from.

The worker sees only this module, `connectors.models` and `connectors.errors`; which CRM is
behind a `Connector` is the adapter's business. Adapters: `connectors.salesforce`,
`connectors.hubspot`; a fake for tests: `connectors.memory.InMemoryConnector`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from connectors.models import Contact, Deal, Owner, TaskDraft, TaskRef, WriteResult


@dataclass(frozen=True)
class FieldNames:
    """CRM field names for what the rules read (None: the CRM has no such field)."""

    loss_reason: str | None = None
    competitor: str | None = None
    contract_end: str | None = None
    custom: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SalesforceSettings:
    name: str
    username: str = ""
    password: str = ""
    security_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    flow: str | None = None  # jwt | client_credentials | password | soap; None: inferred
    private_key_file: str | None = None  # jwt: PEM file, or
    private_key: str | None = None  # jwt: the PEM text
    # The worker's clock (simulated in demos): times the jwt assertion, like every deadline.
    clock: Callable[[], datetime] | None = field(default=None, compare=False)
    login_url: str = "https://login.salesforce.com"
    instance_url: str | None = None
    api_version: str = "68.0"
    task_key_field: str | None = None
    fields: FieldNames = field(default_factory=FieldNames)
    ca_bundle: str | None = None
    timeout: float = 30.0
    api_budget_share: float = 0.5
    retry_budget: float = 20.0  # seconds one call may spend retrying

    def __repr__(self) -> str:  # never show credentials
        return f"SalesforceSettings(name={self.name!r}, login_url={self.login_url!r})"

    @property
    def login_flow(self) -> str:
        """`flow`, or the one the credentials imply (as before flows were named)."""
        from connectors.salesforce_flows import infer_flow

        return self.flow or infer_flow({"password": self.password or None,
                                        "client_id": self.client_id,
                                        "client_secret": self.client_secret,
                                        "private_key": self.private_key,
                                        "private_key_file": self.private_key_file})


@dataclass(frozen=True)
class HubSpotSettings:
    name: str
    access_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None
    base_url: str = "https://api.hubapi.com"
    key_property: str = "winback_key"
    create_key_property: bool = True
    fields: FieldNames = field(default_factory=FieldNames)
    ca_bundle: str | None = None
    timeout: float = 30.0
    api_budget_share: float = 0.5
    retry_budget: float = 20.0
    burst_limit: int = 100  # requests per 10 s the portal allows this app (HubSpot's default)
    search_per_second: int = 5

    def __repr__(self) -> str:
        return f"HubSpotSettings(name={self.name!r}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class DealPage:
    """One page of changed deals, oldest change first.

    `watermark` is the modification stamp it is safe to resume from once this page is stored
    (the newest stamp in the page), or None when the page must not move the watermark."""

    deals: list[Deal]
    watermark: datetime | None


@dataclass(frozen=True)
class SetupCheck:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    warn: bool = False  # passes, but needs attention (a legacy login, ...)


@dataclass(frozen=True)
class SetupReport:
    checks: list[SetupCheck]
    key_mode: Literal["upsert", "marker", "create+search"] = "upsert"

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


@dataclass(frozen=True)
class ApiUsage:
    used: int
    limit: int

    @property
    def share(self) -> float:
        return self.used / self.limit if self.limit else 0.0


@dataclass(frozen=True)
class CallRecord:
    """One HTTP call a connector made: what the metrics and the `crm.call` log event read."""

    connection: str
    crm: str
    endpoint: str
    status: int | None
    ms: float
    items: int = 0
    error: str | None = None


CallObserver = Callable[[CallRecord], None]

# A call refused for an expired session or token gets a fresh one and is sent again, at most
# this many times: a credential revoked just after it was issued (an admin, another process
# refreshing the same grant) is survived, while a login the CRM keeps refusing stops the
# connection with AuthError instead of looping.
MAX_REAUTH = 2


@runtime_checkable
class Connector(Protocol):
    """One connected CRM account."""

    name: str
    kind: str

    @property
    def write_batch(self) -> int:
        """The most tasks one `write_tasks` / `close_tasks` call to the CRM carries: the
        worker reads and sends due tasks in batches of this size."""

    @property
    def calls_made(self) -> int:
        """HTTP calls made so far (retries, logins and token refreshes included)."""

    def login_checks(self) -> Iterator[SetupCheck]:
        """Checks about the login itself that `ensure_setup` leaves out (doctor runs them
        first), one at a time so that each is reported before the next may raise. Salesforce:
        the login flow (a legacy one warns), then the API version the org offers (one call,
        logging in; a refused login raises FatalConnectionError). Others: none."""

    def begin_run(self, run_id: str | None) -> None:
        """Tag the calls that follow with a run id (sent as `X-Winback-Run`)."""

    def ensure_setup(self, *, create: bool = True) -> SetupReport:
        """Check (and where allowed create) what winback needs in the CRM."""

    def changed_deals(self, since: datetime) -> Iterator[DealPage]:
        """Every deal (any stage, deleted ones flagged) modified at or after `since`, in pages,
        oldest change first, with owner, account and the configured fields filled in."""

    def deals_by_id(self, ids: Sequence[str]) -> list[Deal]:
        """The current state of these deals; a deleted deal comes back with `deleted=True`."""

    def stakeholders(self, deal_ids: Sequence[str]) -> dict[str, list[Contact]]:
        """Contacts per deal (opt-out flags set); every id asked for is a key."""

    def owners(self) -> list[Owner]:
        """Every owner, active and inactive."""

    def write_tasks(self, drafts: Sequence[TaskDraft]) -> list[WriteResult]:
        """Write tasks idempotently by key, in the largest batches the CRM allows; one result
        per draft, matched by key. A bad record fails alone."""

    def find_tasks(self, keys: Sequence[str]) -> dict[str, TaskRef]:
        """Tasks already in the CRM for these keys."""

    def close_tasks(self, crm_ids: Sequence[str]) -> list[WriteResult]:
        """Mark tasks completed; results keyed by CRM id."""

    def api_usage(self) -> ApiUsage | None:
        """The daily API budget as last seen, if the CRM reports it."""

    def close(self) -> None:
        """Release connections."""
