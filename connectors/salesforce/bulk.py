"""Big pulls through a Bulk API 2.0 query job (simple-salesforce `sf.bulk2`).

A job is three kinds of request, each one call under the client's discipline (guard, bounded
re-login, failure mapping, retries): create (POST jobs/query), state reads (GET
jobs/query/{id}) until JobComplete, and result pages (GET .../results?locator=&maxRecords=)
followed through `Sforce-Locator` until it says "null" (reference §6 "Bulk").

simple-salesforce's `query()` generator wraps all three in one generator that polls at a
fixed `wait` and cannot re-read a page after a transient failure, so the connector drives
the SDK's per-request job client (`SFBulk2Type._client`: `create_job`, `get_job`,
`get_query_results`) instead. `sf.bulk2` copies the session id when it is accessed and never
refreshes it (issue #272), so it is accessed again for every request: after a re-login the
next request carries the new session.

Result pages (up to `PAGE_ROWS` rows, simple-salesforce's default page) are streamed by the
SDK's `download_job_data` into a temporary CSV file (`sf.bulk2...query()` would hold each
page as one string: issues #428, #629), the next one in a helper thread while this one is
read, then read row by row into records shaped like the REST JSON ones (parents as nested
objects, null for an empty value, typed booleans, numbers and datetimes; `record_builder`
plans a page's columns once from its header), so `records.deal` turns both into the same
`Deal`. A job that ends Failed or Aborted
raises `BulkJobFailed` (retryable) with Salesforce's errorMessage: never an empty result
(issues #382, #502).
"""

from __future__ import annotations

import contextlib
import contextvars
import csv
import functools
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from simple_salesforce.api import Salesforce
from simple_salesforce.bulk2 import Operation, SFBulk2Handler, _Bulk2Client

from connectors.errors import RetryableError
from connectors.salesforce.client import Client, log

PAGE_ROWS = 50_000  # simple-salesforce's DEFAULT_QUERY_PAGE_SIZE (reference: Key numbers)
CHUNK = 256 * 1024  # bytes per read of a result page streamed to its file
MAX_POLL = 30.0  # seconds between state reads, at most
MAX_WAIT = 3600.0  # a job not done after an hour is given up
DONE, FAILED = "JobComplete", ("Failed", "Aborted")
BOOLEAN_TYPES = frozenset({"boolean"})
NUMBER_TYPES = frozenset({"double", "currency", "percent", "int", "long"})
# Standard fields the pull selects whose JSON value is not a string (records.py reads them).
STANDARD_TYPES = {"amount": "currency", "isclosed": "boolean", "iswon": "boolean",
                  "isdeleted": "boolean", "owner.isactive": "boolean",
                  "createddate": "datetime", "systemmodstamp": "datetime"}


class BulkJobFailed(RetryableError):
    """The query job ended Failed or Aborted (or never finished): the pull has no complete
    result. Retryable: the tick ends in error and the next one (soon) pulls again."""


def jobs(sf: Salesforce, sobject: str) -> _Bulk2Client:
    """The SDK's job client for `sobject`, with the session id `sf` holds now."""
    handler = sf.bulk2
    if not isinstance(handler, SFBulk2Handler):
        raise TypeError("simple-salesforce's bulk2 attribute is not a Bulk 2.0 handler")
    kind = getattr(handler, sobject)
    client: _Bulk2Client = kind._client
    return client


def query_pages(client: Client, sobject: str, soql: str, *, include_deleted: bool,
                poll: float, sleep: Callable[[float], None] = time.sleep,
                page_rows: int = PAGE_ROWS) -> Iterator[Path]:
    """The result pages of one query job, in order (create, poll, read), each streamed by
    the SDK into a CSV file in a private temporary directory: a page is never held in
    memory, and its file is removed once the next one is asked for. While the caller reads
    a page, the next one is downloaded by one helper thread (its own call under the same
    discipline), so the CRM renders it meanwhile: at most two page files exist at once."""
    operation = Operation.query_all if include_deleted else Operation.query
    job: dict[str, Any] = client.call(
        "bulk2.create", lambda sf: jobs(sf, sobject).create_job(operation, soql))
    job_id = str(job["id"])
    wait_for(client, sobject, job_id, poll=poll, sleep=sleep)
    with tempfile.TemporaryDirectory(prefix="winback-bulk-") as folder, \
            ThreadPoolExecutor(1, thread_name_prefix="winback-bulk") as pool:

        def fetch(locator: str) -> Future[dict[str, Any]]:
            call = functools.partial(client.call, "bulk2.results",
                                     _download(sobject, job_id, locator, page_rows, folder),
                                     items=lambda r: int(r["number_of_records"]))
            return pool.submit(contextvars.copy_context().run, call)

        pending: Future[dict[str, Any]] | None = fetch("")
        try:
            while pending is not None:
                page = pending.result()  # the download's error, if any, is raised here
                locator = str(page.get("locator") or "")
                pending = fetch(locator) if locator else None
                path = Path(str(page["file"]))
                try:
                    yield path
                finally:
                    path.unlink(missing_ok=True)
        finally:
            if pending is not None:  # the caller stopped early: let the download end
                pending.cancel()
                with contextlib.suppress(Exception):
                    pending.result()


def _download(sobject: str, job_id: str, locator: str, rows: int, folder: str
              ) -> Callable[[Salesforce], dict[str, Any]]:
    def fetch(sf: Salesforce) -> dict[str, Any]:
        return dict(jobs(sf, sobject).download_job_data(folder, job_id, locator, rows,
                                                        chunk_size=CHUNK))
    return fetch


