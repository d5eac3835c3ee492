from __future__ import annotations

import dataclasses

import pytest

from embedded_ui.settings import DEV_SIGNING_KEY_ID, Settings, SettingsError, new_key_value


def test_defaults_are_a_working_development_setup():
    settings = Settings.from_env({})
    assert settings.mode == "development"
    assert settings.database_url == "sqlite+aiosqlite:///embedded-ui.sqlite3"
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.user_token_ttl == 3600
    assert [key.kid for key in settings.signing_keys] == [DEV_SIGNING_KEY_ID]
    assert settings.signing_keys[0].insecure


def test_engine_timings_default_to_the_documented_values_and_take_fractions():
    assert Settings.from_env({}).execution_lease_seconds == 30.0
    assert Settings.from_env({}).delivery_timeout_seconds == 15.0
    tuned = Settings.from_env(
        {
            "EMBEDDED_UI_EXECUTION_LEASE_SECONDS": "2.5",
            "EMBEDDED_UI_DELIVERY_TIMEOUT_SECONDS": "1.5",
        }
    )
    assert (tuned.execution_lease_seconds, tuned.delivery_timeout_seconds) == (2.5, 1.5)


def test_settings_are_frozen():
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("EMBEDDED_UI_PORT", "abc", "whole number"),
        ("EMBEDDED_UI_PORT", "70000", "from 1 to 65535"),
        ("EMBEDDED_UI_MODE", "staging", "development, production"),
        ("EMBEDDED_UI_DATABASE_URL", "mysql://x/y", "sqlite+aiosqlite"),
        ("EMBEDDED_UI_REDIS_URL", "http://cache", "redis"),
        ("EMBEDDED_UI_PUBLIC_URL", "ftp://x", "http(s) URL"),
        ("EMBEDDED_UI_USER_TOKEN_TTL", "7200", "from 60 to 3600"),
        ("EMBEDDED_UI_MIGRATE_ON_START", "maybe", "true or false"),
        ("EMBEDDED_UI_SIGNING_KEYS", "nocolon", "KID:BASE64URL_SEED"),
        ("EMBEDDED_UI_SIGNING_KEYS", "k1:AAAA", "32 bytes"),
        ("EMBEDDED_UI_SIGNING_KEYS", "k1:%%%%", "base64url"),
        ("EMBEDDED_UI_LOG_FORMAT", "xml", "console, json"),
        ("EMBEDDED_UI_RATE_LIMT_PER_MINUTE", "5", "unknown setting"),
        ("EMBEDDED_UI_EXECUTION_LEASE_SECONDS", "soon", "expected a number"),
        ("EMBEDDED_UI_EXECUTION_LEASE_SECONDS", "0.5", "from 1 to 3600"),
        ("EMBEDDED_UI_DELIVERY_TIMEOUT_SECONDS", "nan", "from 0.1 to 300"),
    ],
)
def test_invalid_values_fail_naming_the_variable(name, value, problem):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert str(caught.value).startswith(name)
    assert problem in str(caught.value)


def test_duplicate_signing_key_ids_are_refused():
    entry = new_key_value("same")
    with pytest.raises(SettingsError, match="appears twice"):
        Settings.from_env({"EMBEDDED_UI_SIGNING_KEYS": f"{entry},{entry}"})


def test_production_refuses_missing_signing_keys():
    with pytest.raises(SettingsError, match="EMBEDDED_UI_SIGNING_KEYS: required outside"):
        Settings.from_env({"EMBEDDED_UI_MODE": "production"})


def test_production_refuses_the_public_development_key():
    development = Settings.from_env({})
    from base64 import urlsafe_b64encode

    from cryptography.hazmat.primitives import serialization

    seed = development.signing_keys[0].private_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    value = "k1:" + urlsafe_b64encode(seed).decode().rstrip("=")
    with pytest.raises(SettingsError, match="public development key"):
        Settings.from_env({"EMBEDDED_UI_MODE": "production", "EMBEDDED_UI_SIGNING_KEYS": value})


def test_production_starts_with_real_keys_in_rotation_order():
    new, old = new_key_value("new"), new_key_value("old")
    settings = Settings.from_env(
        {
            "EMBEDDED_UI_MODE": "production",
            "EMBEDDED_UI_SIGNING_KEYS": f"{new}, {old}",
            "EMBEDDED_UI_VAULT_KEYS": new_key_value("v2"),
        }
    )
    assert [key.kid for key in settings.signing_keys] == ["new", "old"]
    assert not any(key.insecure for key in settings.signing_keys)
    assert [key.kid for key in settings.vault_keys] == ["v2"]
    assert not settings.vault_keys[0].insecure


def test_production_refuses_missing_vault_keys():
    with pytest.raises(SettingsError, match="EMBEDDED_UI_VAULT_KEYS: required outside"):
        Settings.from_env(
            {"EMBEDDED_UI_MODE": "production", "EMBEDDED_UI_SIGNING_KEYS": new_key_value("s")}
        )


def test_production_refuses_the_public_development_vault_key():
    from base64 import urlsafe_b64encode

    development = Settings.from_env({})
    value = "v1:" + urlsafe_b64encode(development.vault_keys[0].secret).decode().rstrip("=")
    with pytest.raises(SettingsError, match="EMBEDDED_UI_VAULT_KEYS: key 'v1' is the public"):
        Settings.from_env(
            {
                "EMBEDDED_UI_MODE": "production",
                "EMBEDDED_UI_SIGNING_KEYS": new_key_value("s"),
                "EMBEDDED_UI_VAULT_KEYS": value,
            }
        )


def test_postgres_urls_in_their_usual_spelling_are_accepted():
    settings = Settings.from_env({"EMBEDDED_UI_DATABASE_URL": "postgresql://u@db:5432/app"})
    assert settings.database_url == "postgresql+asyncpg://u@db:5432/app"


def test_public_url_defaults_to_the_bind_address():
    settings = Settings.from_env({"EMBEDDED_UI_HOST": "0.0.0.0", "EMBEDDED_UI_PORT": "9000"})
    assert settings.public_url == "http://127.0.0.1:9000"
    assert settings.public_origin == "http://127.0.0.1:9000"


def test_test_and_bench_variables_are_not_settings():
    Settings.from_env({"EMBEDDED_UI_TEST_POSTGRES_URL": "x", "EMBEDDED_UI_BENCH_SECONDS": "1"})
