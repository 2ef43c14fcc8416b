"""Metadata resources: describe, the global sObject list, API versions and the resource map."""

from __future__ import annotations

from typing import Any

from sandbox.salesforce.schema import IDISH, NUMERIC, STRINGISH, Field, SObjectType
from sandbox.salesforce.store import Store
from sandbox.salesforce.validation import label, picklist_default, picklist_values

API_VERSIONS = tuple(f"{v}.0" for v in range(31, 69))  # 31.0 (oldest kept) .. 68.0 Winter '27
SOAP_TYPES = {"id": "tns:ID", "reference": "tns:ID", "boolean": "xsd:boolean",
              "date": "xsd:date", "datetime": "xsd:dateTime", "double": "xsd:double",
              "currency": "xsd:double", "percent": "xsd:double", "int": "xsd:int"}


def release(version: str) -> str:
    """The release that shipped `version`: one a season, 59.0 = Winter '24, 68.0 = Winter '27."""
    offset = int(float(version)) - 59
    return f"{('Winter', 'Spring', 'Summer')[offset % 3]} '{24 + offset // 3}"


def versions() -> list[dict[str, str]]:
    """GET /services/data/: the versions a current (Winter '27) org offers."""
    return [{"label": release(v), "url": f"/services/data/v{v}", "version": v}
            for v in API_VERSIONS]


def resources(version: str) -> dict[str, str]:
    base = f"/services/data/v{version}"
    names = ("sobjects", "query", "queryAll", "limits", "composite", "search", "recent",
             "tooling", "jobs/ingest", "jobs/query")
    return {name.replace("jobs/", "jobs").replace("/", ""): f"{base}/{name}" for name in names}


def _urls(sobject: SObjectType, version: str) -> dict[str, str]:
    base = f"/services/data/v{version}/sobjects/{sobject.name}"
    return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}


def object_summary(sobject: SObjectType, version: str) -> dict[str, Any]:
    return {
        "name": sobject.name, "label": sobject.label, "labelPlural": sobject.label + "s",
        "keyPrefix": sobject.prefix, "custom": False, "createable": sobject.createable,
        "updateable": sobject.updateable, "deletable": sobject.deletable, "queryable": True,
        "retrieveable": True, "searchable": True, "undeletable": sobject.has_is_deleted,
        "urls": _urls(sobject, version),
    }


def global_describe(store: Store, version: str) -> dict[str, Any]:
    return {"encoding": "UTF-8", "maxBatchSize": 200,
            "sobjects": [object_summary(t.sobject, version) for t in store.tables.values()]}


def describe_field(store: Store, sobject: SObjectType, field: Field) -> dict[str, Any]:
    picklist = field.type in ("picklist", "combobox", "multipicklist")
    values = picklist_values(store, sobject, field) if picklist else []
    default = picklist_default(store, sobject, field) if picklist else None
    return {
        "name": field.name, "label": label(sobject, field), "type": field.type,
        "length": field.length if field.type in STRINGISH or field.type in IDISH else 0,
        "custom": field.custom, "externalId": field.external_id, "unique": field.unique,
        "idLookup": field.name == "Id" or field.external_id, "caseSensitive": False,
        "filterable": field.filterable, "sortable": field.sortable, "groupable": field.sortable,
        "createable": field.createable and sobject.createable,
        "updateable": field.updateable and sobject.updateable, "nillable": field.nillable,
        "defaultedOnCreate": field.defaulted,
        "calculated": field.name == "Name" and not field.createable,
        "restrictedPicklist": field.restricted,
        "picklistValues": [{"active": True, "defaultValue": v == default, "label": v,
                            "validFor": None, "value": v} for v in values],
        "referenceTo": list(field.reference_to), "relationshipName": field.relationship,
        "polymorphicForeignKey": field.polymorphic,
        "precision": 18 if field.type in NUMERIC and field.type != "int" else 0,
        "scale": 2 if field.type in ("currency", "double") else 0,
        "digits": 9 if field.type == "int" else 0,
        "soapType": SOAP_TYPES.get(field.type, "xsd:string"),
    }


def describe(store: Store, sobject: SObjectType, version: str) -> dict[str, Any]:
    out = object_summary(sobject, version)
    out["fields"] = [describe_field(store, sobject, f) for f in sobject.fields]
    out["childRelationships"] = [
        {"childSObject": c.child, "field": c.field, "relationshipName": c.name,
         "cascadeDelete": c.cascade_delete} for c in sobject.children]
    return out


def limits_body(max_requests: int, used: int) -> dict[str, Any]:
    def pair(maximum: int, remaining: int) -> dict[str, int]:
        return {"Max": maximum, "Remaining": remaining}

    return {
        "DailyApiRequests": pair(max_requests, max(0, max_requests - used)),
        "DailyAsyncApexExecutions": pair(250000, 250000),
        "DailyBulkApiBatches": pair(15000, 15000),
        "DailyBulkV2QueryFileStorageMB": pair(976562, 976562),
        "DailyBulkV2QueryJobs": pair(10000, 10000),
        "DataStorageMB": pair(1024, 1000),
        "FileStorageMB": pair(1024, 1024),
        "SingleEmail": pair(5000, 5000),
    }
