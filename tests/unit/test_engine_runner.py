"""The runner's pure parts: what goes into the logs (redacted), and configured values put in
place of a block's `configurable` markers."""

from __future__ import annotations

import pytest

from embedded_ui.engine.blocks import BlockFailed, render_inputs
from embedded_ui.engine.runner import REDACTED, block_input, configured, redact


def test_fields_named_like_secrets_are_redacted_at_any_depth() -> None:
    value = {
        "orderId": "1",
        "apiKey": "k",
        "nested": [{"password": "p", "Authorization": "Bearer x", "note": "kept"}],
        "client_secret": "s",
        "access_token": "t",
    }
    assert redact(value) == {
        "orderId": "1",
        "apiKey": REDACTED,
        "nested": [{"password": REDACTED, "Authorization": REDACTED, "note": "kept"}],
        "client_secret": REDACTED,
        "access_token": REDACTED,
    }


async def test_a_blocks_input_is_rendered_once_and_logged_redacted() -> None:
    block = {
        "id": "send",
        "type": "stream_data",
        "name": "Send",
        "url": "https://isv.example/in",
        "data": {"order": "{{ trigger.id }}", "token": "{{ trigger.token }}"},
    }
    context = {"trigger": {"id": "o-1", "token": "secret-value"}}
    inputs = await render_inputs(block, context)
    # What the block runs with: rendered, not redacted, without id, type and name.
    assert inputs == {
        "url": "https://isv.example/in",
        "data": {"order": "o-1", "token": "secret-value"},
    }
    assert block_input(block, inputs, context) == {
        "url": "https://isv.example/in",
        "data": {"order": "o-1", "token": REDACTED},
    }
    default = {"id": "s", "type": "stream_data", "url": "https://isv.example/in"}
    shown = block_input(default, await render_inputs(default, context), context)
    assert shown["data"] == {"id": "o-1", "token": REDACTED}
    # The trigger is sent as it came (blocks.stream_data), so it is logged as it came.
    sent_as_is = {"trigger": {"id": "{{ user.username }}"}, "user": {"username": "ada"}}
    shown = block_input(default, await render_inputs(default, sent_as_is), sent_as_is)
    assert shown["data"] == {"id": "{{ user.username }}"}


async def test_inputs_that_do_not_render_fail_the_block_with_the_reason() -> None:
    broken = {"id": "b", "type": "transform", "output": "{{ trigger.[ }}"}
    with pytest.raises(BlockFailed) as raised:
        await render_inputs(broken, {"trigger": {}})
    assert raised.value.message and not raised.value.retryable


async def test_a_filter_is_shown_as_written_and_evaluated_by_itself() -> None:
    block = {"id": "f", "type": "filter", "condition": "{{ trigger.paid }}"}
    assert await render_inputs(block, {"trigger": {"paid": True}}) == {
        "condition": "{{ trigger.paid }}"
    }


def test_configured_values_replace_markers_and_defaults_fill_the_rest() -> None:
    block = {
        "id": "update",
        "type": "app_action",
        "inputs": {
            "order_id": "{{ trigger.orderId }}",
            "status": {"configurable": {"label": "Status", "type": "text", "default": "shipped"}},
        },
        "url": {"configurable": {"label": "URL", "type": "url"}},
    }
    assert configured(block, {"status": "delivered"})["inputs"]["status"] == "delivered"
    assert configured(block, {})["inputs"]["status"] == "shipped"
    assert configured(block, {})["url"] is None
    assert configured(block, {"url": "https://x"})["url"] == "https://x"