def wait_for(client: Client, sobject: str, job_id: str, *, poll: float,
             sleep: Callable[[float], None]) -> None:
    """Read the job's state until JobComplete: first after `poll` seconds, then twice as
    long each time (at most MAX_POLL), so a long job costs few calls."""
    delay, waited = poll, 0.0
    while True:
        sleep(delay)
        waited += delay
        info: dict[str, Any] = client.call(
            "bulk2.job", lambda sf: jobs(sf, sobject).get_job(job_id, True))
        state = str(info.get("state"))
        if state == DONE:
            return
        if state in FAILED:
            message = str(info.get("errorMessage") or "no errorMessage")
            raise BulkJobFailed(f"Bulk API query job {job_id} ended {state}: {message}",
                                connection=client.settings.name, endpoint="bulk2.job")
        if waited >= MAX_WAIT:
            raise BulkJobFailed(f"Bulk API query job {job_id} still {state} after "
                                f"{int(waited)} s", connection=client.settings.name,
                                endpoint="bulk2.job")
        delay = min(max(delay * 2, 1.0), MAX_POLL)


def _typed(value: str, kind: str | None) -> Any:
    if value == "":
        return None  # Bulk CSV has no null: an empty value is one
    if kind in BOOLEAN_TYPES:
        return value.lower() == "true"
    if kind == "datetime" and value.endswith("Z"):
        return value[:-1] + "+0000"  # REST's form of the same instant (records.py reads both)
    if kind in NUMBER_TYPES:
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if kind in ("int", "long") and number.is_integer() else number
    return value


def records(page: Path, types: Mapping[str, str]) -> Iterator[dict[str, Any]]:
    """The rows of one CSV page file as REST-shaped records, read row by row. `types`:
    lower-case column (a field or `Parent.Field`) -> Salesforce field type, for the columns
    that are not text."""
    with page.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        build = record_builder(header, types)
        for row in reader:
            yield build(row)


Builder = Callable[[list[str]], dict[str, Any]]


BOOLEANS: dict[str, bool | None] = {"true": True, "false": False, "": None}


def _boolean(value: str) -> bool | None:
    if value in BOOLEANS:
        return BOOLEANS[value]
    return value.lower() == "true"


def _datetime(value: str) -> str | None:
    if value[-1:] == "Z":
        return value[:-1] + "+0000"
    return value or None


def _converter(kind: str | None) -> Callable[[str], Any] | None:
    """None for a text column (an empty value is null, any other is kept as it is); the
    same values as `_typed`, with the common kinds specialised (they run once per cell)."""
    if kind is None:
        return None
    if kind in BOOLEAN_TYPES:
        return _boolean
    if kind == "datetime":
        return _datetime
    return lambda value: _typed(value, kind)


def record_builder(header: list[str], types: Mapping[str, str]) -> Builder:
    """`row -> record` for one page's header, planned once: the text columns of the record
    itself in one comprehension, the typed ones converted, each parent's columns grouped
    (a parent whose columns are all empty is null, as REST says of a null lookup)."""
    width = len(header)
    text: list[tuple[int, str]] = []
    typed: list[tuple[int, str, Callable[[str], Any]]] = []
    parents: dict[str, list[tuple[int, str, Callable[[str], Any] | None]]] = {}
    for index, column in enumerate(header):
        path = column.split(".")
        convert = _converter(types.get(column.lower()))
        if len(path) > 1:
            parents.setdefault(path[0], []).append((index, ".".join(path[1:]), convert))
        elif convert is None:
            text.append((index, column))
        else:
            typed.append((index, column, convert))
    groups = list(parents.items())
    kinds = [types.get(column.lower()) for column in header]
    paths = [column.split(".") for column in header]

    def build(row: list[str]) -> dict[str, Any]:
        if len(row) != width:  # a short or long row: the general (slower) reading
            return _record(paths, kinds, row)
        record: dict[str, Any] = {key: row[index] or None for index, key in text}
        for index, key, convert in typed:
            record[key] = convert(row[index])
        for name, columns in groups:
            fields = {key: row[index] or None if convert is None else convert(row[index])
                      for index, key, convert in columns}
            record[name] = fields if any(v is not None for v in fields.values()) else None
        return record
    return build


def _record(paths: list[list[str]], kinds: list[str | None], row: list[str]
            ) -> dict[str, Any]:
    record: dict[str, Any] = {}
    parents: dict[str, dict[str, Any]] = {}
    for path, kind, value in zip(paths, kinds, row, strict=False):
        typed = _typed(value, kind)
        if len(path) == 1:
            record[path[0]] = typed
            continue
        parents.setdefault(path[0], {})[".".join(path[1:])] = typed
    for name, fields in parents.items():
        # A null lookup: every column of the parent is empty (REST: the parent is null).
        record[name] = fields if any(v is not None for v in fields.values()) else None
    return record


class BulkPolicy:
    """When a pull goes through Bulk: above `threshold` rows (None: never), while allowed.
    Salesforce refusing a job (the user lacks the permission) turns it off for the
    connector's life; `refuse` says so in the log once."""

    def __init__(self, connection: str, threshold: int | None, poll: float,
                 types: Callable[[], Mapping[str, str]]) -> None:
        self.connection = connection
        self.threshold = threshold
        self.poll = poll
        self.types = types
        self.refused: str | None = None  # why Bulk is not allowed, once Salesforce said so

    def wants(self, rows: int) -> bool:
        return self.threshold is not None and self.refused is None and rows > self.threshold

    def refuse(self, reason: str) -> None:
        if self.refused is None:
            self.refused = reason
            log().warning("crm.bulk_unavailable", connection=self.connection,
                          crm="salesforce", reason=reason, fallback="rest")
