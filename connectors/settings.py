"""Each adapter's settings, defined once: the configuration model composes them (a
connection in the config file *is* an adapter's settings plus the worker's own keys), and the
adapters are built from them as they are. The field descriptions are the user documentation
(`winback schema`, docs/configuration.md).

What is not configuration (the worker's clock, one call's retry budget, the call observer) is
passed to the adapter's constructor, not kept here.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from connectors.salesforce_flows import Flow, infer_flow, is_shared_login_host, problems

IDENT = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
API_VERSION = "68.0"  # Winter '27, the newest generally available release (2026-12-01)
INTERVAL_PATTERN = r"^[0-9]+(\.[0-9]+)?(s|m|h|d)$"
_INTERVAL = re.compile(r"^(\d+(\.\d+)?)(s|m|h|d)$")
_INTERVAL_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    """Seconds in a clock interval such as `30s`, `5m`, `1h`, `1d`."""
    match = _INTERVAL.match(text.strip())
    if not match:
        raise ValueError(
            f"{text!r} is not an interval (expected a number and s, m, h or d, e.g. 30s, 5m, 1h)"
        )
    return float(match.group(1)) * _INTERVAL_SECONDS[match.group(3)]


def _parse_interval(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        return parse_interval(value)
    raise ValueError("expected an interval such as 30s, 5m or 1h")


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value


IntervalField = Annotated[
    float,
    BeforeValidator(_parse_interval),
    WithJsonSchema({"type": "string", "pattern": INTERVAL_PATTERN,
                    "description": "s, m, h or d; e.g. 30s, 5m, 1h"}),
]
OptionalText = Annotated[str | None, BeforeValidator(_blank_is_none)]
Ident = Annotated[str, Field(pattern=IDENT)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FieldMap(Model):
    """Which CRM fields hold what the rules read. Leave a field out if your CRM lacks it."""

    loss_reason: str | None = Field(None, description="e.g. Loss_Reason__c / closed_lost_reason")
    competitor: str | None = Field(None, description="e.g. Competitor__c / competitor")
    contract_end: str | None = Field(None, description="Date the competitor's contract ends")
    opt_out: str | None = Field(None, description="A checkbox on the deal (e.g. "
                                "Winback_Opt_Out__c / winback_opt_out): when ticked, the deal's "
                                "cadence stops and nothing more is written for it")
    pause_until: str | None = Field(None, description="A date on the deal (e.g. "
                                    "Winback_Pause_Until__c / winback_pause_until): nothing is "
                                    "written for the deal before that day")
    custom: dict[str, str] = Field(default_factory=dict,
                                   description="More deal fields, read into deal.custom.<name>")


class SalesforceAuth(Model):
    """How winback logs in: `flow` jwt (recommended), client_credentials, or the legacy
    password / soap flows. Without `flow` it is inferred from the keys, as before flows had
    names."""

    flow: Flow | None = Field(None, description="jwt | client_credentials | password (legacy) "
                              "| soap (legacy); inferred from the keys when left out")
    username: str | None = Field(None, description="The integration user's login (jwt: the "
                                 "token's sub; not used by client_credentials)")
    password: str | None = Field(None, description="${VAR}: the password (password, soap)")
    security_token: str | None = Field(None, description="${VAR}: the user's security token")
    client_id: str | None = Field(None, description="The app's consumer key (jwt: the iss)")
    client_secret: str | None = Field(None, description="${VAR}: its consumer secret")
    private_key_file: str | None = Field(None, description="jwt: PEM file of the key whose "
                                         "certificate the app holds")
    private_key: str | None = Field(None, description="${VAR}: jwt: the PEM text instead")

    def __repr__(self) -> str:  # never show credentials
        return f"SalesforceAuth(flow={self.effective_flow!r}, username={self.username!r})"

    @property
    def effective_flow(self) -> Flow:
        return self.flow or infer_flow(self.model_dump())

    @model_validator(mode="after")
    def _flow(self) -> SalesforceAuth:
        found = problems(self.effective_flow, self.model_dump())
        if found:
            raise ValueError("; ".join(found))
        return self


class HubSpotAuth(Model):
    """A private-app token (access_token), or OAuth: client_id, client_secret, refresh_token."""

    access_token: str | None = Field(None, description="${VAR}: a private-app token")
    client_id: str | None = Field(None, description="OAuth app client id")
    client_secret: str | None = Field(None, description="${VAR}: OAuth app client secret")
    refresh_token: str | None = Field(None, description="${VAR}: OAuth refresh token")

    def __repr__(self) -> str:  # never show credentials
        return f"HubSpotAuth(oauth={self.access_token is None})"

    @model_validator(mode="after")
    def _mode(self) -> HubSpotAuth:
        oauth = (self.client_id, self.client_secret, self.refresh_token)
        if self.access_token is None and None in oauth:
            raise ValueError("give access_token (private app) or client_id, client_secret and "
                             "refresh_token (OAuth)")
        if self.access_token is not None and any(v is not None for v in oauth):
            raise ValueError("give either access_token or the OAuth trio, not both")
        return self


class CrmSettings(Model):
    """What every adapter reads: the connection's name, fields and how to reach the CRM."""

    name: Ident = Field(description="Unique name; part of every task key, so never rename it")
    fields: FieldMap = Field(default_factory=lambda: FieldMap(),
                             description="CRM field names for loss reason, competitor, ...")
    timeout: IntervalField = Field("30s", validate_default=True,
                                   description="Timeout of one CRM call")
    api_budget_share: float = Field(0.5, gt=0, le=1,
                                    description="Stop before using more of the daily API budget")
    ca_bundle: OptionalText = Field(None, description="PEM file of a private CA to trust")


