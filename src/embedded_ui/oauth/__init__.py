"""The OAuth 2.0 client side: the ISV's OAuth clients per environment, the popup flow
(authorize with state, PKCE S256 and a binding cookie; the callback; the sealed tokens), and
refreshing access tokens one process at a time."""

from __future__ import annotations

from embedded_ui.oauth.clients import (
    ClientCredentials,
    OAuthClientService,
    describe_oauth_client,
    oauth_scheme,
)
from embedded_ui.oauth.flows import OAuthFlowService, OAuthPopup, describe_flow
from embedded_ui.oauth.provider import ProviderClient, ProviderError
from embedded_ui.oauth.refresh import (
    CredentialBroken,
    ProviderUnavailable,
    fresh_secret,
    fresh_secret_for,
)

__all__ = [
    "ClientCredentials",
    "CredentialBroken",
    "OAuthClientService",
    "OAuthFlowService",
    "OAuthPopup",
    "ProviderClient",
    "ProviderError",
    "ProviderUnavailable",
    "describe_flow",
    "describe_oauth_client",
    "fresh_secret",
    "fresh_secret_for",
    "oauth_scheme",
]
