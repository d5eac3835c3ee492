"""User tokens end to end: minted over HTTP, presented to the user-token route, and forged.

Every forged token starts from claims that verify (``test_a_forged_token_with_valid_claims_is_
accepted`` proves the forging is right), then breaks exactly one thing, so each 401 is caused by
the thing under test. RFC 8725 and the security anchors §2 and adversarial cases 10-12.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm
from litestar import Litestar
from litestar.testing import AsyncTestClient

from conftest import PUBLIC_URL, TEST_SIGNING_SEED
from embedded_ui.app import create_app
from embedded_ui.security.user_tokens import AUDIENCE, TOKEN_TYPE
from embedded_ui.settings import MAX_USER_TOKEN_TTL, Settings, SigningKey

SESSION = "/2024-03/session"
TEST_KID = "test-1"
TEST_KEY = Ed25519PrivateKey.from_private_bytes(
    base64.urlsafe_b64decode(TEST_SIGNING_SEED + "=" * (-len(TEST_SIGNING_SEED) % 4))
)
ATTACKER_KEY = Ed25519PrivateKey.generate()


@dataclass(frozen=True)
class EndUser:
    user_id: str
    workspace_id: str
    environment: str
    headers: dict[str, str]  # the tenant's API-key headers


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """Another instance of the service, on the same database, with other settings."""
    async with AsyncTestClient(create_app(settings), base_url=PUBLIC_URL) as other:
        yield other


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A JWS built by hand, so nothing in a library can refuse to make a bad one."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def unauthorized(response: Any, *fragments: str) -> None:
    """A 401 with the one error body; ``fragments`` must appear in its message."""
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"message", "code"}, body
    assert body["code"] == "unauthorized"
    assert isinstance(body["message"], str)
    assert body["message"]
    for fragment in fragments:
        assert fragment.lower() in body["message"].lower(), body["message"]


async def new_user(client: AsyncTestClient[Litestar], tenant: Any, username: str) -> EndUser:
    created = await client.post(
        "/2024-03/users", json={"username": username}, headers=tenant.headers
    )
    assert created.status_code == 201, created.text
    return EndUser(
        created.json()["userId"], tenant.workspace_id, tenant.environment, tenant.headers
    )


async def token_for(client: AsyncTestClient[Litestar], user: EndUser, path: str = "users") -> str:
    version = "2022-09" if path == "user" else "2024-03"
    response = await client.get(f"/{version}/{path}/{user.user_id}/token", headers=user.headers)
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def valid_claims(user: EndUser, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": PUBLIC_URL,
        "aud": AUDIENCE,
        "sub": user.user_id,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": secrets.token_urlsafe(16),
        "workspace": user.workspace_id,
        "environment": user.environment,
    }
    claims.update(changes)
    return claims


def forge(
    claims: dict[str, Any],
    *,
    key: Ed25519PrivateKey = TEST_KEY,
    kid: str | None = TEST_KID,
    typ: str | None = TOKEN_TYPE,
    **extra_header: Any,
) -> str:
    header: dict[str, Any] = dict(extra_header)
    if kid is not None:
        header["kid"] = kid
    if typ is not None:
        header["typ"] = typ
    return jwt.encode(claims, key, algorithm="EdDSA", headers=header)


def user_token_header(token: str) -> dict[str, str]:
    return {"x-alloy-user-token": token}


@pytest.fixture
async def user(client: AsyncTestClient[Litestar], tenant: Any) -> EndUser:
    return await new_user(client, tenant, "merchant-1")


# --- the happy path ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["users", "user"])
async def test_a_minted_token_has_every_claim_and_header(
    client: AsyncTestClient[Litestar], user: EndUser, path: str
) -> None:
    version = "2022-09" if path == "user" else "2024-03"
    before = int(time.time())
    response = await client.get(f"/{version}/{path}/{user.user_id}/token", headers=user.headers)
    after = int(time.time())
    assert response.status_code == 200, response.text
    body = response.json()
    token = body["token"]

    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == TEST_KID
    assert header["typ"] == TOKEN_TYPE

    claims = jwt.decode(
        token,
        TEST_KEY.public_key(),
        algorithms=["EdDSA"],
        audience=AUDIENCE,
        issuer=PUBLIC_URL,
    )
    assert set(claims) >= {
        "iss",
        "aud",
        "sub",
        "iat",
        "nbf",
        "exp",
        "jti",
        "workspace",
        "environment",
    }
    assert claims["iss"] == PUBLIC_URL
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == user.user_id
    assert claims["workspace"] == user.workspace_id
    assert claims["environment"] == "development"
    assert before <= claims["iat"] <= after
    assert claims["nbf"] == claims["iat"]
    assert claims["exp"] - claims["iat"] == 3600
    assert isinstance(claims["jti"], str)
    assert len(claims["jti"]) >= 16
    # expiresAt is the exp claim, in Alloy's millisecond ISO shape.
    assert body["expiresAt"] == time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(claims["exp"]))


async def test_each_token_has_its_own_jti(client: AsyncTestClient[Litestar], user: EndUser) -> None:
    tokens = [await token_for(client, user) for _ in range(3)]
    ids = {jwt.decode(t, options={"verify_signature": False})["jti"] for t in tokens}
    assert len(ids) == 3


async def test_the_lifetime_follows_the_ttl_setting(
    client: AsyncTestClient[Litestar], tenant: Any, database_url: str, user: EndUser
) -> None:
    settings = Settings.from_env(
        {
            "EMBEDDED_UI_DATABASE_URL": database_url,
            "EMBEDDED_UI_SIGNING_KEYS": f"{TEST_KID}:{TEST_SIGNING_SEED}",
            "EMBEDDED_UI_PUBLIC_URL": PUBLIC_URL,
            "EMBEDDED_UI_USER_TOKEN_TTL": "600",
            "EMBEDDED_UI_LOG_LEVEL": "WARNING",
        }
    )
    assert settings.user_token_ttl == 600
    async with running(settings) as short_lived:
        token = await token_for(short_lived, user)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 600
        accepted = await short_lived.get(SESSION, headers=user_token_header(token))
        assert accepted.status_code == 200, accepted.text


@pytest.mark.parametrize("path", ["users", "user"])
@pytest.mark.parametrize("scheme", ["x-alloy-user-token", "Bearer", "bearer"])
async def test_the_session_route_accepts_a_minted_token(
    client: AsyncTestClient[Litestar], user: EndUser, path: str, scheme: str
) -> None:
    token = await token_for(client, user, path)
    headers = (
        user_token_header(token)
        if scheme == "x-alloy-user-token"
        else {"Authorization": f"{scheme} {token}"}
    )
    response = await client.get(SESSION, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "userId": user.user_id,
        "workspaceId": user.workspace_id,
        "environment": "development",
    }


async def test_a_production_token_reports_production(
    client: AsyncTestClient[Litestar], make_tenant: Any
) -> None:
    dev = await new_user(client, await make_tenant("acme", "development"), "same-name")
    prod = await new_user(client, await make_tenant("acme", "production"), "same-name")
    assert dev.workspace_id == prod.workspace_id
    assert dev.user_id != prod.user_id

    for end_user, environment in ((dev, "development"), (prod, "production")):
        token = await token_for(client, end_user)
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["environment"] == environment
        response = await client.get(SESSION, headers=user_token_header(token))
        assert response.status_code == 200, response.text
        assert response.json() == {
            "userId": end_user.user_id,
            "workspaceId": end_user.workspace_id,
            "environment": environment,
        }


async def test_a_forged_token_with_valid_claims_is_accepted(
    client: AsyncTestClient[Litestar], user: EndUser
) -> None:
    """The control for every forgery below: only the broken part makes them fail."""
    response = await client.get(SESSION, headers=user_token_header(forge(valid_claims(user))))
    assert response.status_code == 200, response.text
    assert response.json()["userId"] == user.user_id


async def test_no_token_is_401(client: AsyncTestClient[Litestar], user: EndUser) -> None:
    unauthorized(await client.get(SESSION), "user token")


async def test_an_api_key_is_not_a_user_token(
    client: AsyncTestClient[Litestar], user: EndUser
) -> None:
    unauthorized(await client.get(SESSION, headers=user.headers), "user token")


async def test_a_user_token_is_not_an_api_key(
    client: AsyncTestClient[Litestar], user: EndUser
) -> None:
    token = await token_for(client, user)
    for path in ("/2024-03/users", f"/2024-03/users/{user.user_id}"):
        unauthorized(await client.get(path, headers={"Authorization": f"Bearer {token}"}))
        unauthorized(await client.get(path, headers=user_token_header(token)))


# --- algorithm confusion -------------------------------------------------------------------


async def test_alg_none_is_401(client: AsyncTestClient[Litestar], user: EndUser) -> None:
    header = {"alg": "none", "kid": TEST_KID, "typ": TOKEN_TYPE}
    for token in (
        compact(header, valid_claims(user), lambda _: b""),
        jwt.encode(valid_claims(user), None, algorithm="none", headers=header),
    ):
        unauthorized(await client.get(SESSION, headers=user_token_header(token)))


def _public_key_forms() -> dict[str, bytes]:
    public = TEST_KEY.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {"raw": raw, "pem": pem, "jwk-x": _b64(raw).encode()}


@pytest.mark.parametrize("form", ["raw", "pem", "jwk-x"])
async def test_hs256_keyed_with_the_public_key_is_401(
    client: AsyncTestClient[Litestar], user: EndUser, form: str
) -> None:
    secret = _public_key_forms()[form]
    token = compact(
        {"alg": "HS256", "kid": TEST_KID, "typ": TOKEN_TYPE},
        valid_claims(user),
        lambda data: hmac.new(secret, data, hashlib.sha256).digest(),
    )
    unauthorized(await client.get(SESSION, headers=user_token_header(token)))


async def test_a_token_signed_by_another_key_is_401(
    client: AsyncTestClient[Litestar], user: EndUser
) -> None:
    token = forge(valid_claims(user), key=ATTACKER_KEY)
    unauthorized(await client.get(SESSION, headers=user_token_header(token)), "invalid")


async def test_a_tampered_payload_is_401(client: AsyncTestClient[Litestar], user: EndUser) -> None:
    token = await token_for(client, user)
    head, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["exp"] += 60
    tampered = f"{head}.{_b64(json.dumps(claims).encode())}.{signature}"
    unauthorized(await client.get(SESSION, headers=user_token_header(tampered)), "signature")


@pytest.mark.parametrize("kid", ["unknown", "", None, "TEST-1"])
async def test_an_unknown_kid_is_401(
    client: AsyncTestClient[Litestar], user: EndUser, kid: str | None
) -> None:
    token = forge(valid_claims(user), kid=kid)
    unauthorized(await client.get(SESSION, headers=user_token_header(token)), "unknown key")


async def test_a_non_string_kid_is_401(client: AsyncTestClient[Litestar], user: EndUser) -> None:
    token = compact(
        {"alg": "EdDSA", "kid": ["test-1"], "typ": TOKEN_TYPE}, valid_claims(user), TEST_KEY.sign
    )
    unauthorized(await client.get(SESSION, headers=user_token_header(token)))


# --- key references in the header: never followed ----------------------------------------


class _KeyServer(BaseHTTPRequestHandler):
    """Serves the attacker's key set and remembers every request made to it."""

    hits: list[str]
    jwks: bytes

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.jwks)))
        self.end_headers()
        self.wfile.write(self.jwks)

    def log_message(self, *args: Any) -> None:
        return None


