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
SERVICE_URLS = frozenset({"sandbox_url"})


class MissingValue(KeyError):
    """A template names a value nobody supplied."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def fill_text(
    template: str,
    values: Mapping[str, Any],
    *,
    url: bool = False,
    verbatim: frozenset[str] = frozenset(),
) -> str:
    """``{name}`` replaced by its value; with ``url``, percent-encoded unless the name is in
    ``verbatim`` (the service's own settings, whole URLs it trusts)."""
    out: list[str] = []
    for literal, name, _spec, _conversion in _FORMATTER.parse(template):
        out.append(literal)
        if name is None:
            continue
        if name not in values or values[name] is None:
            raise MissingValue(name)
        text = str(values[name])
        out.append(quote(text, safe="") if url and name not in verbatim else text)
    return "".join(out)


def fill_url(base_url: str, path: str, values: Mapping[str, Any]) -> str:
    """``base_url`` + ``path``. ``sandbox_url`` is a trusted setting and goes in verbatim;
    every other value is percent-encoded (a credential value checked against a strict pattern
    still cannot add a host, a path segment or a query)."""
    return fill_text(base_url, values, url=True, verbatim=SERVICE_URLS) + fill_text(
        path, values, url=True
    )


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
