"""The org's metadata: sObject types, their fields, relationships and the picklist tables.

Field names are matched case-insensitively everywhere (SOQL and JSON bodies), but responses
always use the canonical spelling defined here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STRINGISH = frozenset({"string", "textarea", "picklist", "multipicklist", "combobox", "email",
                       "phone", "url"})
NUMERIC = frozenset({"double", "currency", "percent", "int"})
IDISH = frozenset({"id", "reference"})
SYSTEM_FIELDS = ("CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
                 "SystemModstamp")


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    length: int = 0
    label: str = ""
    custom: bool = False
    external_id: bool = False
    unique: bool = False
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    filterable: bool = True
    sortable: bool = True
    defaulted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship: str | None = None
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    indexed: bool = False

    @property
    def required(self) -> bool:
        """Must be present on create (Salesforce's REQUIRED_FIELD_MISSING)."""
        return (self.createable and not self.nillable and not self.defaulted
                and self.type != "boolean")

    @property
    def polymorphic(self) -> bool:
        return len(self.reference_to) > 1


@dataclass(frozen=True)
class ChildRelationship:
    name: str
    child: str
    field: str
    cascade_delete: bool


@dataclass
class SObjectType:
    name: str
    prefix: str
    label: str
    fields: list[Field]
    createable: bool = True
    updateable: bool = True
    deletable: bool = True
    children: list[ChildRelationship] = field(default_factory=list)
    _by_lower: dict[str, Field] = field(default_factory=dict, repr=False)
    _by_relationship: dict[str, Field] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._by_lower = {f.name.lower(): f for f in self.fields}
        self._by_relationship = {f.relationship.lower(): f for f in self.fields if f.relationship}

    @property
    def has_is_deleted(self) -> bool:
        return "isdeleted" in self._by_lower

    def field(self, name: str) -> Field | None:
        return self._by_lower.get(name.lower())

    def relationship(self, name: str) -> Field | None:
        return self._by_relationship.get(name.lower())

    def child(self, name: str) -> ChildRelationship | None:
        lowered = name.lower()
        return next((c for c in self.children if c.name.lower() == lowered), None)

    def external_id_fields(self) -> list[Field]:
        return [f for f in self.fields if f.external_id]


@dataclass(frozen=True)
class Stage:
    label: str
    closed: bool
    won: bool
    probability: float
    forecast_name: str
    sort: int
    active: bool = True

    @property
    def forecast_category(self) -> str:
        return {"Best Case": "BestCase", "Commit": "Forecast"}.get(self.forecast_name,
                                                                    self.forecast_name)


STANDARD_STAGES = (
    Stage("Prospecting", False, False, 10, "Pipeline", 1),
    Stage("Qualification", False, False, 10, "Pipeline", 2),
    Stage("Needs Analysis", False, False, 20, "Pipeline", 3),
    Stage("Value Proposition", False, False, 50, "Pipeline", 4),
    Stage("Id. Decision Makers", False, False, 60, "Pipeline", 5),
    Stage("Perception Analysis", False, False, 70, "Pipeline", 6),
    Stage("Proposal/Price Quote", False, False, 75, "Best Case", 7),
    Stage("Negotiation/Review", False, False, 90, "Commit", 8),
    Stage("Closed Won", True, True, 100, "Closed", 9),
    Stage("Closed Lost", True, False, 0, "Omitted", 10),
    Stage("Closed - No Budget", True, False, 0, "Omitted", 11),
)
OPEN_STAGES = tuple(s.label for s in STANDARD_STAGES if not s.closed)
# (label, closed, default)
TASK_STATUSES = (("Not Started", False, True), ("In Progress", False, False),
                 ("Completed", True, False), ("Waiting on someone else", False, False),
                 ("Deferred", False, False))
TASK_PRIORITIES = (("High", True, False), ("Normal", False, True), ("Low", False, False))
TASK_SUBTYPES = ("Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn")
EVENT_SUBTYPES = ("Event",)
TIME_ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles",
              "Europe/London", "Europe/Berlin", "Europe/Paris", "Asia/Tokyo", "Australia/Sydney",
              "GMT")


