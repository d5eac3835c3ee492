"""Integration files: every way a definition can be wrong, through the parser and through
``POST /manage/apply`` (422 naming the file and the field, nothing written), plus the conflicts
only the database can see (an undeclared custom event, an integration changing app)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from embedded_ui.catalog import load_catalog
from embedded_ui.integrations import DefinitionError, parse_documents

APPLY = "/2024-03/manage/apply"


def sandbox_integration() -> dict[str, Any]:
    """A valid file: one sandbox integration with one app-action workflow."""
    return {
        "integration": {"key": "shop", "app": "sandbox", "name": "Shop"},
        "workflows": [
            {
                "key": "shop-status",
                "name": "Update the order status",
                "trigger": {"type": "app_event", "event": "order_created"},
                "blocks": [
                    {
                        "id": "set_status",
                        "type": "app_action",
                        "action": "update_order_status",
                        "inputs": {
                            "order_id": "{{ trigger.id }}",
                            "status": {
                                "configurable": {
                                    "label": "Status",
                                    "type": "select",
                                    "options": [{"label": "Shipped", "value": "shipped"}],
                                }
                            },
                        },
                    }
                ],
            }
        ],
    }


def dump(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False)


def mutated(change: Callable[[dict[str, Any]], None]) -> str:
    document = copy.deepcopy(sandbox_integration())
    change(document)
    return dump(document)


def block(document: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = document["workflows"][0]["blocks"][0]
    return first


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(document: dict[str, Any]) -> None:
        target: Any = document
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _without_input(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: block(document)["inputs"].pop(name)


def _duplicate_block(document: dict[str, Any]) -> None:
    document["workflows"][0]["blocks"].append(
        {"id": "set_status", "type": "stream_data", "url": "https://example.com/hook"}
    )


STATUS = ["workflows", 0, "blocks", 0, "inputs", "status", "configurable"]

# name → (change to the valid file, substrings the message must contain after the file name)
SINGLE_FILE_ERRORS: dict[str, tuple[Callable[[dict[str, Any]], None], tuple[str, ...]]] = {
    "unknown app": (
        _set(["integration", "app"], "no-such-app"),
        ("integration.app", "no-such-app"),
    ),
    "unknown trigger event": (
        _set(["workflows", 0, "trigger", "event"], "order_teleported"),
        ("workflows[0].trigger.event", "order_teleported"),
    ),
    "unknown action": (
        _set(["workflows", 0, "blocks", 0, "action"], "launch_rocket"),
        ("workflows[0].blocks[0].action", "launch_rocket"),
    ),
    "unknown input": (
        _set(["workflows", 0, "blocks", 0, "inputs", "colour"], "red"),
        ("workflows[0].blocks[0].inputs.colour",),
    ),
    "missing required input": (
        _without_input("order_id"),
        ("workflows[0].blocks[0].inputs", "order_id"),
    ),
    "select without options": (
        _set(STATUS, {"label": "Status", "type": "select"}),
        ("workflows[0].blocks[0].inputs.status.configurable", "options"),
    ),
    "options_from an unknown source": (
        _set(STATUS, {"label": "Status", "type": "select", "options_from": "warehouses"}),
        ("workflows[0].blocks[0].inputs.status.configurable.options_from", "warehouses"),
    ),
    "duplicate block id": (
        _duplicate_block,
        ("workflows[0].blocks[1].id", "set_status"),
    ),
    "unknown configurable type": (
        _set(STATUS, {"label": "Status", "type": "colour"}),
        ("workflows[0].blocks[0].inputs.status",),
    ),
    "bad workflow key": (
        _set(["workflows", 0, "key"], "Not A Key"),
        ("workflows[0].key",),
    ),
    "stream data block without its url": (
        _set(["workflows", 0, "blocks", 0], {"id": "send", "type": "stream_data"}),
        ("workflows[0].blocks[0]", "'url' is a required property"),
    ),
    "unknown block type": (
        _set(["workflows", 0, "blocks", 0], {"id": "send", "type": "teleport"}),
        ("workflows[0].blocks[0].type", "teleport"),
    ),
    "unknown top-level key": (
        _set(["integrations"], []),
        ("integrations",),
    ),
}


@pytest.fixture(scope="module")
def apps() -> Any:
    return load_catalog()


def test_the_base_file_is_valid(apps: Any) -> None:
    parsed = parse_documents([("shop.yaml", dump(sandbox_integration()))], apps)
    (integration,) = parsed.integrations
    assert integration.app == "sandbox"
    (workflow,) = integration.workflows
    assert [f["blockId"] + "." + f["name"] for f in workflow.fields] == ["set_status.status"]
    assert workflow.fields[0]["required"] is True


@pytest.mark.parametrize("case", list(SINGLE_FILE_ERRORS))
def test_parse_error_names_the_file_and_the_field(apps: Any, case: str) -> None:
    change, needles = SINGLE_FILE_ERRORS[case]
    with pytest.raises(DefinitionError) as raised:
        parse_documents([("broken.yaml", mutated(change))], apps)
    message = str(raised.value)
    assert message.startswith("broken.yaml: "), message
    for needle in needles:
        assert needle in message, message


def test_invalid_yaml_names_the_file(apps: Any) -> None:
    with pytest.raises(DefinitionError, match=r"^bad\.yaml: not valid YAML"):
        parse_documents([("bad.yaml", "integration: [unclosed\n  key: x")], apps)


def test_an_empty_file_is_an_error_not_a_crash(apps: Any) -> None:
    with pytest.raises(DefinitionError, match=r"^empty\.yaml: "):
        parse_documents([("empty.yaml", "")], apps)


def test_invalid_event_schema_names_the_event(apps: Any) -> None:
    events = dump({"events": [{"name": "Order Shipped", "schema": {"type": "parcel"}}]})
    with pytest.raises(DefinitionError) as raised:
        parse_documents([("events.yaml", events)], apps)
    assert str(raised.value).startswith("events.yaml: events[0].schema: not a valid JSON Schema")


@pytest.mark.parametrize(
    ("schema", "where"),
    [
        ({"$ref": "http://169.254.169.254/latest/meta-data"}, "schema.$ref"),
        ({"properties": {"a": {"$ref": "file:///etc/passwd"}}}, "schema.properties.a.$ref"),
        (
            {"prefixItems": [{"$dynamicRef": "other.json#node"}]},
            "schema.prefixItems[0].$dynamicRef",
        ),
    ],
)
def test_an_event_schema_may_only_reference_itself(
    apps: Any, schema: dict[str, Any], where: str
) -> None:
    # jsonschema's default registry fetches a remote "$ref" over HTTP when data is checked:
    # an event schema would make the service connect wherever it points (security-anchors,
    # SSRF). Refused when the file is applied, naming the reference.
    events = dump({"events": [{"name": "Shipped", "schema": schema}]})
    with pytest.raises(DefinitionError) as raised:
        parse_documents([("events.yaml", events)], apps)
    message = str(raised.value)
    assert message.startswith(f"events.yaml: events[0].{where}: "), message
    assert "only references inside the schema" in message


def test_references_inside_an_event_schema_are_fine(apps: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"orderId": {"$ref": "#/$defs/id"}},
        "$defs": {"id": {"type": "string"}},
    }
    events = dump({"events": [{"name": "Shipped", "schema": schema}]})
    (event,) = parse_documents([("events.yaml", events)], apps).events
    assert event.schema == schema


def test_duplicate_workflow_key_across_files_names_both_files(apps: Any) -> None:
    other = sandbox_integration()
    other["integration"]["key"] = "shop-two"
    with pytest.raises(DefinitionError) as raised:
        parse_documents(
            [("one.yaml", dump(sandbox_integration())), ("two.yaml", dump(other))], apps
        )
    message = str(raised.value)
    assert message.startswith("two.yaml: "), message
    assert "shop-status" in message
    assert "one.yaml" in message


def test_the_same_event_declared_differently_twice_is_an_error(apps: Any) -> None:
    first = dump({"events": [{"name": "Shipped", "schema": {"type": "object"}}]})
    second = dump({"events": [{"name": "Shipped", "schema": {"type": "array"}}]})
    with pytest.raises(DefinitionError, match=r"^b\.yaml: events\[0\]"):
        parse_documents([("a.yaml", first), ("b.yaml", second)], apps)


# --- through the management API ---------------------------------------------------------


async def apply(client: Any, tenant: Any, *files: tuple[str, str], **options: Any) -> Any:
    return await client.post(
        APPLY,
        json={"files": [{"name": n, "content": c} for n, c in files], **options},
        headers=tenant.headers,
    )


async def assert_nothing_stored(client: Any, tenant: Any) -> None:
    """No event, no integration: a dry run of the valid file would create everything."""
    events = await client.get("/2024-03/events", headers=tenant.headers)
    assert events.status_code == 200, events.text
    assert events.json() == {"data": []}
    probe = await apply(client, tenant, ("shop.yaml", dump(sandbox_integration())), dryRun=True)
    assert probe.status_code == 200, probe.text
    assert {(c["action"], c["kind"]) for c in probe.json()["changes"]} == {
        ("create", "integration"),
        ("draft", "workflow"),
    }


@pytest.mark.parametrize("case", list(SINGLE_FILE_ERRORS))
async def test_apply_answers_422_naming_the_file_and_the_field(
    client: Any, tenant: Any, case: str
) -> None:
    change, needles = SINGLE_FILE_ERRORS[case]
    response = await apply(client, tenant, ("integrations/broken.yaml", mutated(change)))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "unprocessable"
    assert body["message"].startswith("integrations/broken.yaml: "), body
    for needle in needles:
        assert needle in body["message"], body
    await assert_nothing_stored(client, tenant)


async def test_apply_invalid_yaml_and_bad_event_schema_are_422(client: Any, tenant: Any) -> None:
    response = await apply(client, tenant, ("bad.yaml", "workflows: [\n"))
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("bad.yaml: not valid YAML")

    events = dump({"events": [{"name": "Shipped", "schema": {"required": "orderId"}}]})
    response = await apply(client, tenant, ("events.yaml", events))
    assert response.status_code == 422, response.text
    assert response.json()["message"].startswith("events.yaml: events[0].schema")
    await assert_nothing_stored(client, tenant)


async def test_apply_duplicate_workflow_key_across_files_is_422(client: Any, tenant: Any) -> None:
    other = sandbox_integration()
    other["integration"]["key"] = "shop-two"
    response = await apply(
        client, tenant, ("one.yaml", dump(sandbox_integration())), ("two.yaml", dump(other))
    )
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert message.startswith("two.yaml: ") and "shop-status" in message and "one.yaml" in message
    await assert_nothing_stored(client, tenant)


def _custom_event_workflow(event: str) -> dict[str, Any]:
    document = sandbox_integration()
    document["workflows"][0]["trigger"] = {"type": "custom_event", "event": event}
    return document


async def test_custom_event_trigger_needs_a_declared_event(client: Any, tenant: Any) -> None:
    declared = dump({"events": [{"name": "Order Packed", "schema": {"type": "object"}}]})
    response = await apply(
        client,
        tenant,
        ("events.yaml", declared),
        ("shop.yaml", dump(_custom_event_workflow("Order Shipped"))),
        release=True,
    )
    assert response.status_code == 422, response.text
    message = response.json()["message"]
    assert message.startswith("shop.yaml: "), message
    assert "trigger.event" in message and "Order Shipped" in message
    # The event of the same request was rolled back with the rest.
    await assert_nothing_stored(client, tenant)

    # Declared in the same apply, or by an earlier one, the trigger is accepted.
    ok = await apply(client, tenant, ("events.yaml", declared))
    assert ok.status_code == 200, ok.text
    ok = await apply(client, tenant, ("shop.yaml", dump(_custom_event_workflow("Order Packed"))))
    assert ok.status_code == 200, ok.text
    assert ("draft", "workflow", "shop-status") in {
        (c["action"], c["kind"], c["key"]) for c in ok.json()["changes"]
    }


async def test_an_integration_cannot_change_app(client: Any, tenant: Any) -> None:
    first = await apply(client, tenant, ("shop.yaml", dump(sandbox_integration())), release=True)
    assert first.status_code == 200, first.text

    moved = {
        "integration": {"key": "shop", "app": "bigcommerce"},
        "workflows": [
            {
                "key": "shop-status",
                "name": "Update the order status",
                "trigger": {"type": "app_event", "event": "order_created"},
                "blocks": [{"id": "send", "type": "stream_data", "url": "https://x.example/h"}],
            }
        ],
    }
    response = await apply(client, tenant, ("shop.yaml", dump(moved)))
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["code"] == "conflict"
    assert "shop.yaml" in body["message"] and "sandbox" in body["message"], body
    assert "bigcommerce" in body["message"], body

    # Nothing moved: the original file is still exactly what is stored.
    again = await apply(client, tenant, ("shop.yaml", dump(sandbox_integration())))
    assert again.status_code == 200, again.text
    assert again.json()["changed"] is False, again.json()


async def test_a_workflow_cannot_move_to_another_integration(client: Any, tenant: Any) -> None:
    first = await apply(client, tenant, ("shop.yaml", dump(sandbox_integration())))
    assert first.status_code == 200, first.text
    other = sandbox_integration()
    other["integration"]["key"] = "shop-two"
    response = await apply(client, tenant, ("shop-two.yaml", dump(other)))
    assert response.status_code == 409, response.text
    assert "shop-status" in response.json()["message"]
    again = await apply(client, tenant, ("shop.yaml", dump(sandbox_integration())))
    assert again.json()["changed"] is False, again.json()


@pytest.mark.parametrize(
    "body",
    [
        {"files": []},
        {"files": [{"name": "a.yaml"}]},
        {"files": [{"name": "a.yaml", "content": "events: []", "extra": 1}]},
        {"files": "shop.yaml"},
    ],
)
async def test_malformed_apply_bodies_are_client_errors(
    client: Any, tenant: Any, body: dict[str, Any]
) -> None:
    response = await client.post(APPLY, json=body, headers=tenant.headers)
    assert response.status_code in (400, 422), response.text
    assert response.json()["code"] in ("invalid_request", "unprocessable")
