"""ISV API keys: ``eui_dev_<43 base62>_<6 base62>`` or ``eui_live_…``.

The middle is 256 random bits; the tail is a CRC32 of everything before it, so a mistyped or
truncated key is refused without touching the database (GitHub's token format). Only the
SHA-256 of the key is stored: the key has full entropy, so a slow hash would add nothing.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from dataclasses import dataclass

from embedded_ui.errors import Unauthorized

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LENGTH = 43  # 62**43 > 2**256
_CHECK_LENGTH = 6  # 62**6 > 2**32
PREFIX_BY_ENVIRONMENT = {"development": "eui_dev_", "production": "eui_live_"}
_ENVIRONMENT_BY_TAG = {"dev": "development", "live": "production"}
_KEY_PATTERN = re.compile(r"eui_(dev|live)_([0-9A-Za-z]{43})_([0-9A-Za-z]{6})")


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, rest = divmod(number, 62)
        digits.append(_ALPHABET[rest])
    return "".join(reversed(digits))


def _checksum(head: str) -> str:
    return _base62(zlib.crc32(head.encode()), _CHECK_LENGTH)


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly minted key: ``plaintext`` is shown once and never stored."""

    plaintext: str
    key_hash: str
    display_prefix: str
    last_four: str


def mint(environment: str) -> NewApiKey:
    head = PREFIX_BY_ENVIRONMENT[environment] + _base62(secrets.randbits(256), _BODY_LENGTH)
    plaintext = f"{head}_{_checksum(head)}"
    return NewApiKey(
        plaintext=plaintext,
        key_hash=hash_key(plaintext),
        display_prefix=head[: len(PREFIX_BY_ENVIRONMENT[environment]) + 6],
        last_four=plaintext[-4:],
    )


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def parse(presented: str) -> tuple[str, str]:
    """Check a presented key's shape and checksum; return ``(environment, key_hash)``."""
    match = _KEY_PATTERN.fullmatch(presented)
    if match is None:
        raise Unauthorized("The API key is malformed: expected eui_dev_… or eui_live_….")
    head = presented[: -(_CHECK_LENGTH + 1)]
    if not secrets.compare_digest(_checksum(head), match.group(3)):
        raise Unauthorized("The API key's checksum does not match: check it was copied whole.")
    return _ENVIRONMENT_BY_TAG[match.group(1)], hash_key(presented)


def bearer_credential(authorization: str | None) -> str:
    """The credential of an ``Authorization: Bearer …`` header; the scheme is case-insensitive."""
    if not authorization:
        raise Unauthorized("Missing Authorization header: send `Authorization: Bearer <API key>`.")
    scheme, _, credential = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise Unauthorized("The Authorization header must be `Bearer <API key>`.")
    return credential.strip()
