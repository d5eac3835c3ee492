from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from embedded_ui.engine import signing

SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
BODY = json.dumps({"event": "order.created", "id": 42}).encode()
MSG_ID = "msg_exec1_block1"
# Visible ASCII, as a header carries it.
MSG_IDS = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1)


def test_new_secret_is_whsec_and_32_random_bytes():
    secret = signing.new_endpoint_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert secret != signing.new_endpoint_secret()


def test_headers_verify_with_the_reference_library():
    headers = signing.headers(SECRET, MSG_ID, BODY)
    assert set(headers) == {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Alloy-Signature",
    }
    assert headers["webhook-id"] == MSG_ID
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert Webhook(SECRET).verify(BODY, headers) == {"event": "order.created", "id": 42}


def test_a_new_secret_verifies_with_the_reference_library():
    secret = signing.new_endpoint_secret()
    Webhook(secret).verify(BODY, signing.headers(secret, MSG_ID, BODY), json_parse=False)


def test_a_timestamp_six_minutes_old_is_rejected():
    headers = signing.headers(SECRET, MSG_ID, BODY, now=time.time() - 360)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(BODY, headers)


def test_a_timestamp_moved_back_after_signing_is_rejected():
    headers = signing.headers(SECRET, MSG_ID, BODY)
    headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(SECRET).verify(BODY, headers)


@pytest.mark.parametrize("position", [0, len(BODY) // 2, len(BODY) - 1])
def test_a_body_altered_by_one_byte_is_rejected(position: int):
    headers = signing.headers(SECRET, MSG_ID, BODY)
    altered = bytearray(BODY)
    altered[position] ^= 0x01
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(bytes(altered), headers)


def test_another_secret_is_rejected():
    headers = signing.headers(signing.new_endpoint_secret(), MSG_ID, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY, headers)


def test_sign_matches_the_spec_text():
    key = bytes(range(32))
    expected = hmac.new(key, f"{MSG_ID}.1700000000.".encode() + BODY, hashlib.sha256).digest()
    assert signing.sign(SECRET, MSG_ID, 1700000000, BODY) == (
        "v1," + base64.b64encode(expected).decode()
    )


def test_alloy_signature_is_hex_hmac_of_the_body():
    key = bytes(range(32))
    headers = signing.headers(SECRET, MSG_ID, BODY, now=1700000000)
    assert headers["X-Alloy-Signature"] == hmac.new(key, BODY, hashlib.sha256).hexdigest()


def test_the_id_stays_and_the_timestamp_moves_between_attempts():
    first = signing.headers(SECRET, MSG_ID, BODY, now=1700000000)
    second = signing.headers(SECRET, MSG_ID, BODY, now=1700000300)
    assert first["webhook-id"] == second["webhook-id"] == MSG_ID
    assert first["webhook-signature"] != second["webhook-signature"]


@pytest.mark.parametrize(
    "secret",
    ["", "abc", "whsec_", "whsec_not*base64", "whsec_" + base64.b64encode(b"x" * 8).decode()],
)
def test_malformed_secrets_are_refused_without_being_quoted(secret: str):
    with pytest.raises(ValueError) as raised:
        signing.sign(secret, MSG_ID, 1, BODY)
    assert secret in ("", "whsec_") or secret not in str(raised.value)


@pytest.mark.parametrize("msg_id", ["", "has space", "new\nline", "é"])
def test_message_ids_that_cannot_travel_in_a_header_are_refused(msg_id: str):
    with pytest.raises(ValueError, match="message id"):
        signing.headers(SECRET, msg_id, BODY)


@given(
    key=st.binary(min_size=24, max_size=64),
    msg_id=MSG_IDS,
    body=st.text().map(str.encode),
)
def test_sign_then_verify_round_trips(key: bytes, msg_id: str, body: bytes):
    secret = "whsec_" + base64.b64encode(key).decode()
    headers = signing.headers(secret, msg_id, body)
    Webhook(secret).verify(body, headers, json_parse=False)


@given(
    msg_id=MSG_IDS,
    body=st.binary(min_size=1),
    position=st.integers(min_value=0),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_changed_byte_breaks_the_signature(msg_id: str, body: bytes, position: int, flip: int):
    signature = signing.sign(SECRET, msg_id, 1700000000, body)
    altered = bytearray(body)
    altered[position % len(body)] ^= flip
    assert signing.sign(SECRET, msg_id, 1700000000, bytes(altered)) != signature
