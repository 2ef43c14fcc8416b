"""HubSpot JSON <-> port records. Every property value arrives as a string or null
(reference §1.2); datetimes are ISO 8601 UTC, date-only properties `YYYY-MM-DD` or midnight
epoch ms; search filters and `hs_task_reminders` want epoch milliseconds (§1.3, §3)."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from connectors.base import FieldMap
from connectors.models import Channel, Contact, Deal, Owner, Priority, TaskDraft

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = re.compile(r"-?\d{1,15}")
_ID = re.compile(r"\d{1,20}")

# HubSpot-defined association type ids (reference §2), task -> deal / contact / company
TASK_TO_DEAL, TASK_TO_CONTACT, TASK_TO_COMPANY = 216, 204, 192
DEAL_TO_COMPANY_PRIMARY = 5

PRIORITY = {Priority.HIGH: "HIGH", Priority.NORMAL: "MEDIUM", Priority.LOW: "LOW"}
TASK_TYPE = {Channel.EMAIL: "EMAIL", Channel.CALL: "CALL", Channel.TODO: "TODO"}
BASE_DEAL_PROPERTIES = ("dealname", "dealstage", "pipeline", "closedate", "amount",
                        "deal_currency_code", "createdate", "hs_lastmodifieddate",
                        "hubspot_owner_id")
CONTACT_PROPERTIES = ("firstname", "lastname", "email", "hs_email_optout")


# -- values ----------------------------------------------------------------------------------
def epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("a datetime sent to HubSpot needs a time zone")
    return (moment - EPOCH) // timedelta(milliseconds=1)


def iso_z(moment: datetime) -> str:
    """`2024-05-16T09:00:00.000Z`."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_datetime(value: str | None) -> datetime | None:
    if not value:
        return None
    text = value.strip()
    if _MS.fullmatch(text):
        return EPOCH + timedelta(milliseconds=int(text))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def parse_date(value: str | None) -> date | None:
    """A date-only property: `YYYY-MM-DD`, or midnight UTC as epoch ms / ISO (reference §8)."""
    if not value:
        return None
    text = value.strip()
    if len(text) == 10:
        try:
            return date.fromisoformat(text)
        except ValueError:
            return None
    moment = parse_datetime(text)
    return moment.astimezone(UTC).date() if moment else None


def parse_float(value: str | None) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        return float(value)
    except ValueError:
        return None


def is_record_id(value: object) -> bool:
    """HubSpot record ids are decimal numbers (sent as strings)."""
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def valid_key(key: object) -> bool:
    """A task key is a printable string HubSpot can store and filter on (≤ 255 chars)."""
    return isinstance(key, str) and 0 < len(key) <= 255 and key.isprintable() \
        and key.strip() == key


# -- pipelines and owners ----------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    id: str
    label: str
    pipeline_id: str
    pipeline_label: str
    is_won: bool
    is_lost: bool
    archived: bool = False

    @property
    def is_closed(self) -> bool:
        # A closed stage whose probability is neither 0 nor 1 is neither won nor lost by
        # HubSpot's own numbers; the port's Deal.is_lost is "closed and not won", so such a
        # stage is reported as open.
        return self.is_won or self.is_lost


def stages_from(pipelines: Any) -> dict[str, Stage]:
    """Closed-lost <=> metadata isClosed == "true" and probability 0.0; won: probability 1.0
    (reference §1.1: metadata is a string->string map; never a hard-coded `closedlost`)."""
    found: dict[str, Stage] = {}
    for pipeline in pipelines or []:
        for stage in pipeline.stages or []:
            meta: Mapping[str, Any] = stage.metadata or {}
            closed = str(meta.get("isClosed", "")).strip().lower() == "true"
            probability = parse_float(str(meta.get("probability") or ""))
            found[str(stage.id)] = Stage(
                id=str(stage.id), label=str(stage.label), pipeline_id=str(pipeline.id),
                pipeline_label=str(pipeline.label), is_won=closed and probability == 1.0,
                is_lost=closed and probability == 0.0,
                archived=bool(stage.archived or pipeline.archived))
    return found


