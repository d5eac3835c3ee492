"""User tokens: short-lived Ed25519 JWTs that let an end user's browser act for that user only.

Verification follows RFC 8725: the algorithm is pinned (never read from the header), the key
comes only from our own key set by ``kid`` (``jku``/``x5u``/``jwk`` headers are ignored), the
explicit ``typ`` is required, every registered claim is required, and the lifetime may not
exceed :data:`~embedded_ui.settings.MAX_USER_TOKEN_TTL` whatever the token says.
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from embedded_ui.errors import Unauthorized
from embedded_ui.settings import MAX_USER_TOKEN_TTL, SigningKey

TOKEN_TYPE = "eui-user+jwt"  # noqa: S105 (the JWT typ header value)
AUDIENCE = "embedded-ui:user"
ALGORITHM = "EdDSA"
LEEWAY_SECONDS = 30
_REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "nbf", "exp", "jti"]
_ENVIRONMENTS = ("development", "production")


@dataclass(frozen=True, slots=True)
class UserClaims:
    """What a verified user token says: who, for which workspace environment, until when."""

    user_id: str
    workspace_id: str
    environment: str
    token_id: str
    expires_at: int


class UserTokens:
    """Issues and verifies user tokens with the configured key set (first key signs)."""

    def __init__(self, keys: tuple[SigningKey, ...], issuer: str, ttl: int) -> None:
        if not keys:
            raise ValueError("at least one signing key is required")
        self._signer = keys[0]
        self._header_segment = _b64(
            msgspec.json.encode({"alg": ALGORITHM, "kid": self._signer.kid, "typ": TOKEN_TYPE})
        )
        self._public: dict[str, Ed25519PublicKey] = {
            key.kid: key.private_key.public_key() for key in keys
        }
        self._issuer = issuer
        self._ttl = min(ttl, MAX_USER_TOKEN_TTL)

    def issue(self, *, user_id: str, workspace_id: str, environment: str) -> tuple[str, int]:
        """Return ``(token, expires_at)`` for one user of one workspace environment."""
        now = int(time.time())
        expires_at = now + self._ttl
        claims = {
            "iss": self._issuer,
            "aud": AUDIENCE,
            "sub": user_id,
            "iat": now,
            "nbf": now,
            "exp": expires_at,
            "jti": secrets.token_urlsafe(16),
            "workspace": workspace_id,
            "environment": environment,
        }
        # The JWS compact form by hand (RFC 7515 §7.1): PyJWT's encode re-serialises the
        # constant header and re-checks its arguments on every call, which made it half the
        # cost of the SDK's token route besides the signature itself. Verification stays
        # PyJWT's, and the tests decode every issued token with it.
        signing_input = self._header_segment + b"." + _b64(msgspec.json.encode(claims))
        signature = self._signer.private_key.sign(signing_input)
        return (signing_input + b"." + _b64(signature)).decode("ascii"), expires_at

    def verify(self, token: str) -> UserClaims:
        """Return the claims of a valid token or raise :class:`Unauthorized`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("The user token is malformed.") from None
        if header.get("typ") != TOKEN_TYPE:
            raise Unauthorized(f"The user token must have typ {TOKEN_TYPE!r}.")
        kid = header.get("kid")
        key = self._public.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized("The user token was signed with an unknown key.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=AUDIENCE,
                issuer=self._issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": _REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("The user token has expired; fetch a new one.") from None
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"The user token is invalid: {_reason(exc)}.") from None
        return _check_claims(claims)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _reason(exc: jwt.PyJWTError) -> str:
    # PyJWT's messages name the failing claim and never echo the token.
    return str(exc).rstrip(".") or type(exc).__name__


def _check_claims(claims: dict[str, Any]) -> UserClaims:
    issued_at, expires_at = claims["iat"], claims["exp"]
    if not isinstance(issued_at, int) or not isinstance(expires_at, int):
        raise Unauthorized("The user token is invalid: iat and exp must be integers.")
    if issued_at > time.time() + LEEWAY_SECONDS:
        raise Unauthorized("The user token is invalid: issued in the future.")
    if expires_at - issued_at > MAX_USER_TOKEN_TTL:
        raise Unauthorized("The user token is invalid: its lifetime exceeds the maximum.")
    user_id, workspace_id = claims.get("sub"), claims.get("workspace")
    environment = claims.get("environment")
    if not isinstance(user_id, str) or not user_id:
        raise Unauthorized("The user token is invalid: sub must name a user.")
    if not isinstance(workspace_id, str) or not workspace_id:
        raise Unauthorized("The user token is invalid: the workspace claim is required.")
    if environment not in _ENVIRONMENTS:
        raise Unauthorized("The user token is invalid: the environment claim is required.")
    return UserClaims(user_id, workspace_id, str(environment), str(claims["jti"]), expires_at)


def public_jwks(keys: tuple[SigningKey, ...]) -> dict[str, list[dict[str, Any]]]:
    """The public half of every configured key, as a JSON Web Key Set."""
    entries = []
    for key in keys:
        jwk: dict[str, Any] = OKPAlgorithm.to_jwk(key.private_key.public_key(), as_dict=True)
        entries.append({**jwk, "kid": key.kid, "use": "sig", "alg": ALGORITHM})
    return {"keys": entries}
