"""structlog set-up: JSON off a terminal, console on one; secrets redacted in every line.

Every decision is an event with a stable name (`deal.enrolled`, `task.written`,
`cadence.stopped`, `owner.fallback`, `sync.done`, ...): the audit trail, the metrics and the
tests read the same names.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_KEYS = re.compile(r"(authorization|access_token|refresh_token|client_secret|password|"
                         r"security_token|api_key|session_id|sessionid|token|secret)", re.I)
SECRET_IN_TEXT = re.compile(
    r"(?i)(bearer\s+|access_token=|refresh_token=|client_secret=|password=|sessionId>)"
    r"[^\s&<\"']+")
REDACTED = "[redacted]"
_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Values that must never appear in a log line (credentials read from the environment)."""
    if value and len(value) >= 4:
        _extra_secrets.add(value)


def scrub(text: str) -> str:
    text = SECRET_IN_TEXT.sub(lambda m: m.group(1) + REDACTED, text)
    for secret in _extra_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact_value(key: str, value: Any) -> Any:
    if SECRET_KEYS.search(key) and not key.endswith(("_key_field", "key_property")):
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    return value


def redact(_logger: Any, _name: str, event_dict: MutableMapping[str, Any]
           ) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        event_dict[key] = _redact_value(key, event_dict[key])
    return event_dict


def _stderr_logger(*_args: Any) -> structlog.PrintLogger:
    # The stderr of the moment a logger is made, not of the moment logging was configured: a
    # command run in-process (tests, CliRunner) replaces and closes its own stderr.
    return structlog.PrintLogger(sys.stderr)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that always writes to the current sys.stderr (see `_stderr_logger`)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure(level: str | None = None, *, force_json: bool | None = None) -> None:
    level_name = (level or os.environ.get("WINBACK_LOG_LEVEL") or "INFO").upper()
    numeric = logging.getLevelNamesMapping().get(level_name, logging.INFO)
    json_lines = force_json if force_json is not None else (
        os.environ.get("LOG_FORMAT", "").lower() == "json"
        or (not sys.stderr.isatty() and os.environ.get("LOG_FORMAT", "").lower() != "console"))
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        redact,
    ]
    renderer: Any
    if json_lines:
        shared.append(structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)))
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    # Library logs (APScheduler, SQLAlchemy, Alembic, urllib3) through the same chain, named
    # by their logger. At INFO only winback's own events are written: a library's INFO lines
    # ("Context impl SQLiteImpl", "Added job ...") are not events; its warnings still are.
    # WINBACK_LOG_LEVEL=DEBUG shows the libraries' INFO lines too (never their DEBUG ones:
    # those can carry request headers).
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared], processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer])
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if numeric < logging.INFO else max(numeric, logging.WARNING))
    for noisy in ("urllib3", "apscheduler.executors.default", "alembic"):
        logging.getLogger(noisy).setLevel(max(numeric, logging.WARNING))
    # APScheduler only ticks (worker/service/scheduler.py): a tick longer than the interval is
    # skipped by design ("maximum number of running instances reached") and the tick's own events
    # say what happened, so below DEBUG it speaks only of errors.
    logging.getLogger("apscheduler").setLevel(
        logging.INFO if numeric < logging.INFO else max(numeric, logging.ERROR))


def get_logger(name: str = "winback") -> Any:
    return structlog.get_logger(name)
