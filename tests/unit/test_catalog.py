from __future__ import annotations

import copy
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

import embedded_ui.catalog
from embedded_ui.catalog import CatalogError, load_app, load_catalog

CATALOG_DIR = Path(embedded_ui.catalog.__file__).parent
APPS_DIR = CATALOG_DIR / "apps"
ICONS_DIR = CATALOG_DIR / "icons"

MANUAL_REGISTRATION_APPS = [
    "aftership",
    "attentive",
    "commercejs",
    "easyship",
    "gladly",
    "intercom",
    "loop_returns",
    "mixpanel",
    "shipedge",
    "wix",
    "wonderment",
    "xero",
    "yotpo_loyalty",
]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog()


def test_the_whole_catalog_loads(catalog):
    assert "sandbox" in catalog
    real_apps = [key for key in catalog if key != "sandbox"]
    assert len(real_apps) >= 25
    assert len(catalog) == len(list(APPS_DIR.glob("*.yaml")))
    names = [app.name.lower() for app in catalog.values()]
    assert names == sorted(names)


def test_every_app_has_triggers_and_actions(catalog):
    for key, app in catalog.items():
        assert len(app.triggers) >= 2, key
        assert len(app.actions) >= 2, key


def test_every_icon_is_an_svg(catalog):
    for key, app in catalog.items():
        assert app.icon == f"{key}.svg"
        root = ET.fromstring(app.icon_svg)  # noqa: S314 - our own files, not untrusted input
        assert root.tag == "{http://www.w3.org/2000/svg}svg", key
        assert root.get("viewBox") == "0 0 48 48", key


def test_every_real_app_names_its_docs(catalog):
    for key, app in catalog.items():
        if key == "sandbox":
            continue
        assert app.docs_url is not None, key
        assert app.docs_url.startswith("https://"), key
        first_line = (APPS_DIR / f"{key}.yaml").read_text().splitlines()[0]
        assert first_line.startswith("# "), key
        assert f"— {app.docs_url}" in first_line, key


@pytest.mark.parametrize("key", MANUAL_REGISTRATION_APPS)
def test_apps_whose_merchants_register_webhooks_by_hand_have_only_manual_triggers(catalog, key):
    app = catalog[key]
    assert app.triggers
    assert {trigger.registration for trigger in app.triggers} == {"manual"}
    assert app.manual_webhooks


def test_yotpo_loyalty_takes_one_webhook_url_per_user(catalog):
    triggers = catalog["yotpo_loyalty"].triggers
    assert triggers
    assert {trigger.webhook_url for trigger in triggers} == {"user"}


def test_bigcommerce_updates_order_statuses(catalog):
    action = catalog["bigcommerce"].action("update_order_status")
    assert action is not None
    assert action.name == "Update an existing order status"
    assert action.request.method == "PUT"


def test_oauth_token_urls_are_https(catalog):
    schemes = [
        (key, scheme)
        for key, app in catalog.items()
        for scheme in app.auth
        if scheme.type == "oauth2"
    ]
    assert len(schemes) >= 15
    for key, scheme in schemes:
        assert scheme.token_url is not None
        assert scheme.authorize_url is not None
        if key == "sandbox":
            assert scheme.token_url.startswith("{sandbox_url}/")
            continue
        assert scheme.token_url.startswith("https://"), key
        assert scheme.authorize_url.startswith("https://"), key


def test_oauth_connection_fields_all_have_patterns(catalog):
    for key, app in catalog.items():
        for scheme in app.auth:
            if scheme.type == "oauth2":
                assert all(field.pattern for field in scheme.fields), key


# --- validation errors name the file and the field -------------------------------------------

VALID_APP: dict[str, Any] = {
    "key": "demo",
    "name": "Demo",
    "description": "A small app used by the catalog tests.",
    "categories": ["crm"],
    "icon": "demo.svg",
    "auth": [
        {
            "type": "api_key",
            "fields": [
                {
                    "name": "access_token",
                    "label": "Token",
                    "help": "Any token.",
                    "pattern": "^[a-z]{8}$",
                    "secret": True,
                }
            ],
        }
    ],
    "api": {
        "base_url": "https://api.demo.test",
        "headers": {"Authorization": "Bearer {access_token}"},
    },
    "verification": {"method": "GET", "path": "/me"},
    "triggers": [
        {
            "key": "thing_created",
            "name": "Thing created",
            "events": ["thing.created"],
            "registration": "automatic",
        }
    ],
    "actions": [
        {
            "key": "get_thing",
            "name": "Get a thing",
            "method": "GET",
            "path": "/things/{thing_id}",
            "input_schema": {"type": "object", "properties": {"thing_id": {"type": "string"}}},
        }
    ],
}


@pytest.fixture
def icons_dir(tmp_path: Path) -> Path:
    icons = tmp_path / "icons"
    icons.mkdir()
    shutil.copy(ICONS_DIR / "sandbox.svg", icons / "demo.svg")
    return icons