@dataclass(frozen=True)
class Attacker:
    url: str
    hits: list[str]
    jwk: dict[str, Any]


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    """A live server holding a JWKS with the attacker's key: if it were fetched, it would
    verify the attacker's tokens. It records every hit."""
    jwk: dict[str, Any] = OKPAlgorithm.to_jwk(ATTACKER_KEY.public_key(), as_dict=True)
    hits: list[str] = []
    handler = type(
        "Handler",
        (_KeyServer,),
        {"hits": hits, "jwks": json.dumps({"keys": [{**jwk, "kid": "evil"}]}).encode()},
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Attacker(f"http://127.0.0.1:{server.server_port}/jwks.json", hits, jwk)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def test_the_attacker_server_is_reachable(attacker: Attacker) -> None:
    """Control: a zero hit count below means nothing asked, not that nothing could."""
    async with httpx.AsyncClient() as http:
        response = await http.get(attacker.url)
    assert response.status_code == 200
    assert response.json()["keys"][0]["kid"] == "evil"
    assert attacker.hits == ["/jwks.json"]


@pytest.mark.parametrize("kid", ["evil", TEST_KID])
@pytest.mark.parametrize("reference", ["jku", "x5u", "jwk"])
async def test_a_key_reference_in_the_header_is_never_followed(
    client: AsyncTestClient[Litestar], user: EndUser, attacker: Attacker, kid: str, reference: str
) -> None:
    value: Any = {**attacker.jwk, "kid": kid} if reference == "jwk" else attacker.url
    token = forge(valid_claims(user), key=ATTACKER_KEY, kid=kid, **{reference: value})
    response = await client.get(SESSION, headers=user_token_header(token))
    unauthorized(response, "unknown key" if kid == "evil" else "signature")
    assert attacker.hits == []


async def test_a_jku_on_a_genuine_token_is_ignored(
    client: AsyncTestClient[Litestar], user: EndUser, attacker: Attacker
) -> None:
    """Our own key still verifies our token; the header's URL is neither trusted nor fetched."""
    token = forge(valid_claims(user), jku=attacker.url)
    response = await client.get(SESSION, headers=user_token_header(token))
    assert response.status_code == 200, response.text
    assert attacker.hits == []


# --- claims --------------------------------------------------------------------------------


async def test_expiry_within_the_leeway_is_accepted(
    client: AsyncTestClient[Litestar], user: EndUser
) -> None:
    now = int(time.time())
    token = forge(valid_claims(user, iat=now - 600, nbf=now - 600, exp=now - 10))
    response = await client.get(SESSION, headers=user_token_header(token))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("past", [35, 3000])
async def test_expiry_beyond_the_leeway_is_401(
    client: AsyncTestClient[Litestar], user: EndUser, past: int
) -> None:
    now = int(time.time())
    token = forge(valid_claims(user, iat=now - 3500, nbf=now - 3500, exp=now - past))
    unauthorized(await client.get(SESSION, headers=user_token_header(token)), "expired")


async def test_nbf_in_the_future_is_401(client: AsyncTestClient[Litestar], user: EndUser) -> None:
    now = int(time.time())
    token = forge(valid_claims(user, nbf=now + 120, exp=now + 900))
    unauthorized(await client.get(SESSION, headers=user_token_header(token)), "nbf")


async def test_iat_in_the_future_is_401(client: AsyncTestClient[Litestar], user: EndUser) -> None:
    now = int(time.time())
    token = forge(valid_claims(user, iat=now + 120, exp=now + 900))
    unauthorized(await client.get(SESSION, headers=user_token_header(token)), "iat")


async def test_a_lifetime_of_exactly_the_maximum_is_accepted(
    client: AsyncTestClient[Litestar], user: EndUser
) -> None:
    now = int(time.time())
    token = forge(valid_claims(user, iat=now, nbf=now, exp=now + MAX_USER_TOKEN_TTL))
    response = await client.get(SESSION, headers=user_token_header(token))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("extra", [1, 86_400 * 365])
async def test_a_lifetime_over_one_hour_is_401(
    client: AsyncTestClient[Litestar], user: EndUser, extra: int
) -> None:
    assert MAX_USER_TOKEN_TTL == 3600
    now = int(time.time())
    token = forge(valid_claims(user, iat=now - 5, nbf=now - 5, exp=now - 5 + 3600 + extra))
    unauthorized(await client.get(SESSION, headers=user_token_header(token)), "lifetime")


@pytest.mark.parametrize(
    "claim", ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "workspace", "environment"]
)
async def test_a_missing_claim_is_401(
    client: AsyncTestClient[Litestar], user: EndUser, claim: str
) -> None:
    claims = valid_claims(user)
    del claims[claim]
    unauthorized(await client.get(SESSION, headers=user_token_header(forge(claims))), claim)


