"""The ``transform``, ``filter`` and ``database`` blocks as pure functions the runner calls.

Each takes the block as applied (validated by ``integrations/definitions.py``) and the
execution's context (``trigger``, ``config``, ``blocks``, ``user``). They raise
:class:`~embedded_ui.engine.mapping.MappingError` or
:class:`~embedded_ui.engine.destinations.DestinationError`, whose messages are safe to record.
Rendering runs in a worker thread: it is bounded (engine/mapping.py) but may take a moment
on a large input, and the event loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from embedded_ui.engine.destination_inserts import DestinationPool
from embedded_ui.engine.destinations import DestinationError
from embedded_ui.engine.mapping import MappingError, render, truthy

__all__ = ["run_database", "run_filter", "run_transform"]


async def run_transform(block: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
    """The block's ``output`` rendered against the context: the block's output."""
    return await asyncio.to_thread(render, block["output"], context)


def run_filter(block: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """True: the execution continues; False: it stops, succeeded, later blocks skipped."""
    return truthy(block["condition"], context)


async def run_database(
    block: Mapping[str, Any], context: Mapping[str, Any], url: str, pool: DestinationPool
) -> dict[str, Any]:
    """Insert the block's ``row`` or ``rows`` into its table at ``url`` (the opened URL of
    the block's destination), all or none; returns ``{"inserted": n, "table": ...}``."""
    if "row" in block:
        rows = [await asyncio.to_thread(render, block["row"], context)]
    else:
        rows = await asyncio.to_thread(render, block["rows"], context)
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        got = type(rows).__name__ if not isinstance(rows, list) else "a list with non-objects"
        raise MappingError(f"rows: expected a list of objects, got {got}")
    try:
        inserted = await pool.insert(url, block["table"], rows)
    except DestinationError as exc:
        raise DestinationError(f"destination {block['destination']!r}: {exc.message}") from None
    return {"inserted": inserted, "table": block["table"]}
