"""axe-core (from npm, pinned in e2e/package.json and installed by scripts/bootstrap --dev)
run inside a page or frame: WCAG 2.0/2.1 A and AA rules, every violation reported."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Frame, Page

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@cache
def _source() -> str:
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run scripts/bootstrap --dev (npm ci in e2e/)")
    return AXE.read_text()


def violations(target: Page | Frame) -> list[dict[str, Any]]:
    """Each violation as ``{id, impact, help, nodes: [selector, ...]}``. The script is evaluated
    through the DevTools protocol, which the pages' strict CSP does not govern."""
    if not target.evaluate("() => typeof window.axe === 'object'"):
        target.evaluate(_source())
    found: list[dict[str, Any]] = target.evaluate(
        """tags => axe.run(document, {runOnly: {type: 'tag', values: tags}}).then(r =>
            r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                    nodes: v.nodes.map(n => n.target.join(' '))})))""",
        TAGS,
    )
    return found


def assert_accessible(target: Page | Frame, what: str) -> None:
    found = violations(target)
    assert not found, f"axe found violations in {what}:\n{json.dumps(found, indent=2)}"