@pytest.mark.parametrize(
    ("claim", "value", "fragment"),
    [
        ("workspace", lambda now: "", "workspace"),
        ("workspace", lambda now: 7, "workspace"),
        ("environment", lambda now: "staging", "environment"),
        ("environment", lambda now: "Production", "environment"),
        ("sub", lambda now: "", "sub"),
        ("iat", lambda now: "now", "iat"),
        ("exp", lambda now: now + 600.0, "exp"),
    ],
)
async def test_a_malformed_claim_is_401(
    client: AsyncTestClient[Litestar],
    user: EndUser,
    claim: str,
    value: Callable[[int], Any],
    fragment: str,
) -> None:
    token = forge(valid_claims(user, **{claim: value(int(time.time()))}))
    unauthorized(await client.get(SESSION, headers=user_token_header(token)), fragment)


@pytest.mark.parametrize("aud", ["embedded-ui:admin", "", ["someone-else"], PUBLIC_URL])
async def test_a_wrong_audience_is_401(
    client: AsyncTestClient[Litestar], user: EndUser, aud: Any
) -> None:
    token = forge(valid_claims(user, aud=aud))
    unauthorized(await client.get(SESSION, headers=user_token_header(token)), "aud")


@pytest.mark.parametrize(
    "iss", ["http://evil.test", PUBLIC_URL + "/", PUBLIC_URL.replace("http:", "https:")]
)
async def test_a_wrong_issuer_is_401(
    client: AsyncTestClient[Litestar], user: EndUser, iss: str
) -> None:
    token = forge(valid_claims(user, iss=iss))
    unauthorized(await client.get(SESSION, headers=user_token_header(token)), "issuer")


