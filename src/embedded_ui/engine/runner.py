"""Runs claimed executions: loads what each needs in one query per batch, runs its blocks in
order, and says what became of the attempt (docs/engine.md, "Execution lifecycle")."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select

from embedded_ui.engine.backoff import next_delay
from embedded_ui.engine.blocks import (
    BlockFailed,
    Job,
    StopExecution,
    Tools,
    render_inputs,
    run_block,
)
from embedded_ui.engine.queue import Claimed, ErrorRecord, Finished
from embedded_ui.store import (
    Installation,
    Integration,
    ParentWorkflow,
    Scope,
    User,
    WorkflowVersion,
    iso_ms,
    utcnow,
)

log = structlog.get_logger(__name__)

_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api[_-]?key|authorization|cookie", re.I)
REDACTED = "[redacted]"


def redact(value: Any) -> Any:
    """The value with every field whose name says it holds a secret replaced, for the logs."""
    if isinstance(value, Mapping):
        return {k: REDACTED if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def block_input(
    block: Mapping[str, Any], inputs: Mapping[str, Any], context: Mapping[str, Any]
) -> Any:
    """What the block was given, for the logs: its inputs as ``render_inputs`` rendered them
    (the same values the block runs with), redacted."""
    shown = dict(inputs)
    if block["type"] == "stream_data" and "data" not in shown:
        # The trigger's data is sent as it came, so it is shown as it came: a "{{ }}" in it
        # is the sender's text, never a template evaluated against the run's context.
        shown["data"] = context["trigger"]
    return redact(shown)


@dataclass(frozen=True, slots=True)
class Loaded:
    """An execution's installation, user and workflow version."""

    active: bool
    values: dict[str, Any]
    credential_ids: dict[str, str]
    username: str
    app: str
    definition: dict[str, Any]


def configured(block: Mapping[str, Any], block_values: Mapping[str, Any]) -> dict[str, Any]:
    """The block with each ``{configurable: ...}`` marker replaced by the user's value."""

    def place(name: str, value: Any) -> Any:
        if isinstance(value, Mapping) and "configurable" in value:
            return block_values.get(name, value["configurable"].get("default"))
        return value

    result = {name: place(name, value) for name, value in block.items() if name != "inputs"}
    if "inputs" in block:
        result["inputs"] = {name: place(name, v) for name, v in block["inputs"].items()}
    return result


