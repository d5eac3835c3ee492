"""Checking the values a user gives for a workflow's configurable fields."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from embedded_ui.errors import Unprocessable

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_TEXT = 2000


def _convert(field: Mapping[str, Any], value: Any) -> Any:
    kind = field["type"]
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError("expected true or false")
    if kind == "number":
        if isinstance(value, bool):
            raise ValueError("expected a number")
        if isinstance(value, int | float):
            return value
        if isinstance(value, str):
            try:
                return float(value) if "." in value else int(value)
            except ValueError:
                raise ValueError("expected a number") from None
        raise ValueError("expected a number")
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError("expected text")
    text = str(value).strip()
    if len(text) > MAX_TEXT:
        raise ValueError(f"at most {MAX_TEXT} characters")
    if kind == "url":
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("expected an http(s) URL")
    elif kind == "email" and not _EMAIL.match(text):
        raise ValueError("expected an email address")
    elif kind == "select" and field.get("options"):
        allowed = {str(option["value"]): option["value"] for option in field["options"]}
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return allowed[text]
    return text


def check_values(
    workflow_id: str, fields: Sequence[Mapping[str, Any]], given: Mapping[str, Any]
) -> dict[str, Any]:
    """Return the complete, typed values for one workflow (``blockId.name`` → value), or raise
    :class:`Unprocessable` naming every field that is missing, unknown or invalid."""
    known = {f"{f['blockId']}.{f['name']}": f for f in fields}
    problems = [
        f"{workflow_id}/{name}: not a configurable field" for name in given if name not in known
    ]
    values: dict[str, Any] = {}
    for name, field in known.items():
        raw = given.get(name, field.get("default"))
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if field["required"]:
                problems.append(f"{workflow_id}/{name}: {field['displayName']} is required")
            continue
        try:
            values[name] = _convert(field, raw)
        except ValueError as exc:
            problems.append(f"{workflow_id}/{name}: {field['displayName']}: {exc}")
    if problems:
        raise Unprocessable("Invalid configuration: " + "; ".join(problems) + ".", fields=problems)
    return values