@pytest.mark.parametrize("typ", [None, "JWT", "at+jwt", "eui-user", ""])
async def test_a_wrong_or_missing_typ_is_401(
    client: AsyncTestClient[Litestar], user: EndUser, typ: str | None
) -> None:
    token = forge(valid_claims(user), typ=typ)
    unauthorized(await client.get(SESSION, headers=user_token_header(token)), "typ")


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "eyJ.eyJ.sig", "."])
async def test_garbage_is_401(
    client: AsyncTestClient[Litestar], user: EndUser, garbage: str
) -> None:
    unauthorized(await client.get(SESSION, headers=user_token_header(garbage)))


# --- who the token is for -------------------------------------------------------------------


async def test_a_deleted_users_token_stops_working(
    client: AsyncTestClient[Litestar], user: EndUser
) -> None:
    token = await token_for(client, user)
    assert (await client.get(SESSION, headers=user_token_header(token))).status_code == 200

    deleted = await client.delete(f"/2024-03/users/{user.user_id}", headers=user.headers)
    assert deleted.status_code == 200, deleted.text

    unauthorized(await client.get(SESSION, headers=user_token_header(token)), "no longer exists")
    # A token minted before the delete cannot be replaced by a new one either.
    again = await client.get(f"/2024-03/users/{user.user_id}/token", headers=user.headers)
    assert again.status_code == 404


