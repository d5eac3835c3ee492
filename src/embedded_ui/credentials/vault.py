"""Credential encryption: AES-256-GCM with a random 96-bit nonce per write.

The associated data names the row (workspace, environment, credential id), so a ciphertext
copied into another row does not decrypt. Each row records the id of the key that sealed it;
the first configured key seals, every configured key opens, and :func:`rotate` re-seals rows
still under an older key so that key can then be removed.
"""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from embedded_ui.settings import VaultKey

_NONCE_BYTES = 12


class VaultError(Exception):
    """A ciphertext could not be opened: unknown key, wrong row, or tampered bytes."""


def credential_aad(workspace_id: str, environment: str, credential_id: str) -> bytes:
    return f"credential:{workspace_id}:{environment}:{credential_id}".encode()


class Vault:
    def __init__(self, keys: tuple[VaultKey, ...]) -> None:
        if not keys:
            raise ValueError("at least one vault key is required")
        self.primary_kid = keys[0].kid
        self._ciphers = {key.kid: AESGCM(key.secret) for key in keys}

    def seal(self, secret: dict[str, Any], aad: bytes) -> tuple[str, bytes]:
        """Return ``(key id, nonce + ciphertext)`` for a JSON-able secret."""
        nonce = os.urandom(_NONCE_BYTES)
        plaintext = json.dumps(secret, separators=(",", ":")).encode()
        return self.primary_kid, nonce + self._ciphers[self.primary_kid].encrypt(
            nonce, plaintext, aad
        )

    def open(self, key_id: str, blob: bytes, aad: bytes) -> dict[str, Any]:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise VaultError(f"the vault key {key_id!r} is not configured")
        try:
            plaintext = cipher.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
        except InvalidTag:
            raise VaultError(
                "the ciphertext does not belong to this record or was altered"
            ) from None
        value: dict[str, Any] = json.loads(plaintext)
        return value