class SalesforceSettings(CrmSettings):
    """A Salesforce org, reached through its REST API (simple-salesforce)."""

    auth: SalesforceAuth = Field(description="How winback logs in (secrets from ${VARS})")
    login_url: str = Field("https://login.salesforce.com",
                           description="https://test.salesforce.com for sandboxes, or the "
                                       "org's My Domain (required by client_credentials)")
    instance_url: OptionalText = Field(None, description="Taken from the login when left out")
    api_version: Annotated[str, Field(pattern=r"^[0-9]{2}\.0$")] = Field(
        API_VERSION, description="REST API version (doctor checks the org offers it)")
    task_key_field: OptionalText = Field(
        None, description="External ID field on Task holding the task key (recommended); "
                          "without it a marker in the Subject is used")
    bulk_threshold: Annotated[int, Field(ge=0)] | None = Field(
        2000, description="A pull of more rows than this reads them through a Bulk API 2.0 "
                          "query job (Salesforce's advice: above about 2,000); null: never")
    bulk_poll: IntervalField = Field(
        "2s", validate_default=True,
        description="First wait before reading a Bulk query job's state (then doubling, "
                    "at most 30s)")

    def __repr__(self) -> str:  # never show credentials
        return f"{type(self).__name__}(name={self.name!r}, login_url={self.login_url!r})"

    @property
    def login_flow(self) -> Flow:
        """`auth.flow`, or the one the credentials imply (as before flows were named)."""
        return self.auth.effective_flow

    @model_validator(mode="after")
    def _my_domain(self) -> SalesforceSettings:
        if self.auth.effective_flow == "client_credentials" and \
                is_shared_login_host(self.login_url):
            raise ValueError(f"login_url {self.login_url} refuses client_credentials logins: "
                             "set it to the org's My Domain, e.g. https://acme.my.salesforce.com"
                             " (Setup > My Domain), or use flow: jwt")
        return self


class HubSpotSettings(CrmSettings):
    """A HubSpot portal, reached through its CRM API (hubspot-api-client)."""

    auth: HubSpotAuth = Field(description="A private-app token or OAuth (secrets from ${VARS})")
    base_url: str = Field("https://api.hubapi.com", description="API host (a proxy, the sandbox)")
    key_property: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,99}$")] = Field(
        "winback_key", description="Custom task property holding the task key")
    create_key_property: bool = Field(True, description="Create the key property if missing")
    burst_limit: Annotated[int, Field(ge=10, le=10_000)] = Field(
        100, description="Requests per 10 s your HubSpot tier allows this app (100, 190, 250)")
    search_per_second: Annotated[int, Field(ge=1, le=100)] = Field(
        5, description="Search requests per second (HubSpot: 5)")

    def __repr__(self) -> str:  # never show credentials
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"
