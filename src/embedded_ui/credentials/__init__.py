"""Users' credentials for apps: the vault and the credential records."""

from __future__ import annotations

from embedded_ui.credentials.service import CredentialService, describe_credential
from embedded_ui.credentials.vault import Vault, VaultError, credential_aad

__all__ = [
    "CredentialService",
    "Vault",
    "VaultError",
    "credential_aad",
    "describe_credential",
]
