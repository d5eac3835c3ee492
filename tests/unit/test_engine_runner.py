"""The runner's pure parts: what goes into the logs (redacted), and configured values put in
place of a block's `configurable` markers."""

from __future__ import annotations

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


def test_a_blocks_input_is_rendered_and_redacted() -> None:
    block = {
        "id": "send",
        "type": "stream_data",
        "url": "https://isv.example/in",
        "data": {"order": "{{ trigger.id }}", "token": "{{ trigger.token }}"},
    }
    context = {"trigger": {"id": "o-1", "token": "secret-value"}}
    assert block_input(block, context) == {
        "url": "https://isv.example/in",
        "data": {"order": "o-1", "token": REDACTED},
    }
    default = {"id": "s", "type": "stream_data", "url": "https://isv.example/in"}
    assert block_input(default, context)["data"] == {"id": "o-1", "token": REDACTED}
    # The trigger is sent as it came (blocks.stream_data), so it is logged as it came.
    sent_as_is = {"trigger": {"id": "{{ user.username }}"}, "user": {"username": "ada"}}
    assert block_input(default, sent_as_is)["data"] == {"id": "{{ user.username }}"}
    broken = {"id": "b", "type": "transform", "output": "{{ trigger.[ }}"}
    assert block_input(broken, context) is None


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
