"""Structured logging. Secrets are kept out by construction (nothing logs a header or body);
the redactor is a second line of defence for fields whose names suggest a secret."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

_SECRET_WORDS = ("token", "secret", "password", "authorization", "api_key", "apikey", "credential")
_SAFE_SUFFIXES = ("_id", "_type", "expires_at")


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        lowered = key.lower()
        if any(word in lowered for word in _SECRET_WORDS) and not lowered.endswith(_SAFE_SUFFIXES):
            event[key] = "[redacted]"
    return event


def configure_logging(level: str, fmt: str) -> None:
    logging.basicConfig(level=level, format="%(message)s", force=True)
    # Alembic narrates every start at INFO even when there is nothing to migrate.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # httpx and httpcore log every outbound URL at INFO/DEBUG; some apps take credentials in
    # the query string (and OAuth redirects carry codes), so those URLs never reach the logs.
    # aiohttp (webhook deliveries) is held to the same level.
    for name in ("httpx", "httpcore", "aiohttp"):
        logging.getLogger(name).setLevel(logging.WARNING)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