def _id() -> Field:
    return Field("Id", "id", 18, "Record ID", createable=False, updateable=False, nillable=False,
                 defaulted=True)


def _deleted() -> Field:
    return Field("IsDeleted", "boolean", label="Deleted", createable=False, updateable=False,
                 nillable=False, defaulted=True)


def _ro(name: str, type_: str, length: int = 0, **kw: Any) -> Field:
    return Field(name, type_, length, createable=False, updateable=False, **kw)


def _ref(name: str, to: tuple[str, ...], relationship: str, **kw: Any) -> Field:
    return Field(name, "reference", 18, reference_to=to, relationship=relationship, **kw)


def _system() -> list[Field]:
    return [
        _ro("CreatedDate", "datetime", nillable=False, defaulted=True),
        _ro("CreatedById", "reference", 18, reference_to=("User",), relationship="CreatedBy",
            nillable=False, defaulted=True),
        _ro("LastModifiedDate", "datetime", nillable=False, defaulted=True),
        _ro("LastModifiedById", "reference", 18, reference_to=("User",),
            relationship="LastModifiedBy", nillable=False, defaulted=True),
        _ro("SystemModstamp", "datetime", nillable=False, defaulted=True),
    ]


def _owner() -> Field:
    return _ref("OwnerId", ("User",), "Owner", nillable=False, defaulted=True)


def _text(name: str, length: int, **kw: Any) -> Field:
    return Field(name, "string", length, **kw)


def _long_text(name: str) -> Field:
    return Field(name, "textarea", 32000, filterable=False, sortable=False)


def _pick(name: str, values: tuple[str, ...], **kw: Any) -> Field:
    return Field(name, "picklist", 255, picklist=values, **kw)


def _bool(name: str, **kw: Any) -> Field:
    return Field(name, "boolean", nillable=False, defaulted=True, **kw)


def _picklist_object(name: str, extra: list[Field]) -> SObjectType:
    fields = [_id(), _text("MasterLabel", 255, nillable=False), _text("ApiName", 255),
              *extra, Field("SortOrder", "int"), *_system()]
    return SObjectType(name, "01J", name, fields, createable=False, updateable=False,
                       deletable=False)