class Runner:
    def __init__(self, tools: Tools, rng: random.Random | None = None) -> None:
        self._tools = tools
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not a secret
        self._versions: dict[tuple[str, int], dict[str, Any]] = {}

    async def load(self, batch: Sequence[Claimed]) -> dict[str, Loaded]:
        """What each execution of the batch needs, by execution id, in one query."""
        if not batch:
            return {}
        statement = (
            select(
                Installation.id,
                Installation.active,
                Installation.values,
                Installation.credential_ids,
                User.username,
                Integration.app,
                ParentWorkflow.active,
            )
            .join(User, User.id == Installation.user_id)
            .join(ParentWorkflow, ParentWorkflow.id == Installation.workflow_id)
            .join(Integration, Integration.id == ParentWorkflow.integration_id)
            .where(Installation.id.in_({c.installation_id for c in batch}))
        )
        async with self._tools.engine.connect() as connection:
            rows = {row[0]: row for row in (await connection.execute(statement)).all()}
            missing = {
                (c.workflow_id, c.version_number)
                for c in batch
                if (c.workflow_id, c.version_number) not in self._versions
            }
            if missing:
                versions = await connection.execute(
                    select(
                        WorkflowVersion.workflow_id,
                        WorkflowVersion.number,
                        WorkflowVersion.definition,
                    ).where(
                        WorkflowVersion.workflow_id.in_({w for w, _ in missing}),
                        WorkflowVersion.number.is_not(None),
                    )
                )
                for workflow_id, number, definition in versions:
                    if len(self._versions) > 5000:
                        self._versions.clear()
                    # Released versions never change, so they are kept for good.
                    self._versions[(workflow_id, number)] = definition
        loaded = {}
        for claimed in batch:
            row = rows.get(claimed.installation_id)
            definition = self._versions.get((claimed.workflow_id, claimed.version_number))
            if row is None or definition is None:
                continue
            loaded[claimed.id] = Loaded(
                active=bool(row[1] and row[6]),
                values=row[2] or {},
                credential_ids=row[3] or {},
                username=row[4],
                app=row[5],
                definition=definition,
            )
        return loaded

    async def run(self, claimed: Claimed, loaded: Loaded | None) -> Finished:
        if loaded is None:
            return self._failed(claimed, list(claimed.results), "The installation was removed.")
        if not loaded.active:
            return self._failed(
                claimed, list(claimed.results), "The workflow was deactivated before it ran."
            )
        scope = Scope(claimed.workspace_id, claimed.environment)
        job = Job(
            claimed.id,
            scope,
            claimed.user_id,
            claimed.workflow_id,
            loaded.app,
            loaded.credential_ids,
        )
        earlier = {r["blockId"]: r for r in claimed.results if r.get("status") == "succeeded"}
        context: dict[str, Any] = {
            "trigger": claimed.trigger,
            "config": loaded.values,
            "blocks": {},
            "user": {"id": claimed.user_id, "username": loaded.username},
        }
        results: list[dict[str, Any]] = []
        blocks = loaded.definition["blocks"]
        for index, raw in enumerate(blocks):
            block_id = raw["id"]
            if block_id in earlier:  # done in an earlier attempt: never repeated
                results.append(earlier[block_id])
                context["blocks"][block_id] = earlier[block_id].get("data")
                continue
            values = {
                key.split(".", 1)[1]: value
                for key, value in loaded.values.items()
                if key.startswith(f"{block_id}.")
            }
            block = configured(raw, values)
            started = utcnow()
            entry: dict[str, Any] = {
                "blockId": block_id,
                "blockName": raw.get("name", block_id),
                "blockType": raw["type"],
                "attempt": claimed.attempt,
                "startedAt": iso_ms(started),
                "input": None,  # unless the inputs render (if not, the block fails saying why)
            }
            try:
                inputs = await render_inputs(block, context)
                entry["input"] = block_input(block, inputs, context)
                output = await run_block(block, inputs, context, job, self._tools)
            except StopExecution:
                entry.update(status="succeeded", stoppedAt=iso_ms(utcnow()), data=None)
                entry["filtered"] = True
                results.append(entry)
                for rest in blocks[index + 1 :]:
                    results.append({"blockId": rest["id"], "status": "skipped"})
                return Finished(claimed, "succeeded", results)
            except BlockFailed as exc:
                entry.update(status="failed", stoppedAt=iso_ms(utcnow()), error=exc.message)
                results.append(entry)
                return self._block_failed(claimed, results, raw, exc)
            except Exception:
                log.exception("block crashed", execution=claimed.id, block=block_id)
                entry.update(status="failed", stoppedAt=iso_ms(utcnow()), error="Internal error.")
                results.append(entry)
                return self._block_failed(
                    claimed, results, raw, BlockFailed("Internal error.", retryable=True)
                )
            context["blocks"][block_id] = output
            entry.update(status="succeeded", stoppedAt=iso_ms(utcnow()), data=redact(output))
            results.append(entry)
        return Finished(claimed, "succeeded", results)

    def _block_failed(
        self,
        claimed: Claimed,
        results: list[dict[str, Any]],
        block: Mapping[str, Any],
        exc: BlockFailed,
    ) -> Finished:
        error = ErrorRecord(
            block_id=block["id"],
            block_name=str(block.get("name", block["id"])),
            block_type=block["type"],
            message=exc.message[:1000],
            occurred_at=utcnow(),
        )
        delay = (
            next_delay(
                claimed.attempt, self._tools.settings.retry_schedule, exc.retry_after, self._rng
            )
            if exc.retryable
            else None
        )
        if delay is None:
            return Finished(claimed, "failed", results, exc.message[:1000], errors=[error])
        retry_at = utcnow() + timedelta(seconds=delay)
        return Finished(claimed, "queued", results, exc.message[:1000], retry_at, [error])

    def _failed(self, claimed: Claimed, results: list[dict[str, Any]], message: str) -> Finished:
        return Finished(claimed, "failed", results, message)
