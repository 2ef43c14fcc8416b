"""sObject Collections: create, update, upsert, delete and retrieve up to 200 records per call
(retrieve with a request body, `POST /composite/sobjects/{type}` with `{"ids", "fields"}`: up to
2,000).

HTTP 200 with one result per record, in request order, even when records fail; per-record
errors use `statusCode`. With `allOrNone` every change is rolled back when any record fails,
and the records that were fine report ALL_OR_NONE_OPERATION_ROLLED_BACK (reference §3.4).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox.messages import Response
from sandbox.salesforce.errors import ApiError, SFError, json_parser_error
from sandbox.salesforce.ids import normalize_id

if TYPE_CHECKING:
    from sandbox.salesforce.api import Api, Call

MAX_RECORDS = 200
MAX_RETRIEVE_BODY = 2000  # "Get Records With a Request Body": up to 2,000 records
ROLLED_BACK = ApiError("ALL_OR_NONE_OPERATION_ROLLED_BACK",
                       "Record rolled back because not all records were valid and the request "
                       "was using AllOrNone header")
Result = dict[str, Any]


def too_many(limit: int = MAX_RECORDS) -> SFError:
    return SFError.one(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more "
                       f"than {limit} records into this call")


def _item_errors(exc: SFError) -> list[dict[str, Any]]:
    out = []
    for error in exc.errors:
        item = error
        if error.code == "NOT_FOUND" and "external ID" in error.message:
            item = ApiError("MALFORMED_ID", "malformed id " + error.message.rsplit(": ", 1)[-1])
        elif error.code == "NOT_FOUND":
            item = ApiError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        out.append(item.item())
    return out


class Collections:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.emu = api.emu

    def _payload(self, call: Call) -> tuple[list[Any], bool]:
        from sandbox.salesforce.api import body_object

        data = body_object(call.request)
        records = data.get("records")
        if not isinstance(records, list):
            raise json_parser_error("Cannot deserialize the request body: 'records' must be a list")
        if len(records) > MAX_RECORDS:
            raise too_many()
        return records, bool(data.get("allOrNone", False))

    def _run(self, ops: list[tuple[str | None, Callable[[], Result]]],
             all_or_none: bool) -> Response:
        store = self.emu.store
        if all_or_none:
            store.begin()
        results: list[Result] = []
        failed = False
        for known_id, op in ops:
            try:
                results.append(op())
            except SFError as exc:
                failed = True
                result: Result = {"id": known_id} if known_id else {}
                results.append({**result, "success": False, "errors": _item_errors(exc)})
        if all_or_none and failed:
            store.rollback()
            results = [r if not r["success"] else
                       {**({"id": r["id"]} if ops[n][0] else {}), "success": False,
                        "errors": [ROLLED_BACK.item()]}
                       for n, r in enumerate(results)]
        elif all_or_none:
            store.commit()
        return Response.json(200, results)

    def _typed(self, record: Any) -> tuple[Any, dict[str, Any]]:
        if not isinstance(record, dict):
            raise json_parser_error("Cannot deserialize instance of sObject")
        attributes = record.get("attributes")
        name = attributes.get("type") if isinstance(attributes, dict) else None
        if not name:
            raise SFError.one(400, "INVALID_TYPE", "Must send a concrete entity type.")
        table = self.emu.store.table(str(name))
        if table is None:
            raise SFError.one(400, "INVALID_TYPE", f"sObject type '{name}' is not supported.")
        return table, {k: v for k, v in record.items() if k != "attributes"}

    def create(self, call: Call) -> Response:
        records, all_or_none = self._payload(call)
        actor = call.session.user_id

        def op(record: Any) -> Callable[[], Result]:
            def run() -> Result:
                table, data = self._typed(record)
                return {"id": self.emu.dml.create(table, data, actor), "success": True,
                        "errors": []}
            return run
        return self._run([(None, op(r)) for r in records], all_or_none)

    def update(self, call: Call) -> Response:
        records, all_or_none = self._payload(call)
        actor = call.session.user_id

        def record_id(record: Any) -> str | None:
            if not isinstance(record, dict):
                return None
            value = record.get("id", record.get("Id"))
            return str(value) if value else None

        def op(record: Any) -> Callable[[], Result]:
            def run() -> Result:
                table, data = self._typed(record)
                target = record_id(record)
                if not target:
                    raise SFError.one(400, "MISSING_ARGUMENT", "Id not specified in an update call")
                data = {k: v for k, v in data.items() if k.lower() != "id"}
                updated = self.emu.dml.update(table, target, data, actor)
                return {"id": updated, "success": True, "errors": []}
            return run
        return self._run([(record_id(r), op(r)) for r in records], all_or_none)

    def upsert(self, call: Call) -> Response:
        table = self.api.table(call)
        key = table.sobject.field(call.request.path_params["field"])
        if key is None or not key.external_id:
            raise SFError.one(400, "INVALID_FIELD", "Field name provided, "
                              f"{call.request.path_params['field']} is not an External ID or "
                              f"indexed field for {table.sobject.name}")
        records, all_or_none = self._payload(call)
        actor = call.session.user_id

        def op(record: Any) -> Callable[[], Result]:
            def run() -> Result:
                typed, data = self._typed(record)
                if typed is not table:
                    raise SFError.one(400, "INVALID_TYPE", "Record type does not match the "
                                      "sObject type in the URL")
                value = next((v for k, v in data.items() if k.lower() == key.name.lower()), None)
                if value in (None, ""):
                    raise SFError.one(400, "MISSING_ARGUMENT", f"{key.name} not specified")
                matches = self.emu.dml.matches_by_key(table, key.name, str(value))
                if len(matches) > 1:
                    raise SFError.one(400, "DUPLICATE_EXTERNAL_ID",
                                      f"{key.name}: more than one record found for external id "
                                      f"field: {matches}")
                record_id, created = self.emu.dml.upsert(table, key.name, str(value), data, actor,
                                                         in_body=True)
                return {"id": record_id, "success": True, "errors": [], "created": created}
            return run
        return self._run([(None, op(r)) for r in records], all_or_none)

    def _ids(self, call: Call) -> list[str]:
        raw = call.request.param("ids") or ""
        ids = [i.strip() for i in raw.split(",") if i.strip()]
        if len(ids) > MAX_RECORDS:
            raise too_many()
        return ids

    def delete(self, call: Call) -> Response:
        ids = self._ids(call)
        all_or_none = (call.request.param("allOrNone") or "false").lower() == "true"
        actor = call.session.user_id

        def op(raw: str) -> Callable[[], Result]:
            def run() -> Result:
                normal = normalize_id(raw)
                found = self.emu.store.locate(normal) if normal else None
                if found is None:
                    code = "MALFORMED_ID" if normal is None else "INVALID_CROSS_REFERENCE_KEY"
                    message = f"malformed id {raw}" if normal is None else \
                        "invalid cross reference id"
                    raise SFError.one(400, code, message)
                deleted = self.emu.dml.delete(found[0], raw, actor)
                return {"id": deleted, "success": True, "errors": []}
            return run
        return self._run([(i, op(i)) for i in ids], all_or_none)

    def retrieve(self, call: Call) -> Response:
        """`GET /composite/sobjects/{type}?ids=…&fields=…`."""
        wanted = [f.strip() for f in (call.request.param("fields") or "").split(",") if f.strip()]
        return self._retrieve(call, self._ids(call), wanted)

    def retrieve_body(self, call: Call) -> Response:
        """`POST /composite/sobjects/{type}` with `{"ids": [...], "fields": [...]}`: the GET
        form's answer for up to 2,000 ids."""
        from sandbox.salesforce.api import body_object

        data = body_object(call.request)
        ids, fields = data.get("ids"), data.get("fields", [])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise json_parser_error("Cannot deserialize the request body: 'ids' must be a list "
                                    "of record id strings")
        if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
            raise json_parser_error("Cannot deserialize the request body: 'fields' must be a "
                                    "list of field name strings")
        if len(ids) > MAX_RETRIEVE_BODY:
            raise too_many(MAX_RETRIEVE_BODY)
        return self._retrieve(call, [i.strip() for i in ids if i.strip()],
                              [f.strip() for f in fields if f.strip()])

    def _retrieve(self, call: Call, ids: list[str], wanted: list[str]) -> Response:
        from sandbox.salesforce.api import record_json

        table = self.api.table(call)
        names = []
        for name in wanted:
            field = table.sobject.field(name)
            if field is None:
                raise SFError.one(400, "INVALID_FIELD", f"No such column '{name}' on entity "
                                  f"'{table.sobject.name}'.")
            names.append(field.name)
        out: list[Any] = []
        for raw in ids:
            normal = normalize_id(raw)
            row = table.rows.get(normal) if normal else None
            if normal is None or row is None or table.is_deleted(row):
                out.append(None)
            else:
                out.append(record_json(table, normal, call.version, ["Id", *names] if names
                                       else None))
        return Response.json(200, out)