def build_schema(task_external_id_field: str | None = "Winback_Key__c",
                 task_external_id_unique: bool = True) -> dict[str, SObjectType]:
    """Every sObject type of the org, keyed by lower-case name."""
    stage_names = tuple(s.label for s in STANDARD_STAGES)
    user = SObjectType("User", "005", "User", [
        _id(), _text("Username", 80, nillable=False, unique=True),
        _text("LastName", 80, nillable=False), _text("FirstName", 40),
        _ro("Name", "string", 121), _text("Alias", 8), Field("Email", "email", 128),
        _bool("IsActive"), _pick("TimeZoneSidKey", TIME_ZONES, defaulted=True),
        _text("CountryCode", 10), *_system(),
    ], createable=False, deletable=False)
    account = SObjectType("Account", "001", "Account", [
        _id(), _deleted(), _text("Name", 255, nillable=False),
        _pick("Type", ("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other")),
        _pick("Industry", ("Technology", "Manufacturing", "Finance", "Healthcare", "Retail")),
        Field("Website", "url", 255), Field("Phone", "phone", 40), _text("BillingCountry", 80),
        _owner(), _long_text("Description"), *_system(),
    ], children=[ChildRelationship("Contacts", "Contact", "AccountId", True),
                 ChildRelationship("Opportunities", "Opportunity", "AccountId", True),
                 ChildRelationship("Tasks", "Task", "WhatId", True),
                 ChildRelationship("Events", "Event", "WhatId", True)])
    contact = SObjectType("Contact", "003", "Contact", [
        _id(), _deleted(), _ref("AccountId", ("Account",), "Account", indexed=True),
        _text("LastName", 80, nillable=False), _text("FirstName", 40), _ro("Name", "string", 121),
        _text("Title", 128), Field("Email", "email", 80), Field("Phone", "phone", 40),
        _bool("HasOptedOutOfEmail"), _bool("DoNotCall"), _owner(), _long_text("Description"),
        *_system(),
    ], children=[ChildRelationship("OpportunityContactRoles", "OpportunityContactRole",
                                   "ContactId", True),
                 ChildRelationship("Tasks", "Task", "WhoId", True),
                 ChildRelationship("Events", "Event", "WhoId", True)])
    lead = SObjectType("Lead", "00Q", "Lead", [
        _id(), _deleted(), _text("LastName", 80, nillable=False), _text("FirstName", 40),
        _ro("Name", "string", 121), _text("Company", 255, nillable=False),
        Field("Email", "email", 80),
        _pick("Status", ("Open - Not Contacted", "Working - Contacted", "Closed - Converted",
                         "Closed - Not Converted"), nillable=False, defaulted=True),
        _ro("IsConverted", "boolean", nillable=False, defaulted=True), _owner(), *_system(),
    ], children=[ChildRelationship("Tasks", "Task", "WhoId", True),
                 ChildRelationship("Events", "Event", "WhoId", True)])
    opportunity = SObjectType("Opportunity", "006", "Opportunity", [
        _id(), _deleted(), _ref("AccountId", ("Account",), "Account", indexed=True),
        _text("Name", 120, nillable=False), _long_text("Description"),
        _pick("StageName", stage_names, nillable=False, restricted=True),
        Field("Amount", "currency"), Field("Probability", "percent", defaulted=True),
        Field("CloseDate", "date", nillable=False),
        _pick("Type", ("New Customer", "Existing Customer - Upgrade",
                       "Existing Customer - Replacement", "Existing Customer - Downgrade")),
        _text("NextStep", 255),
        _pick("LeadSource", ("Web", "Phone Inquiry", "Partner Referral", "Purchased List",
                             "Other")),
        _ro("IsClosed", "boolean", nillable=False, defaulted=True),
        _ro("IsWon", "boolean", nillable=False, defaulted=True),
        _ro("ForecastCategory", "picklist", 40,
            picklist=("Omitted", "Pipeline", "BestCase", "Forecast", "Closed")),
        _pick("ForecastCategoryName", ("Omitted", "Pipeline", "Best Case", "Commit", "Closed"),
              defaulted=True),
        _owner(), _ro("LastActivityDate", "date"), *_system(),
        _text("Loss_Reason__c", 255, custom=True), _text("Competitor__c", 255, custom=True),
        Field("Contract_End__c", "date", custom=True),
        _bool("Winback_Opt_Out__c", custom=True), Field("Winback_Pause_Until__c", "date",
                                                        custom=True),
    ], children=[ChildRelationship("OpportunityContactRoles", "OpportunityContactRole",
                                   "OpportunityId", True),
                 ChildRelationship("Tasks", "Task", "WhatId", True),
                 ChildRelationship("Events", "Event", "WhatId", True)])
    ocr = SObjectType("OpportunityContactRole", "00K", "Opportunity Contact Role", [
        _id(), _deleted(),
        _ref("OpportunityId", ("Opportunity",), "Opportunity", nillable=False, updateable=False,
             indexed=True),
        _ref("ContactId", ("Contact",), "Contact", nillable=False, indexed=True),
        _pick("Role", ("Business User", "Decision Maker", "Economic Buyer",
                       "Economic Decision Maker", "Evaluator", "Executive Sponsor", "Influencer",
                       "Technical Buyer", "Other")),
        _bool("IsPrimary"), *_system(),
    ])
    stage = _picklist_object("OpportunityStage", [
        _bool("IsActive"), _bool("IsClosed"), _bool("IsWon"), Field("DefaultProbability", "double"),
        _pick("ForecastCategory", ("Omitted", "Pipeline", "BestCase", "Forecast", "Closed")),
        _pick("ForecastCategoryName", ("Omitted", "Pipeline", "Best Case", "Commit", "Closed")),
        _text("Description", 255)])
    task_status = _picklist_object("TaskStatus", [_bool("IsClosed"), _bool("IsDefault")])
    task_priority = _picklist_object("TaskPriority", [_bool("IsHighPriority"), _bool("IsDefault")])
    task_fields = [
        _id(), _deleted(), _ref("WhoId", ("Contact", "Lead"), "Who", indexed=True),
        _ref("WhatId", ("Opportunity", "Account"), "What", indexed=True),
        Field("Subject", "combobox", 255, picklist=("Call", "Send Letter", "Send Quote", "Other")),
        Field("ActivityDate", "date"),
        _pick("Status", tuple(s[0] for s in TASK_STATUSES), nillable=False, defaulted=True),
        _pick("Priority", tuple(p[0] for p in TASK_PRIORITIES), nillable=False, defaulted=True),
        _ro("IsHighPriority", "boolean", nillable=False, defaulted=True),
        _owner(), _long_text("Description"), _pick("Type", ("Call", "Email", "Meeting", "Other")),
        _ro("AccountId", "reference", 18, reference_to=("Account",), relationship="Account"),
        _ro("IsClosed", "boolean", nillable=False, defaulted=True),
        _ro("IsArchived", "boolean", nillable=False, defaulted=True),
        _bool("IsReminderSet"), Field("ReminderDateTime", "datetime"),
        _pick("TaskSubtype", TASK_SUBTYPES, restricted=True, updateable=False, defaulted=True),
        _ro("CompletedDateTime", "datetime"), *_system(),
    ]
    if task_external_id_field:
        task_fields.append(_text(task_external_id_field, 80, custom=True, external_id=True,
                                 unique=task_external_id_unique, indexed=True))
    task = SObjectType("Task", "00T", "Task", task_fields)
    types = [user, account, contact, lead, opportunity, ocr, stage, task_status, task_priority,
             task, _event()]
    return {t.name.lower(): t for t in types}


