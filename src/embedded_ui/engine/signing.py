"""Signatures on outgoing webhooks: Standard Webhooks, plus Alloy's header.

Standard Webhooks (https://www.standardwebhooks.com/):

- ``webhook-id``: the message id, the same on every attempt (the receiver deduplicates on it);
- ``webhook-timestamp``: the attempt's time in whole seconds since the epoch;
- ``webhook-signature``: ``v1,`` + base64 of HMAC-SHA256 over ``{id}.{timestamp}.{body}``,
  keyed with the endpoint secret's decoded bytes.

An endpoint secret is ``whsec_`` + base64 of 32 random bytes (the spec allows 24 to 64, and
secrets of that size from elsewhere are accepted).

``X-Alloy-Signature`` is for receivers written against Alloy Embedded: the lowercase hex of
HMAC-SHA256 over the raw body alone, keyed with the same decoded secret bytes. It carries no
timestamp, so it does not protect against replays; ``webhook-signature`` does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32
_MIN_SECRET_BYTES = 24
_MAX_SECRET_BYTES = 64


def new_endpoint_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    # The message never quotes the secret: it ends up in logs.
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("an endpoint secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("an endpoint secret is whsec_ followed by base64") from None
    if not _MIN_SECRET_BYTES <= len(key) <= _MAX_SECRET_BYTES:
        raise ValueError(f"an endpoint secret decodes to 24 to 64 bytes, not {len(key)}")
    return key


def _check_msg_id(msg_id: str) -> None:
    # It travels in a header and is part of the signed text: visible ASCII only.
    if not msg_id or not all("!" <= char <= "~" for char in msg_id):
        raise ValueError("a message id is non-empty visible ASCII without spaces")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value, ``v1,<base64>``, for one message at one time."""
    _check_msg_id(msg_id)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def alloy_signature(secret: str, body: bytes) -> str:
    """The ``X-Alloy-Signature`` value: hex HMAC-SHA256 of the body alone."""
    return hmac.new(_key(secret), body, hashlib.sha256).hexdigest()


def headers(secret: str, msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """Every signature header of one attempt; ``now`` (epoch seconds) defaults to the clock."""
    timestamp = int(time.time() if now is None else now)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "X-Alloy-Signature": alloy_signature(secret, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> bool:
    """Whether a Standard Webhooks message (``webhook-id``, ``webhook-timestamp``,
    ``webhook-signature``) was signed with ``secret`` within ``tolerance`` seconds of now —
    for webhooks coming in from apps that sign this way."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    raw_timestamp = lowered.get("webhook-timestamp", "")
    if not msg_id or not raw_timestamp.isdigit():
        return False
    timestamp = int(raw_timestamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    try:
        expected = sign(secret, msg_id, timestamp, body).partition(",")[2]
    except ValueError:
        return False
    given = [part.partition(",") for part in lowered.get("webhook-signature", "").split()]
    return any(
        version == "v1" and hmac.compare_digest(signature, expected)
        for version, _, signature in given
    )
