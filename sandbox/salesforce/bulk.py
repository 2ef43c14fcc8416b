"""Bulk API 2.0 query jobs: create, poll the state, read the CSV results page by page.

    POST   /services/data/vXX.X/jobs/query             {"operation": "query"|"queryAll",
                                                        "query", "columnDelimiter"?,
                                                        "lineEnding"?, "contentType"?}
                                                       -> 200 job info, state UploadComplete
    GET    /services/data/vXX.X/jobs/query/{id}        job info: UploadComplete / InProgress
                                                       until the job is done, then JobComplete
                                                       (or Failed / Aborted, with errorMessage)
    PATCH  /services/data/vXX.X/jobs/query/{id}        {"state": "Aborted"}
    DELETE /services/data/vXX.X/jobs/query/{id}        204
    GET    /services/data/vXX.X/jobs/query/{id}/results?locator=&maxRecords=
                                                       text/csv, one header row; headers
                                                       Sforce-Locator (the next page, or the
                                                       literal "null" at the end) and
                                                       Sforce-NumberOfRecords

As Salesforce documents them (Bulk API 2.0 guide: "Create a Query Job", "Get Results for a
Query Job", "Job States"): a job starts UploadComplete, goes InProgress, then ends JobComplete,
Failed or Aborted; results exist only for a JobComplete job and must be read with the API
version the job was created with (409 otherwise); queries with COUNT() or parent-to-child
subqueries are refused. Results are CSV (comma, LF) with every value quoted, a null as an
empty value, booleans as true/false, datetimes as `2024-06-01T08:15:02.000Z`. Every request is
one API call like any REST call (the routes go through `Api.guarded`).

Refusals (checked, see docs/crm-setup.md "Big pulls"): a user without the API Enabled
permission gets 403 `API_DISABLED_FOR_ORG` "The REST API is not enabled for this
Organization." (the REST status table: 403 is a refused request; the code and message as
integration vendors quote them); the Bulk 2.0 error list also names InvalidUser (no
permission, or another user's job) and FeatureNotEnabled (Bulk 2.0 off for the org). A
result set's locator does not change while its job exists and may be read again; a deleted
job is 404 NOT_FOUND.

Emulator choices (not Salesforce facts): a job answers `bulk_job_polls` state reads with
InProgress before it reports JobComplete (0: the first read sees it done); the matching ids
are fixed when the job is created and a page's rows are rendered when it is read
(bulk_csv.py). A user whose Bulk access is withdrawn (admin `POST bulk {"deny": [username]}`)
gets the 403 above on job creation only (REST still answers: the org-level case, which
Salesforce reports its own way, is not told apart). A locator the job never issued gets 400
INVALID_QUERY_LOCATOR, REST's code for a bad cursor: Salesforce documents no code for it.
The admin can also make the next jobs fail (`{"fail_next": n, "error": message}`), so the
client sees state Failed and the errorMessage.
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sandbox.messages import Response
from sandbox.salesforce.bulk_csv import DELIMITERS, LINE_ENDINGS, render_page
from sandbox.salesforce.errors import SFError
from sandbox.salesforce.evaluator import CompiledQuery, compile_query
from sandbox.salesforce.ids import checksum, format_datetime

if TYPE_CHECKING:
    from sandbox.salesforce.api import Api, Call
    from sandbox.salesforce.emulator import SalesforceEmulator

OPERATIONS = ("query", "queryAll")
FAIL_MESSAGE = "QUERY_TIMEOUT: Your query request was running for too long."
DEFAULT_MAX_RECORDS = 50_000  # a results page when the client sends no maxRecords
UNSUPPORTED = ("Aggregate Relationships not supported in Bulk API 2.0 query",
               "Aggregate functions such as COUNT() are not supported in Bulk API 2.0 query")


@dataclass
class QueryJob:
    id: str
    owner: str  # username
    created_by: str  # user id
    operation: str
    soql: str
    sobject: str
    version: str
    created: datetime
    compiled: CompiledQuery
    ids: list[str]
    column_delimiter: str
    line_ending: str
    state: str = "UploadComplete"
    polls_left: int = 0
    error: str | None = None
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))

    def info(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id, "operation": self.operation, "object": self.sobject,
            "createdById": self.created_by, "createdDate": format_datetime(self.created),
            "systemModstamp": format_datetime(self.modified), "state": self.state,
            "concurrencyMode": "Parallel", "contentType": "CSV",
            "apiVersion": float(self.version), "lineEnding": self.line_ending,
            "columnDelimiter": self.column_delimiter}
        if self.state in ("JobComplete", "Failed", "Aborted"):
            body.update(jobType="V2Query", retries=0, totalProcessingTime=1,
                        numberRecordsProcessed=len(self.ids) if self.state == "JobComplete"
                        else 0)
        if self.error is not None:
            body["errorMessage"] = self.error
        return body


@dataclass
class BulkState:
    """The org's query jobs and the admin's knobs (reset with the org)."""

    jobs: dict[str, QueryJob] = field(default_factory=dict)
    denied: set[str] = field(default_factory=set)  # lower-case usernames without Bulk API
    fail_next: int = 0
    fail_message: str = FAIL_MESSAGE
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def clear(self) -> None:
        self.jobs.clear()
        self.denied.clear()
        self.fail_next = 0
        self.fail_message = FAIL_MESSAGE

    def summary(self) -> dict[str, Any]:
        states: dict[str, int] = {}
        for job in self.jobs.values():
            states[job.state] = states.get(job.state, 0) + 1
        return {"jobs": len(self.jobs), "states": states, "denied": sorted(self.denied),
                "fail_next": self.fail_next}


def encode_locator(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def decode_locator(locator: str) -> int | None:
    try:
        text = base64.b64decode(locator + "=" * (-len(locator) % 4), validate=True).decode()
    except ValueError:
        return None
    return int(text) if text.isdigit() else None


class Bulk:
    def __init__(self, api: Api) -> None:
        self.api = api
        self.emu: SalesforceEmulator = api.emu

    @property
    def state(self) -> BulkState:
        return self.emu.bulk

    def _job(self, call: Call) -> QueryJob:
        job = self.state.jobs.get(call.request.path_params["job"])
        if job is None or job.owner != call.session.username:
            raise SFError.one(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    # -- routes --------------------------------------------------------------------------
    def create(self, call: Call) -> Response:
        from sandbox.salesforce.api import body_object

        if call.session.username.lower() in self.state.denied:
            raise SFError.one(403, "API_DISABLED_FOR_ORG",
                              "The REST API is not enabled for this Organization.")
        body = body_object(call.request)
        operation = body.get("operation")
        soql = body.get("query")
        if operation not in OPERATIONS:
            raise SFError.one(400, "INVALIDJOB", f"Invalid operation: {operation!r}; a query "
                              "job takes query or queryAll")
        if not isinstance(soql, str) or not soql.strip():
            raise SFError.one(400, "INVALIDJOB", "A query job needs a query")
        delimiter = str(body.get("columnDelimiter") or "COMMA")
        ending = str(body.get("lineEnding") or "LF")
        if delimiter not in DELIMITERS or ending not in LINE_ENDINGS:
            raise SFError.one(400, "INVALIDJOB", "Invalid columnDelimiter or lineEnding")
        if str(body.get("contentType") or "CSV") != "CSV":
            raise SFError.one(400, "INVALIDJOB", "contentType: only CSV is supported")
        emu = self.emu
        compiled = compile_query(emu.store, soql, include_deleted=operation == "queryAll",
                                 now=emu.now())
        if compiled.children:
            raise SFError.one(400, "INVALIDJOB", UNSUPPORTED[0])
        if compiled.count_only:
            raise SFError.one(400, "INVALIDJOB", UNSUPPORTED[1])
        id15 = f"750Wb{next(self.state.numbers):010d}"
        now = emu.now()
        job = QueryJob(id15 + checksum(id15), call.session.username, call.session.user_id,
                       operation, soql, compiled.table.sobject.name, call.version, now,
                       compiled, compiled.matching_ids(), delimiter, ending,
                       polls_left=int(emu.options.bulk_job_polls), modified=now)
        if self.state.fail_next > 0:
            self.state.fail_next -= 1
            job.error = self.state.fail_message
        self.state.jobs[job.id] = job
        return Response.json(200, job.info())

    def get(self, call: Call) -> Response:
        job = self._job(call)
        if job.state in ("UploadComplete", "InProgress"):
            if job.polls_left > 0:
                job.polls_left -= 1
                job.state = "InProgress"
            else:
                job.state = "Failed" if job.error is not None else "JobComplete"
                if job.state == "Failed":
                    job.ids = []
            job.modified = self.emu.now()
        return Response.json(200, job.info())

    def abort(self, call: Call) -> Response:
        from sandbox.salesforce.api import body_object

        job = self._job(call)
        if body_object(call.request).get("state") != "Aborted":
            raise SFError.one(400, "INVALIDJOBSTATE", "A query job can only be set to Aborted")
        if job.state in ("JobComplete", "Failed", "Aborted"):
            raise SFError.one(400, "INVALIDJOBSTATE", f"Job is already {job.state}")
        job.state, job.ids, job.modified = "Aborted", [], self.emu.now()
        return Response.json(200, job.info())

    def delete(self, call: Call) -> Response:
        job = self._job(call)
        del self.state.jobs[job.id]
        return Response.empty(204)

    def results(self, call: Call) -> Response:
        job = self._job(call)
        if call.version != job.version:
            raise SFError.one(409, "INVALIDJOBSTATE", "Use the API version the job was "
                              f"created with ({job.version}) to get its results")
        if job.state != "JobComplete":
            raise SFError.one(400, "INVALIDJOBSTATE", f"Job state is {job.state}: results "
                              "exist only for a JobComplete job")
        request = call.request
        start = 0
        locator = request.param("locator")
        if locator:
            decoded = decode_locator(locator)
            if decoded is None or decoded >= len(job.ids):
                raise SFError.one(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
            start = decoded
        wanted = request.param("maxRecords")
        try:
            size = int(wanted) if wanted else DEFAULT_MAX_RECORDS
        except ValueError:
            raise SFError.one(400, "INVALIDJOB", f"maxRecords: not a number: {wanted!r}"
                              ) from None
        if size < 1:
            raise SFError.one(400, "INVALIDJOB", "maxRecords must be positive")
        end = min(start + size, len(job.ids))
        compiled = job.compiled
        body = render_page(compiled.node, compiled.table, compiled.store,
                           compiled.include_deleted, job.ids[start:end],
                           delimiter=job.column_delimiter, line_ending=job.line_ending)
        headers = {"Content-Type": "text/csv",
                   "Sforce-Locator": encode_locator(end) if end < len(job.ids) else "null",
                   "Sforce-NumberOfRecords": str(end - start)}
        return Response(200, body, headers)


def register_bulk_routes(emu: SalesforceEmulator, api: Api) -> Bulk:
    from sandbox.salesforce.api import V

    bulk = Bulk(api)
    g = api.guarded
    job = r"/jobs/query/(?P<job>\w+)"
    emu.add_route("POST", V + "/jobs/query/?", "bulk2_create", g(bulk.create))
    emu.add_route("GET", V + job + "/?", "bulk2_job", g(bulk.get))
    emu.add_route("PATCH", V + job + "/?", "bulk2_abort", g(bulk.abort))
    emu.add_route("DELETE", V + job + "/?", "bulk2_delete", g(bulk.delete))
    emu.add_route("GET", V + job + "/results/?", "bulk2_results", g(bulk.results))
    return bulk
