"""What a fresh HubSpot portal knows before any data: object types, properties, property
groups, deal pipelines and association types (facts from reference §1-§4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EPOCH = "1970-01-01T00:00:00Z"
PORTAL_BIRTH = "2024-05-01T10:00:00.000Z"


# The engagement objects besides tasks (the calls, meetings, emails and notes guides):
# (name, objectTypeId, singular, properties searched by the free-text query)
ENGAGEMENTS = (("calls", "0-48", "call", ("hs_call_title", "hs_call_body")),
               ("meetings", "0-47", "meeting", ("hs_meeting_title", "hs_meeting_body")),
               ("emails", "0-49", "email", ("hs_email_subject", "hs_email_text")),
               ("notes", "0-46", "note", ("hs_note_body",)))


@dataclass(frozen=True)
class ObjectType:
    name: str  # "deals"
    type_id: str  # "0-3"
    singular: str  # "deal"
    defaults: tuple[str, ...]  # properties returned when none are asked for
    always: tuple[str, ...]  # returned by search whatever was asked
    created_prop: str
    modified_props: tuple[str, ...]
    text_props: tuple[str, ...]  # searched by the free-text `query`


OBJECT_TYPES: dict[str, ObjectType] = {t.name: t for t in (
    ObjectType("contacts", "0-1", "contact",
               ("firstname", "lastname", "email", "createdate", "lastmodifieddate", "hs_object_id"),
               ("createdate", "lastmodifieddate", "hs_object_id"),
               "createdate", ("lastmodifieddate", "hs_lastmodifieddate"),
               ("firstname", "lastname", "email")),
    ObjectType("companies", "0-2", "company",
               ("name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"),
               ("createdate", "hs_lastmodifieddate", "hs_object_id"),
               "createdate", ("hs_lastmodifieddate",), ("name", "domain")),
    ObjectType("deals", "0-3", "deal",
               ("dealname", "amount", "closedate", "pipeline", "dealstage", "createdate",
                "hs_lastmodifieddate", "hs_object_id"),
               ("createdate", "hs_lastmodifieddate", "hs_object_id"),
               "createdate", ("hs_lastmodifieddate",), ("dealname",)),
    ObjectType("tasks", "0-27", "task",
               ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
               ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
               "hs_createdate", ("hs_lastmodifieddate",), ("hs_task_subject", "hs_task_body")),
    *(ObjectType(name, type_id, singular,
                 ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
                 ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
                 "hs_createdate", ("hs_lastmodifieddate",), text)
      for name, type_id, singular, text in ENGAGEMENTS),
)}
_ALIASES = {alias: t.name for t in OBJECT_TYPES.values()
            for alias in (t.name, t.type_id, t.singular)}
TYPE_PATTERN = "|".join(sorted((k for k in _ALIASES if "-" not in k), key=len, reverse=True))


def object_type(name: str) -> ObjectType | None:
    """Accepts `deals`, `deal`, `0-3` (any case)."""
    key = _ALIASES.get(name.lower())
    return OBJECT_TYPES[key] if key else None


def type_regex(t: ObjectType) -> str:
    return f"(?:{t.name}|{t.type_id})"


# -- pipelines -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stage:
    id: str
    label: str
    probability: str
    closed: bool


@dataclass(frozen=True)
class Pipeline:
    id: str
    label: str
    created: str
    stages: tuple[Stage, ...]

    def to_json(self, order: int) -> dict[str, Any]:
        return {"id": self.id, "label": self.label, "displayOrder": order, "archived": False,
                "createdAt": self.created, "updatedAt": PORTAL_BIRTH,
                "stages": [{"id": s.id, "label": s.label, "displayOrder": i,
                            "metadata": {"isClosed": "true" if s.closed else "false",
                                         "probability": s.probability},
                            "archived": False, "createdAt": self.created,
                            "updatedAt": PORTAL_BIRTH,
                            "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}
                           for i, s in enumerate(self.stages)]}


PIPELINES: tuple[Pipeline, ...] = (
    Pipeline("default", "Sales Pipeline", EPOCH, (
        Stage("appointmentscheduled", "Appointment Scheduled", "0.2", False),
        Stage("qualifiedtobuy", "Qualified To Buy", "0.4", False),
        Stage("presentationscheduled", "Presentation Scheduled", "0.6", False),
        Stage("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", False),
        Stage("contractsent", "Contract Sent", "0.9", False),
        Stage("closedwon", "Closed Won", "1.0", True),
        Stage("closedlost", "Closed Lost", "0.0", True),
    )),
    # A custom pipeline: numeric ids, a lost stage not called "Closed Lost", and an open
    # stage with probability 0 (closed-lost needs isClosed AND probability 0).
    Pipeline("1307720549", "Renewals", "2023-02-14T09:30:00.000Z", (
        Stage("1307720550", "Renewal Identified", "0.1", False),
        Stage("1307720551", "Proposal Sent", "0.5", False),
        Stage("1307720554", "On Hold", "0.0", False),
        Stage("1307720552", "Negotiation", "0.8", False),
        Stage("1307720553", "Renewed", "1.0", True),
        Stage("1307720556", "Churned", "0.0", True),
    )),
)
STAGES: dict[str, tuple[Pipeline, Stage]] = {s.id: (p, s) for p in PIPELINES for s in p.stages}


def stage_flags(stage_id: str | None) -> tuple[bool, bool]:
    """(is_closed, is_won) of a stage id; unknown stages count as open."""
    found = STAGES.get(stage_id or "")
    if found is None:
        return False, False
    stage = found[1]
    return stage.closed, stage.closed and stage.probability == "1.0"


# -- properties ------------------------------------------------------------------------------
@dataclass
class PropDef:
    name: str
    label: str
    type: str  # string number date datetime enumeration bool
    field_type: str
    group: str
    options: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    read_only: bool = False
    calculated: bool = False
    hubspot_defined: bool = True
    unique: bool = False
    referenced: str | None = None  # "OWNER" for hubspot_owner_id
    description: str = ""
    created: str = EPOCH
    order: int = -1

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "label": self.label, "type": self.type,
            "fieldType": self.field_type, "description": self.description,
            "groupName": self.group,
            "options": [{"label": label, "value": value, "displayOrder": i, "hidden": False,
                         "description": ""} for i, (value, label) in enumerate(self.options)],
            "displayOrder": self.order, "calculated": self.calculated,
            "externalOptions": self.referenced is not None, "hasUniqueValue": self.unique,
            "hidden": False, "formField": False, "archived": False,
            "createdAt": self.created, "updatedAt": self.created,
            "modificationMetadata": {"archivable": not self.hubspot_defined,
                                     "readOnlyDefinition": self.hubspot_defined,
                                     "readOnlyValue": self.read_only},
        }
        if self.hubspot_defined:
            out["hubspotDefined"] = True
        if self.referenced:
            out["referencedObjectType"] = self.referenced
        return out


PROPERTY_TYPES = {"string": {"text", "textarea", "html", "phonenumber", "file"},
                  "number": {"number", "calculation_equation"},
                  "date": {"date"}, "datetime": {"date"},
                  "enumeration": {"select", "radio", "checkbox", "booleancheckbox"},
                  "bool": {"booleancheckbox", "select", "radio"}}

GROUPS: dict[str, list[tuple[str, str]]] = {
    "deals": [("dealinformation", "Deal information"), ("deal_activity", "Deal activity")],
    "contacts": [("contactinformation", "Contact information")],
    "companies": [("companyinformation", "Company information")],
    "tasks": [("taskinformation", "Task information")],
    "calls": [("callinformation", "Call information")],
    "meetings": [("meetinginformation", "Meeting information")],
    "emails": [("emailinformation", "Email information")],
    "notes": [("noteinformation", "Note information")],
}

_TRUE_FALSE = [("true", "Yes"), ("false", "No")]


def _p(name: str, label: str, type_: str, field_type: str, group: str, **kw: Any) -> PropDef:
    return PropDef(name, label, type_, field_type, group, **kw)


def _common(group: str, created: str, modified: tuple[str, ...]) -> list[PropDef]:
    props = [_p("hs_object_id", "Record ID", "number", "number", group, read_only=True),
             _p(created, "Create Date", "datetime", "date", group,
                read_only=created != "createdate"),
             _p("hubspot_owner_id", "Owner", "enumeration", "select", group, referenced="OWNER")]
    props += [_p(m, "Last Modified Date", "datetime", "date", group, read_only=True)
              for m in modified]
    return props


def default_properties() -> dict[str, dict[str, PropDef]]:
    deal_g, contact_g, company_g, task_g = ("dealinformation", "contactinformation",
                                            "companyinformation", "taskinformation")
    stage_options = [(s.id, f"{s.label} ({p.label})") for p in PIPELINES for s in p.stages]
    deals = _common(deal_g, "createdate", ("hs_lastmodifieddate",)) + [
        _p("dealname", "Deal Name", "string", "text", deal_g),
        _p("amount", "Amount", "number", "number", deal_g),
        _p("closedate", "Close Date", "datetime", "date", deal_g),
        _p("dealstage", "Deal Stage", "enumeration", "radio", deal_g, options=stage_options),
        _p("pipeline", "Pipeline", "enumeration", "select", deal_g,
           options=[(p.id, p.label) for p in PIPELINES]),
        _p("dealtype", "Deal Type", "enumeration", "radio", deal_g,
           options=[("newbusiness", "New Business"), ("existingbusiness", "Existing Business")]),
        _p("description", "Deal Description", "string", "textarea", deal_g),
        _p("closed_lost_reason", "Closed Lost Reason", "string", "textarea", deal_g),
        _p("closed_won_reason", "Closed Won Reason", "string", "textarea", deal_g),
        _p("hs_is_closed", "Is Deal Closed?", "bool", "booleancheckbox", deal_g,
           options=_TRUE_FALSE, read_only=True, calculated=True),
        _p("hs_is_closed_won", "Is Closed Won", "bool", "booleancheckbox", deal_g,
           options=_TRUE_FALSE, read_only=True, calculated=True),
        _p("hs_is_closed_lost", "Is closed lost", "bool", "booleancheckbox", deal_g,
           options=_TRUE_FALSE, read_only=True, calculated=True),
        _p("competitor", "Competitor", "string", "text", deal_g, hubspot_defined=False,
           created="2024-01-15T12:00:00.000Z"),
        _p("winback_opt_out", "Winback opt-out", "bool", "booleancheckbox", deal_g,
           options=_TRUE_FALSE, hubspot_defined=False, created="2024-01-15T12:00:00.000Z"),
        _p("winback_pause_until", "Winback paused until", "date", "date", deal_g,
           hubspot_defined=False, created="2024-01-15T12:00:00.000Z"),
        _p("contract_end_date", "Contract end date", "date", "date", deal_g,
           hubspot_defined=False, created="2024-01-15T12:00:00.000Z"),
    ] + [_p(f"hs_v2_date_entered_{s.id}", f"Date entered \"{s.label} ({p.label})\"",
            "datetime", "date", "deal_activity", read_only=True, calculated=True)
         for p in PIPELINES for s in p.stages]
    contacts = [*_common(contact_g, "createdate", ("lastmodifieddate", "hs_lastmodifieddate")),
        _p("firstname", "First Name", "string", "text", contact_g),
        _p("lastname", "Last Name", "string", "text", contact_g),
        _p("email", "Email", "string", "text", contact_g),
        _p("jobtitle", "Job Title", "string", "text", contact_g),
        _p("hs_email_optout", "Unsubscribed from all email", "bool", "booleancheckbox",
           contact_g, options=_TRUE_FALSE, read_only=True),
    ]
    companies = [*_common(company_g, "createdate", ("hs_lastmodifieddate",)),
        _p("name", "Company name", "string", "text", company_g),
        _p("domain", "Company Domain Name", "string", "text", company_g),
    ]
    tasks = [*_common(task_g, "hs_createdate", ("hs_lastmodifieddate",)),
        _p("hs_timestamp", "Due date", "datetime", "date", task_g),
        _p("hs_task_subject", "Task Title", "string", "text", task_g),
        _p("hs_task_body", "Notes", "string", "html", task_g),
        _p("hs_task_status", "Task Status", "enumeration", "select", task_g,
           options=[("NOT_STARTED", "Not started"), ("IN_PROGRESS", "In progress"),
                    ("WAITING", "Waiting"), ("COMPLETED", "Completed"), ("DEFERRED", "Deferred")]),
        _p("hs_task_priority", "Priority", "enumeration", "select", task_g,
           options=[("NONE", "None"), ("LOW", "Low"), ("MEDIUM", "Medium"), ("HIGH", "High")]),
        _p("hs_task_type", "Task Type", "enumeration", "select", task_g,
           options=[("TODO", "To-do"), ("CALL", "Call"), ("EMAIL", "Email")]),
        _p("hs_task_reminders", "Reminder", "string", "text", task_g,
           description="Reminder time(s) as epoch milliseconds, ';'-separated"),
        _p("hs_task_completion_date", "Completed at", "datetime", "date", task_g,
           read_only=True, calculated=True),
    ]
    out: dict[str, dict[str, PropDef]] = {}
    for name, props in (("deals", deals), ("contacts", contacts), ("companies", companies),
                        ("tasks", tasks), *engagement_properties()):
        for i, prop in enumerate(props):
            prop.order = i
        out[name] = {p.name: p for p in props}
    return out


def engagement_properties() -> list[tuple[str, list[PropDef]]]:
    """The documented default properties of calls, meetings, emails and notes; each needs
    `hs_timestamp` (when it happened) on create."""
    def base(group: str, label: str) -> list[PropDef]:
        return [*_common(group, "hs_createdate", ("hs_lastmodifieddate",)),
                _p("hs_timestamp", label, "datetime", "date", group)]

    def enum(name: str, label: str, group: str, values: tuple[str, ...]) -> PropDef:
        return _p(name, label, "enumeration", "select", group,
                  options=[(v, v.replace("_", " ").title()) for v in values])

    call_g, meet_g, mail_g, note_g = ("callinformation", "meetinginformation",
                                      "emailinformation", "noteinformation")
    calls = [*base(call_g, "Activity date"),
             _p("hs_call_title", "Call Title", "string", "text", call_g),
             _p("hs_call_body", "Call notes", "string", "html", call_g),
             enum("hs_call_direction", "Call direction", call_g, ("INBOUND", "OUTBOUND")),
             _p("hs_call_disposition", "Call outcome", "string", "text", call_g),
             _p("hs_call_duration", "Call duration (ms)", "number", "number", call_g),
             enum("hs_call_status", "Call status", call_g,
                  ("BUSY", "CALLING_CRM_USER", "CANCELED", "COMPLETED", "CONNECTING", "FAILED",
                   "IN_PROGRESS", "NO_ANSWER", "QUEUED", "RINGING")),
             _p("hs_call_from_number", "From number", "string", "text", call_g),
             _p("hs_call_to_number", "To number", "string", "text", call_g)]
    meetings = [*base(meet_g, "Activity date"),
                _p("hs_meeting_title", "Meeting name", "string", "text", meet_g),
                _p("hs_meeting_body", "Meeting description", "string", "html", meet_g),
                _p("hs_internal_meeting_notes", "Internal notes", "string", "html", meet_g),
                _p("hs_meeting_location", "Location", "string", "text", meet_g),
                _p("hs_meeting_start_time", "Start time", "datetime", "date", meet_g),
                _p("hs_meeting_end_time", "End time", "datetime", "date", meet_g),
                enum("hs_meeting_outcome", "Meeting outcome", meet_g,
                     ("SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELED"))]
    emails = [*base(mail_g, "Activity date"),
              enum("hs_email_direction", "Email direction", mail_g,
                   ("EMAIL", "INCOMING_EMAIL", "FORWARDED_EMAIL")),
              _p("hs_email_subject", "Email subject", "string", "text", mail_g),
              _p("hs_email_text", "Email body (text)", "string", "textarea", mail_g),
              _p("hs_email_html", "Email body (HTML)", "string", "html", mail_g),
              enum("hs_email_status", "Email send status", mail_g,
                   ("BOUNCED", "FAILED", "SCHEDULED", "SENDING", "SENT")),
              _p("hs_email_headers", "Email headers", "string", "textarea", mail_g)]
    notes = [*base(note_g, "Activity date"),
             _p("hs_note_body", "Note body", "string", "html", note_g),
             _p("hs_attachment_ids", "Attachment ids", "string", "text", note_g)]
    return [("calls", calls), ("meetings", meetings), ("emails", emails), ("notes", notes)]


# -- associations ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AssocType:
    type_id: int
    from_type: str
    to_type: str
    name: str  # the v3 `type` string
    label: str | None
    reverse: int


_ASSOC_ROWS = (
    (3, "deals", "contacts", "deal_to_contact", None, 4),
    (5, "deals", "companies", "deal_to_company", "Primary", 6),
    (341, "deals", "companies", "deal_to_company_unlabeled", None, 342),
    (1, "contacts", "companies", "contact_to_company", "Primary", 2),
    (279, "contacts", "companies", "contact_to_company_unlabeled", None, 280),
    (216, "tasks", "deals", "task_to_deal", None, 215),
    (204, "tasks", "contacts", "task_to_contact", None, 203),
    (192, "tasks", "companies", "task_to_company", None, 191),
    (206, "calls", "deals", "call_to_deal", None, 205),
    (194, "calls", "contacts", "call_to_contact", None, 193),
    (182, "calls", "companies", "call_to_company", None, 181),
    (212, "meetings", "deals", "meeting_event_to_deal", None, 211),
    (200, "meetings", "contacts", "meeting_event_to_contact", None, 199),
    (188, "meetings", "companies", "meeting_event_to_company", None, 187),
    (210, "emails", "deals", "email_to_deal", None, 209),
    (198, "emails", "contacts", "email_to_contact", None, 197),
    (186, "emails", "companies", "email_to_company", None, 185),
    (214, "notes", "deals", "note_to_deal", None, 213),
    (202, "notes", "contacts", "note_to_contact", None, 201),
    (190, "notes", "companies", "note_to_company", None, 189),
)


def _build_assoc() -> dict[int, AssocType]:
    table: dict[int, AssocType] = {}
    for type_id, src, dst, name, label, rev in _ASSOC_ROWS:
        a, b = name.split("_to_")
        table[type_id] = AssocType(type_id, src, dst, name, label, rev)
        table[rev] = AssocType(rev, dst, src, f"{b.removesuffix('_unlabeled')}_to_{a}"
                               + ("_unlabeled" if b.endswith("_unlabeled") else ""), label,
                               type_id)
    return table


ASSOC_TYPES = _build_assoc()
PAIR_TYPES: dict[tuple[str, str], list[int]] = {}
for _t in ASSOC_TYPES.values():
    PAIR_TYPES.setdefault((_t.from_type, _t.to_type), []).append(_t.type_id)
# What linking with one type id stores: (type id, reverse id) pairs; a primary link comes
# with the unlabeled one.
LINK_KINDS: dict[int, tuple[tuple[int, int], ...]] = {
    t.type_id: tuple((k, ASSOC_TYPES[k].reverse) for k in (
        [t.type_id] + ([u for u in PAIR_TYPES[(t.from_type, t.to_type)]
                        if ASSOC_TYPES[u].label is None] if t.label == "Primary" else [])))
    for t in ASSOC_TYPES.values()}
