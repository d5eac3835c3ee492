"""Integration files with transform, filter and database blocks, and the templates of every
block checked at parse time (what `embedded-ui apply` and `POST /manage/apply` run)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from embedded_ui.catalog import load_catalog
from embedded_ui.integrations import DefinitionError, parse_documents

BLOCKS: list[dict[str, Any]] = [
    {"id": "paid", "type": "filter", "condition": "{{ trigger.paid }}"},
    {"id": "shape", "type": "transform", "output": {"ref": "{{ trigger.id }}", "n": 1}},
    {
        "id": "store",
        "type": "database",
        "destination": "warehouse",
        "table": "public.orders",
        "rows": ["{{ blocks.shape }}"],
    },
    {"id": "send", "type": "stream_data", "url": "https://example.com/{{ trigger.id }}"},
    {
        "id": "set_status",
        "type": "app_action",
        "action": "update_order_status",
        "inputs": {
            "order_id": "{{ trigger.id }}",
            "status": {"configurable": {"label": "{{ not a template }}", "type": "text"}},
        },
    },
]


def document(blocks: list[dict[str, Any]]) -> str:
    return yaml.safe_dump(
        {
            "integration": {"key": "shop", "app": "sandbox"},
            "workflows": [
                {
                    "key": "shop-orders",
                    "name": "Orders",
                    "trigger": {"type": "app_event", "event": "order_created"},
                    "blocks": blocks,
                }
            ],
        }
    )


@pytest.fixture(scope="module")
def apps() -> Any:
    return load_catalog()


def test_the_new_blocks_parse_with_default_names(apps: Any) -> None:
    (integration,) = parse_documents([("shop.yaml", document(BLOCKS))], apps).integrations
    blocks = integration.workflows[0].definition["blocks"]
    assert [b["name"] for b in blocks][:3] == ["Filter", "Transform", "Database"]


def _changed(index: int, **fields: Any) -> list[dict[str, Any]]:
    blocks = copy.deepcopy(BLOCKS)
    blocks[index].update(fields)
    return blocks


def _without(index: int, field: str) -> list[dict[str, Any]]:
    blocks = copy.deepcopy(BLOCKS)
    blocks[index].pop(field)
    return blocks


@pytest.mark.parametrize(
    ("blocks", "needles"),
    [
        (_changed(0, condition="trigger.["), ("blocks[0].condition", "block 'paid'")),
        (_changed(0, condition="{{ a }} or {{ b }}"), ("blocks[0].condition", "one expression")),
        (_without(0, "condition"), ("blocks[0]", "'condition' is a required property")),
        (_changed(1, output=["{{ nope(a) }}"]), ("blocks[1].output[0]", "unknown function")),
        (_without(1, "output"), ("blocks[1]", "'output' is a required property")),
        (_changed(2, rows="{{ x[ }}"), ("blocks[2].rows", "block 'store'")),
        (_changed(2, row={"a": "{{ y( }}"}), ("blocks[2]", "exactly one of row and rows")),
        (_without(2, "rows"), ("blocks[2]", "exactly one of row and rows")),
        (_changed(2, table="orders; drop"), ("blocks[2].table", "does not match")),
        (_changed(2, destination="My DB"), ("blocks[2].destination", "does not match")),
        (_changed(3, url="https://x/{{ trigger.id"), ("blocks[3].url", "not closed")),
        (_changed(3, data={"a": ["{{ @@ }}"]}), ("blocks[3].data.a[0]", "not a valid")),
        (
            _changed(4, inputs={"order_id": "{{ trigger.id | }}", "status": "shipped"}),
            ("blocks[4].inputs.order_id", "block 'set_status'"),
        ),
    ],
)
def test_block_problems_name_the_file_the_workflow_and_the_block(
    apps: Any, blocks: list[dict[str, Any]], needles: tuple[str, ...]
) -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_documents([("shop.yaml", document(blocks))], apps)
    message = str(raised.value)
    assert message.startswith("shop.yaml: workflows[0]."), message
    for needle in needles:
        assert needle in message, message


def test_the_examples_still_parse(apps: Any) -> None:
    from pathlib import Path

    from embedded_ui.integrations import load_paths

    examples = Path(__file__).parents[2] / "examples"
    assert load_paths([examples], apps).integrations
