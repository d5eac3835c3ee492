"""Where the shipped assets live: inside the wheel, or at the top of a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).parent


def _asset_dir(name: str) -> Path:
    installed = _PACKAGE / f"_{name}"
    return installed if installed.is_dir() else _PACKAGE.parents[1] / name


STATIC_DIR = _asset_dir("static")
TEMPLATES_DIR = _asset_dir("templates")
EXAMPLES_DIR = _asset_dir("examples")
