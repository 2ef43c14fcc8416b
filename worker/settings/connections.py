"""A connection's keys in the configuration: the adapter's settings (connectors.settings)
plus the worker's own (fallback owners, per-owner overrides, poll interval, backfill, caps)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from connectors.settings import HubSpotSettings, IntervalField, Model, SalesforceSettings
from worker.settings.durations import NonNegativeDuration
from worker.settings.values import CountryCode, DailyCap, TimeZoneName

if TYPE_CHECKING:
    from worker.settings.models import Defaults


class AwayPeriod(Model):
    """Days an owner is away (both dates included): not working days for that owner."""

    from_: date = Field(alias="from", description="First day away (YYYY-MM-DD)")
    to: date = Field(description="Last day away (YYYY-MM-DD), on or after `from`")

    @model_validator(mode="after")
    def _order(self) -> AwayPeriod:
        if self.to < self.from_:
            raise ValueError(f"from ({self.from_}) is after to ({self.to}): swap them, or fix "
                             "the dates (both days are included)")
        return self


class OwnerOverride(Model):
    """Per-owner facts the CRM lacks (HubSpot owners carry no time zone)."""

    timezone: TimeZoneName | None = Field(None, description="IANA time zone")
    country: CountryCode | None = Field(None, description="Country of the public holidays")
    subdivision: str | None = Field(None, description="State/province of the holidays")
    away: tuple[AwayPeriod, ...] = Field(
        (), description="Periods away ({from, to}, dates included): not working days for "
                        "this owner, like holidays")
    max_tasks_per_day: DailyCap | None = Field(
        None, description="This owner's daily cap of winback tasks (overrides the "
                          "connection's and defaults' max_tasks_per_owner_per_day)")


def _fallback_list(value: Any) -> Any:
    """A blank id is no fallback; a list keeps its non-blank ids, in order (an id listed
    twice is an error of worker.settings.checks)."""
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, (list, tuple)):
        ids: list[Any] = []
        for raw in value:
            item = raw.strip() if isinstance(raw, str) else raw
            if item:
                ids.append(item)
        if not ids:
            return None
        return ids[0] if len(ids) == 1 else tuple(ids)
    return value


FallbackOwners = Annotated[str | tuple[str, ...] | None, BeforeValidator(_fallback_list)]


class WorkerKeys(Model):
    """The worker's own keys of a connection, next to the adapter's settings."""

    fallback_owner: FallbackOwners = Field(
        None, description="Owner id (or a list of ids: a team) for tasks of inactive or unknown "
                          "owners; a team's members share the deals evenly, each deal always "
                          "going to the same member")
    max_tasks_per_owner_per_day: DailyCap | None = Field(
        None, description="This connection's daily cap per owner (overrides "
                          "defaults.max_tasks_per_owner_per_day)")
    owners: dict[str, OwnerOverride] = Field(
        default_factory=dict, description="Time zone / country per owner id")
    poll_every: IntervalField = Field("5m", validate_default=True,
                                      description="How often to sync")
    overlap: IntervalField = Field("10m", validate_default=True,
                                   description="Re-read this far behind the watermark")
    backfill: NonNegativeDuration = Field(
        "365d", validate_default=True,
        description="On first sync, deals closed-lost this far back")
    enabled: bool = Field(True, description="false: configured but not synced")

    @property
    def fallback_owners(self) -> tuple[str, ...]:
        """The fallback owner ids (empty: none)."""
        if self.fallback_owner is None:
            return ()
        if isinstance(self.fallback_owner, str):
            return (self.fallback_owner,)
        return self.fallback_owner

    def daily_cap(self, defaults: Defaults, owner_id: str) -> int | None:
        """The cap of an owner's winback tasks per day: its override, this connection's, or
        defaults' (None: no cap)."""
        override = self.owners.get(owner_id)
        if override is not None and override.max_tasks_per_day is not None:
            return override.max_tasks_per_day
        if self.max_tasks_per_owner_per_day is not None:
            return self.max_tasks_per_owner_per_day
        return defaults.max_tasks_per_owner_per_day


class SalesforceConnection(WorkerKeys, SalesforceSettings):
    """A Salesforce org, reached through its REST API (simple-salesforce)."""

    kind: Literal["salesforce"] = Field(description="Which CRM")


class HubSpotConnection(WorkerKeys, HubSpotSettings):
    """A HubSpot portal, reached through its CRM API (hubspot-api-client)."""

    kind: Literal["hubspot"] = Field(description="Which CRM")


Connection = Annotated[SalesforceConnection | HubSpotConnection, Field(discriminator="kind")]
