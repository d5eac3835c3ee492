"""The ``filter`` and ``database`` blocks as functions the runner calls (a ``transform``'s
output is its rendered ``output``: blocks.py).

Each takes the block as applied (validated by ``integrations/definitions.py``); the database
block takes its inputs as ``blocks.render_inputs`` rendered them (in a worker thread), the
filter the execution's context (``trigger``, ``config``, ``blocks``, ``user``). They raise
:class:`~embedded_ui.engine.mapping.MappingError` or
:class:`~embedded_ui.engine.destinations.DestinationError`, whose messages are safe to record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from embedded_ui.engine.destination_inserts import DestinationPool
from embedded_ui.engine.destinations import DestinationError
from embedded_ui.engine.mapping import MappingError, truthy

__all__ = ["run_database", "run_filter"]


def run_filter(block: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    """True: the execution continues; False: it stops, succeeded, later blocks skipped."""
    return truthy(block["condition"], context)


async def run_database(
    block: Mapping[str, Any], inputs: Mapping[str, Any], url: str, pool: DestinationPool
) -> dict[str, Any]:
    """Insert the rendered ``row`` or ``rows`` into the block's table at ``url`` (the opened
    URL of the block's destination), all or none; returns ``{"inserted": n, "table": ...}``."""
    rows = [inputs["row"]] if "row" in inputs else inputs["rows"]
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        got = type(rows).__name__ if not isinstance(rows, list) else "a list with non-objects"
        raise MappingError(f"rows: expected a list of objects, got {got}")
    try:
        inserted = await pool.insert(url, block["table"], rows)
    except DestinationError as exc:
        raise DestinationError(f"destination {block['destination']!r}: {exc.message}") from None
    return {"inserted": inserted, "table": block["table"]}