async def test_a_token_whose_claims_name_another_scope_is_401(
    client: AsyncTestClient[Litestar], make_tenant: Any
) -> None:
    """The user is looked up in the token's own workspace and environment only."""
    dev = await new_user(client, await make_tenant("acme", "development"), "only-in-dev")
    prod_tenant = await make_tenant("acme", "production")
    other = await make_tenant("globex", "development")

    for claims in (
        valid_claims(dev, environment="production"),
        valid_claims(dev, workspace=other.workspace_id),
        valid_claims(dev, workspace=prod_tenant.workspace_id, environment="production"),
    ):
        unauthorized(
            await client.get(SESSION, headers=user_token_header(forge(claims))),
            "no longer exists",
        )


# --- key rotation ----------------------------------------------------------------------------


async def test_rotation_keeps_old_tokens_valid_and_publishes_both_keys(
    client: AsyncTestClient[Litestar],
    user: EndUser,
    with_settings: Callable[..., Settings],
    settings: Settings,
) -> None:
    old_token = await token_for(client, user)  # signed by test-1
    new_key = SigningKey("test-2", Ed25519PrivateKey.generate())
    rotated = with_settings(signing_keys=(new_key, *settings.signing_keys))

    async with running(rotated) as service:
        # The old key still verifies what it signed.
        response = await service.get(SESSION, headers=user_token_header(old_token))
        assert response.status_code == 200, response.text
        assert response.json()["userId"] == user.user_id

        # The new key signs from now on, and its tokens verify.
        new_token = await token_for(service, user)
        assert jwt.get_unverified_header(new_token)["kid"] == "test-2"
        jwt.decode(
            new_token,
            new_key.private_key.public_key(),
            algorithms=["EdDSA"],
            audience=AUDIENCE,
            issuer=PUBLIC_URL,
        )
        assert (await service.get(SESSION, headers=user_token_header(new_token))).status_code == 200

        # Both keys are published, public halves only.
        jwks = await service.get("/.well-known/jwks.json")
        assert jwks.status_code == 200
        keys = jwks.json()["keys"]
        assert [k["kid"] for k in keys] == ["test-2", TEST_KID]
        for entry, private in zip(keys, (new_key.private_key, TEST_KEY), strict=True):
            assert entry["kty"] == "OKP"
            assert entry["crv"] == "Ed25519"
            assert entry["alg"] == "EdDSA"
            assert entry["use"] == "sig"
            assert "d" not in entry
            published = OKPAlgorithm.from_jwk(entry)
            assert published.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            ) == private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        # Tokens verify against the published set alone, as a third party would do it.
        by_kid = {k["kid"]: OKPAlgorithm.from_jwk(k) for k in keys}
        for token in (old_token, new_token):
            kid = jwt.get_unverified_header(token)["kid"]
            jwt.decode(
                token, by_kid[kid], algorithms=["EdDSA"], audience=AUDIENCE, issuer=PUBLIC_URL
            )

    # Retire the old key: what it signed stops working, what the new one signed does not.
    retired = with_settings(signing_keys=(new_key,))
    async with running(retired) as service:
        unauthorized(
            await service.get(SESSION, headers=user_token_header(old_token)), "unknown key"
        )
        response = await service.get(SESSION, headers=user_token_header(new_token))
        assert response.status_code == 200, response.text
        kids = [k["kid"] for k in (await service.get("/.well-known/jwks.json")).json()["keys"]]
        assert kids == ["test-2"]


async def test_the_default_jwks_publishes_the_test_key(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    (entry,) = response.json()["keys"]
    assert entry["kid"] == TEST_KID
    assert entry["kty"] == "OKP"
    assert entry["crv"] == "Ed25519"
    assert set(entry) == {"kty", "crv", "x", "kid", "use", "alg"}
