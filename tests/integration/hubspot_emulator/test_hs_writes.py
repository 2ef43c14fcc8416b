"""The write log (`GET /__sandbox/writes`): every task create, upsert and update request the
portal served, per input, under its `winback_key` value, through the real SDK."""

from __future__ import annotations

from typing import Any

from hubspot.crm.objects.tasks import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
)

from .conftest import HS

DUE = "2024-05-16T09:00:00Z"


def _create(api: Any, keys: list[str]) -> Any:
    return api.crm.objects.tasks.batch_api.create(
        batch_input_simple_public_object_batch_input_for_create=
        BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
            {"properties": {"hs_timestamp": DUE, "winback_key": k}, "objectWriteTraceId": k}
            for k in keys]))


def _writes(hs: HS) -> dict[str, dict[str, int]]:
    keys: dict[str, dict[str, int]] = hs.admin("GET", "writes")["keys"]
    return keys


def test_unique_key_creates_log_conflicts_as_resends(hs: HS) -> None:
    hs.key_property("winback_key")
    api = hs.client()
    first = _create(api, ["k1", "k2"])
    _create(api, ["k1", "k3"])  # k1 is a CONFLICT in a 207
    task_id = next(r.id for r in first.results if r.properties["winback_key"] == "k2")
    api.crm.objects.tasks.batch_api.update(
        batch_input_simple_public_object_batch_input=BatchInputSimplePublicObjectBatchInput(
            inputs=[{"id": task_id, "properties": {"hs_task_status": "COMPLETED"}}]))
    api.crm.objects.tasks.batch_api.upsert(
        batch_input_simple_public_object_batch_input_upsert=
        BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
            {"id": "k3", "idProperty": "winback_key", "properties": {"hs_timestamp": DUE}},
            {"id": "k4", "idProperty": "winback_key", "properties": {"hs_timestamp": DUE}}]))
    assert _writes(hs) == {
        "k1": {"created": 1, "resent": 1, "updated": 0, "refused": 0},
        "k2": {"created": 1, "resent": 0, "updated": 1, "refused": 0},
        "k3": {"created": 1, "resent": 1, "updated": 0, "refused": 0},
        "k4": {"created": 1, "resent": 0, "updated": 0, "refused": 0}}
    hs.admin("POST", "reset")
    assert _writes(hs) == {}


def test_a_plain_key_property_lets_a_key_be_created_twice(hs: HS) -> None:
    hs.key_property("winback_key", unique=False)
    api = hs.client()
    _create(api, ["k1"])
    _create(api, ["k1"])
    assert _writes(hs) == {"k1": {"created": 2, "resent": 0, "updated": 0, "refused": 0}}
    assert hs.admin("GET", "writes")["totals"]["created"] == 2