def write_app(tmp_path: Path, app: dict[str, Any], file_name: str = "demo.yaml") -> Path:
    apps = tmp_path / "apps"
    apps.mkdir(exist_ok=True)
    path = apps / file_name
    path.write_text(yaml.safe_dump(app, sort_keys=False))
    return path


def load_error(tmp_path: Path, icons_dir: Path, app: dict[str, Any]) -> str:
    with pytest.raises(CatalogError) as caught:
        load_app(write_app(tmp_path, app), icons_dir)
    message = str(caught.value)
    assert message.startswith("catalog/apps/demo.yaml: ")
    return message


def test_the_valid_example_loads(tmp_path, icons_dir):
    app = load_app(write_app(tmp_path, VALID_APP), icons_dir)
    assert app.key == "demo"
    assert app.action("get_thing") is not None


def test_a_missing_name_is_named(tmp_path, icons_dir):
    app = copy.deepcopy(VALID_APP)
    del app["name"]
    message = load_error(tmp_path, icons_dir, app)
    assert "'name' is a required property" in message


def test_a_bad_category_is_named(tmp_path, icons_dir):
    app = copy.deepcopy(VALID_APP)
    app["categories"] = ["crm", "telepathy"]
    message = load_error(tmp_path, icons_dir, app)
    assert "categories[1]" in message
    assert "telepathy" in message


def test_an_action_placeholder_not_in_the_input_schema_names_the_action(tmp_path, icons_dir):
    app = copy.deepcopy(VALID_APP)
    app["actions"][0]["path"] = "/things/{thing_id}/parts/{part_id}"
    message = load_error(tmp_path, icons_dir, app)
    assert "actions[0] (get_thing)" in message
    assert "part_id" in message


def test_a_body_placeholder_missing_from_the_input_schema_is_named(tmp_path, icons_dir):
    app = copy.deepcopy(VALID_APP)
    app["actions"][0]["method"] = "POST"
    app["actions"][0]["body"] = {"thing": {"colour": "{colour}"}}
    message = load_error(tmp_path, icons_dir, app)
    assert "get_thing" in message
    assert "colour" in message


def test_a_key_that_differs_from_the_file_name_is_named(tmp_path, icons_dir):
    app = copy.deepcopy(VALID_APP)
    app["key"] = "other"
    message = load_error(tmp_path, icons_dir, app)
    assert "key: 'other' must equal the file name 'demo'" in message


def test_an_oauth_connection_field_without_a_pattern_is_named(tmp_path, icons_dir):
    app = copy.deepcopy(VALID_APP)
    app["auth"] = [
        {
            "type": "oauth2",
            "authorize_url": "https://{shop}.demo.test/oauth/authorize",
            "token_url": "https://{shop}.demo.test/oauth/token",
            "scopes": ["read"],
            "connection_fields": [{"name": "shop", "label": "Shop"}],
        }
    ]
    message = load_error(tmp_path, icons_dir, app)
    assert "auth[0].connection_fields[0]" in message
    assert "pattern" in message


def test_an_uncompilable_pattern_is_named(tmp_path, icons_dir):
    app = copy.deepcopy(VALID_APP)
    app["auth"][0]["fields"][0]["pattern"] = "^[a-z"
    message = load_error(tmp_path, icons_dir, app)
    assert "auth[0].fields[0].pattern" in message
    assert "does not compile" in message


def test_a_missing_icon_is_named(tmp_path, icons_dir):
    app = copy.deepcopy(VALID_APP)
    app["icon"] = "nowhere.svg"
    message = load_error(tmp_path, icons_dir, app)
    assert "icon" in message
    assert "nowhere.svg" in message


def test_an_icon_that_is_not_an_svg_is_refused(tmp_path, icons_dir):
    (icons_dir / "demo.svg").write_text("PNG, honest")
    message = load_error(tmp_path, icons_dir, copy.deepcopy(VALID_APP))
    assert "catalog/icons/demo.svg" in message


def test_an_api_placeholder_no_credential_fills_is_named(tmp_path, icons_dir):
    app = copy.deepcopy(VALID_APP)
    app["api"]["base_url"] = "https://{region}.demo.test"
    message = load_error(tmp_path, icons_dir, app)
    assert "api" in message
    assert "region" in message


def test_broken_yaml_is_named(tmp_path, icons_dir):
    path = tmp_path / "demo.yaml"
    path.write_text("key: demo\nname: [unclosed\n")
    with pytest.raises(CatalogError, match=r"^catalog/apps/demo\.yaml: not valid YAML"):
        load_app(path, icons_dir)


def test_load_catalog_stops_at_the_first_bad_file(tmp_path, icons_dir):
    app = copy.deepcopy(VALID_APP)
    del app["description"]
    write_app(tmp_path, app)
    with pytest.raises(CatalogError, match=r"catalog/apps/demo\.yaml: .*'description'"):
        load_catalog(tmp_path / "apps", icons_dir)
