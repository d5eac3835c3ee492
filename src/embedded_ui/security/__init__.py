"""API keys, user tokens and rate limits."""

from __future__ import annotations

from embedded_ui.security import api_keys
from embedded_ui.security.rate_limit import RateLimiter, create_rate_limiter
from embedded_ui.security.user_tokens import UserClaims, UserTokens, public_jwks

__all__ = [
    "RateLimiter",
    "UserClaims",
    "UserTokens",
    "api_keys",
    "create_rate_limiter",
    "public_jwks",
]
