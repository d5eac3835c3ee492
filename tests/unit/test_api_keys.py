from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedded_ui.errors import Unauthorized
from embedded_ui.security import api_keys


@pytest.mark.parametrize(
    ("environment", "prefix"), [("development", "eui_dev_"), ("production", "eui_live_")]
)
def test_minted_keys_parse_back_to_their_environment_and_hash(environment, prefix):
    minted = api_keys.mint(environment)
    assert minted.plaintext.startswith(prefix)
    assert minted.display_prefix.startswith(prefix)
    assert minted.display_prefix in minted.plaintext
    assert len(minted.display_prefix) < len(minted.plaintext) // 3
    assert api_keys.parse(minted.plaintext) == (environment, minted.key_hash)
    assert minted.key_hash != minted.plaintext
    assert len(minted.key_hash) == 64


def test_keys_are_unique():
    assert len({api_keys.mint("development").plaintext for _ in range(200)}) == 200


# No deadline: a loaded CI machine must not turn a slow example into a failure.
@settings(deadline=None)
@given(st.data())
def test_any_single_character_change_fails_the_checksum_or_the_shape(data):
    key = api_keys.mint("production").plaintext
    position = data.draw(st.integers(min_value=0, max_value=len(key) - 1))
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_"
    # The key is new on every run, so draw a shift rather than filter on its character:
    # a filter would draw a different amount of data per run (Hypothesis calls that flaky).
    shift = data.draw(st.integers(min_value=1, max_value=len(alphabet) - 1))
    replacement = alphabet[(alphabet.index(key[position]) + shift) % len(alphabet)]
    typo = key[:position] + replacement + key[position + 1 :]
    with pytest.raises(Unauthorized):
        api_keys.parse(typo)


@pytest.mark.parametrize(
    "presented", ["", "eui_dev_", "sk_live_abc", "eui_test_" + "a" * 43 + "_aaaaaa", "x" * 1000]
)
def test_malformed_keys_are_refused(presented):
    with pytest.raises(Unauthorized, match="malformed"):
        api_keys.parse(presented)


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
def test_bearer_scheme_is_case_insensitive(scheme):
    assert api_keys.bearer_credential(f"{scheme} abc") == "abc"


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   ", "abc"])
def test_other_authorization_headers_are_refused(header):
    with pytest.raises(Unauthorized):
        api_keys.bearer_credential(header)
