"""Theming the integrations page: a closed set of CSS custom properties, each value matched
against a strict pattern, turned into a stylesheet served from the service's own origin (the
page's CSP allows no inline style).

A theme is a flat mapping of option names to values; ``dark.<name>`` keys set the colours
used in dark mode. ``scheme`` (``light``, ``dark`` or ``auto``) is not a variable: the page
applies it as an attribute.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from embedded_ui.errors import InvalidRequest

_COLOUR = re.compile(
    r"#[0-9a-fA-F]{3,8}"
    r"|rgba?\(\s*\d{1,3}%?(\s*,\s*\d{1,3}%?){2}(\s*,\s*(0|1|0?\.\d{1,3}))?\s*\)"
    r"|[a-zA-Z]{3,20}"
)
_RADIUS = re.compile(r"(0|[0-9]{1,2}(\.[0-9])?(px|rem|em))")
_FONT = re.compile(r"[A-Za-z0-9 ,'\"-]{1,120}")

COLOURS: dict[str, str] = {
    "accent": "--eui-accent",
    "accentText": "--eui-accent-fg",
    "background": "--eui-bg",
    "surface": "--eui-surface",
    "text": "--eui-fg",
    "muted": "--eui-muted",
    "border": "--eui-border",
    "danger": "--eui-error",
}
DENSITY = {"compact": "8px", "comfortable": "12px", "spacious": "16px"}
SCHEMES = ("auto", "light", "dark")
KEYS = (*COLOURS, "radius", "font", "density", "scheme", *(f"dark.{name}" for name in COLOURS))
MAX_VALUE = 120


def _declaration(name: str, value: str) -> tuple[str, str]:
    if name in COLOURS:
        if not _COLOUR.fullmatch(value) or value.lower().startswith("url"):
            raise InvalidRequest(
                f"theme.{name}: expected a colour (#rgb, #rrggbb, rgb(...) or a colour name).",
                field=f"theme.{name}",
            )
        return COLOURS[name], value
    if name == "radius":
        if not _RADIUS.fullmatch(value):
            raise InvalidRequest(
                "theme.radius: expected a length such as 8px or 0.5rem.", field="theme.radius"
            )
        return "--eui-radius", value
    if name == "font":
        if not _FONT.fullmatch(value):
            raise InvalidRequest(
                "theme.font: expected a font-family list (letters, digits, spaces, quotes, "
                "commas, hyphens).",
                field="theme.font",
            )
        return "--eui-font", value
    if value not in DENSITY:
        raise InvalidRequest(
            f"theme.density: expected one of {', '.join(DENSITY)}.", field="theme.density"
        )
    return "--eui-space", DENSITY[value]


def parse_theme(raw: Mapping[str, Any]) -> dict[str, str]:
    """The known options of ``raw`` (unknown keys are refused), values checked."""
    theme: dict[str, str] = {}
    for name, value in raw.items():
        if name not in KEYS:
            raise InvalidRequest(
                f"theme: unknown option {name!r}; expected some of {', '.join(KEYS)}.",
                field="theme",
            )
        if not isinstance(value, str) or not 0 < len(value) <= MAX_VALUE:
            raise InvalidRequest(
                f"theme.{name}: expected text of 1 to {MAX_VALUE} characters.",
                field=f"theme.{name}",
            )
        if name == "scheme":
            if value not in SCHEMES:
                raise InvalidRequest(
                    f"theme.scheme: expected one of {', '.join(SCHEMES)}.", field="theme.scheme"
                )
        else:
            _declaration(name.removeprefix("dark."), value)
        theme[name] = value
    return theme


def theme_css(theme: Mapping[str, str]) -> str:
    """The stylesheet for a theme already checked by :func:`parse_theme`."""
    light = [_declaration(k, v) for k, v in theme.items() if k not in ("scheme",) and "." not in k]
    dark = [_declaration(k[5:], v) for k, v in theme.items() if k.startswith("dark.")]
    css = ""
    if light:
        css += ":root{" + "".join(f"{n}:{v};" for n, v in light) + "}\n"
    if dark:
        body = "".join(f"{n}:{v};" for n, v in dark)
        css += "@media (prefers-color-scheme: dark){:root:not([data-scheme=light]){" + body + "}}\n"
        css += ":root[data-scheme=dark]{" + body + "}\n"
    return css
