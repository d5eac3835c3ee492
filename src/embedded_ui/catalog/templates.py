"""Fill the catalog's ``{name}`` templates with a credential's values and the service's own
(``sandbox_url``).

URLs get each value percent-encoded (a value can never add a path segment, a query or a host);
headers and bodies get it as is. A body string that is exactly one placeholder takes the value
with its type, so ``"{order_id}"`` can become the number 42.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

_FORMATTER = string.Formatter()


class MissingValue(KeyError):
    """A template names a value nobody supplied."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def fill_text(template: str, values: Mapping[str, Any], *, url: bool = False) -> str:
    out: list[str] = []
    for literal, name, _spec, _conversion in _FORMATTER.parse(template):
        out.append(literal)
        if name is None:
            continue
        if name not in values or values[name] is None:
            raise MissingValue(name)
        text = str(values[name])
        out.append(quote(text, safe="") if url else text)
    return "".join(out)


def fill_url(base_url: str, path: str, values: Mapping[str, Any]) -> str:
    """``base_url`` + ``path``. Service values (such as ``sandbox_url``) are trusted settings
    and go in verbatim; every other value is percent-encoded."""
    return _fill_trusted_base(base_url, values) + fill_text(path, values, url=True)


def _fill_trusted_base(base_url: str, values: Mapping[str, Any]) -> str:
    out: list[str] = []
    for literal, name, _spec, _conversion in _FORMATTER.parse(base_url):
        out.append(literal)
        if name is None:
            continue
        if name not in values or values[name] is None:
            raise MissingValue(name)
        # A base URL's placeholders are either the service's own URL (whole, trusted) or a
        # credential value checked against a strict pattern; encode the latter regardless.
        text = str(values[name])
        out.append(text if name == "sandbox_url" else quote(text, safe=""))
    return "".join(out)


def fill(template: Any, values: Mapping[str, Any]) -> Any:
    """A JSON value with every string filled (headers, query parameters, bodies)."""
    if isinstance(template, str):
        parsed = list(_FORMATTER.parse(template))
        if len(parsed) == 1 and parsed[0][0] == "" and parsed[0][1]:
            name = parsed[0][1]
            if name not in values or values[name] is None:
                raise MissingValue(name)
            return values[name]
        return fill_text(template, values)
    if isinstance(template, Mapping):
        return {key: fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [fill(item, values) for item in template]
    return template