def _event() -> SObjectType:
    """A calendar event (a meeting): Start/End or a duration, the related records as on Task
    (object reference "Event": AccountId derived from WhatId, else the WhoId contact;
    ActivityDateTime is the start, ActivityDate its day)."""
    return SObjectType("Event", "00U", "Event", [
        _id(), _deleted(), _ref("WhoId", ("Contact", "Lead"), "Who", indexed=True),
        _ref("WhatId", ("Opportunity", "Account"), "What", indexed=True),
        Field("Subject", "combobox", 255, picklist=("Call", "Email", "Meeting", "Send Letter/Quote",
                                                    "Other")),
        _text("Location", 255), _bool("IsAllDayEvent"),
        Field("ActivityDateTime", "datetime"), Field("ActivityDate", "date"),
        Field("StartDateTime", "datetime"), Field("EndDateTime", "datetime"),
        Field("DurationInMinutes", "int"), _long_text("Description"),
        _pick("Type", ("Call", "Email", "Meeting", "Other")),
        _ro("AccountId", "reference", 18, reference_to=("Account",), relationship="Account"),
        _owner(), _bool("IsPrivate"),
        _pick("ShowAs", ("Busy", "OutOfOffice", "Free"), defaulted=True),
        _pick("EventSubtype", EVENT_SUBTYPES, restricted=True, updateable=False, defaulted=True),
        _ro("IsArchived", "boolean", nillable=False, defaulted=True),
        _ro("IsChild", "boolean", nillable=False, defaulted=True), *_system(),
    ])


def type_for_id(schema: dict[str, SObjectType], record_id: str) -> list[SObjectType]:
    """Types whose key prefix `record_id` carries (several for the shared `01J`)."""
    return [t for t in schema.values() if record_id.startswith(t.prefix)]