def owner_from(raw: Any) -> Owner:
    """Archived owners are deactivated users (reference §4); HubSpot has no owner time zone."""
    name = " ".join(p for p in (raw.first_name, raw.last_name) if p) or None
    return Owner(id=str(raw.id), email=raw.email or None, name=name, timezone=None,
                 active=not bool(raw.archived))


# -- deals and contacts ------------------------------------------------------------------------
def deal_properties(fields: FieldMap) -> list[str]:
    extra = [f for f in (fields.loss_reason, fields.competitor, fields.contract_end,
                         fields.opt_out, fields.pause_until) if f]
    wanted = [*BASE_DEAL_PROPERTIES, *extra, *fields.custom.values()]
    return list(dict.fromkeys(wanted))


def deal_from(raw_id: str, props: Mapping[str, str | None], *, stages: Mapping[str, Stage],
              fields: FieldMap, owner: Owner | None,
              account: tuple[str, str | None] | None) -> Deal:
    stage = stages.get(props.get("dealstage") or "")

    def field(name: str | None) -> str | None:
        return props.get(name) if name else None

    custom = {key: props.get(name) for key, name in fields.custom.items()
              if props.get(name) is not None}
    return Deal(
        id=raw_id,
        name=props.get("dealname") or "",
        account_id=account[0] if account else None,
        account_name=account[1] if account else None,
        stage=stage.label if stage else props.get("dealstage"),
        pipeline=stage.pipeline_label if stage else props.get("pipeline"),
        closed_at=parse_datetime(props.get("closedate")),
        amount=parse_float(props.get("amount")),
        currency=props.get("deal_currency_code") or None,
        loss_reason=field(fields.loss_reason),
        competitor=field(fields.competitor),
        contract_end=parse_date(field(fields.contract_end)),
        owner=owner,
        custom=custom,
        is_closed=stage.is_closed if stage else False,
        is_won=stage.is_won if stage else False,
        created_at=parse_datetime(props.get("createdate")),
        modified_at=parse_datetime(props.get("hs_lastmodifieddate")),
        opted_out=(field(fields.opt_out) or "").strip().lower() == "true",
        paused_until=parse_date(field(fields.pause_until)),
    )


def contact_from(raw_id: str, props: Mapping[str, str | None], role: str | None) -> Contact:
    name = " ".join(p for p in (props.get("firstname"), props.get("lastname")) if p) or None
    return Contact(id=raw_id, name=name, email=props.get("email") or None, role=role,
                   opted_out=(props.get("hs_email_optout") or "").lower() == "true")


# -- tasks -------------------------------------------------------------------------------------
def task_properties(draft: TaskDraft, key_property: str) -> dict[str, str]:
    """The task shows at the reminder moment (`hs_timestamp`, the due date, in the rep's own
    time zone); `hs_task_reminders` takes epoch ms only (reference §3, §8). The notes field
    holds HTML, so the plain-text body is escaped and its line breaks kept."""
    return {
        "hs_timestamp": iso_z(draft.remind_at),
        "hs_task_subject": draft.subject,
        "hs_task_body": html.escape(draft.body, quote=False).replace("\n", "<br>"),
        "hs_task_status": "NOT_STARTED",
        "hs_task_priority": PRIORITY[Priority(draft.priority)],
        "hs_task_type": TASK_TYPE[Channel(draft.channel)],
        "hubspot_owner_id": draft.owner_id,
        "hs_task_reminders": str(epoch_ms(draft.remind_at)),
        key_property: draft.key,
    }


def task_associations(draft: TaskDraft) -> list[dict[str, Any]]:
    targets = [(draft.deal_id, TASK_TO_DEAL), (draft.contact_id, TASK_TO_CONTACT),
               (draft.account_id, TASK_TO_COMPANY)]
    return [{"to": {"id": to_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                              "associationTypeId": type_id}]}
            for to_id, type_id in targets if to_id]


def draft_targets(draft: TaskDraft) -> set[str]:
    return {t for t in (draft.deal_id, draft.contact_id, draft.account_id) if t}
