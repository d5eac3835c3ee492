"""The sandbox's OAuth 2.0 authorization server: Authlib's server side, adapted to Litestar.

Authlib ships server integrations for Flask and Django only. Its framework-neutral
:class:`authlib.oauth2.rfc6749.AuthorizationServer` needs three things from a framework:
``create_oauth2_request`` (an :class:`OAuth2Request` whose ``payload`` carries the parameters),
``handle_response`` (status, body, headers → a response) and ``send_signal``. Authlib is
synchronous while Litestar reads bodies asynchronously, so handlers read the query and form
first into a :class:`RequestSnapshot`, then call Authlib with it.

What the server enforces:

* authorization code grant only, for one confidential client (client_secret_basic or
  client_secret_post), with an exact redirect URI from an allow-list (no default is assumed);
* PKCE on every authorization request, ``S256`` only: a missing challenge, ``plain`` or an
  absent method is refused;
* codes are single-use and live 60 s; replaying a used code revokes every token it produced;
* refresh tokens rotate: each refresh issues a new refresh token and the old one stops working;
* the authorization response carries ``iss`` (RFC 9207), which a test hook can omit or falsify.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
    grants,
    list_to_scope,
    scope_to_list,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge, create_s256_code_challenge
from litestar import Response
from litestar.datastructures import Headers

from embedded_ui.sandbox.store import (
    CODE_TTL,
    SCOPES,
    Account,
    AuthorizationCode,
    OAuthClient,
    SandboxState,
    Token,
)

TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
WRONG_ISSUER = "https://issuer.invalid"


@dataclass(frozen=True, slots=True)
class RequestSnapshot:
    """What Authlib needs of one HTTP request, read in full before Authlib runs."""

    method: str
    url: str
    headers: Headers | Mapping[str, str]
    query: list[tuple[str, str]]
    form: list[tuple[str, str]]


class _Payload(OAuth2Payload):  # type: ignore[misc]
    """The OAuth parameters of one request: first value per name, and every value per name."""

    def __init__(self, params: list[tuple[str, str]]) -> None:
        self._data: dict[str, str] = {}
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in params:
            self._data.setdefault(key, value)
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class LitestarOAuth2Request(OAuth2Request):  # type: ignore[misc]
    """Authorization requests take parameters from the query, token requests from the body."""

    def __init__(self, snapshot: RequestSnapshot) -> None:
        super().__init__(method=snapshot.method, uri=snapshot.url, headers=snapshot.headers)
        self._args = dict(reversed(snapshot.query))
        self._form = dict(reversed(snapshot.form))
        self.payload = _Payload(snapshot.form if snapshot.method == "POST" else snapshot.query)

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class SandboxClient(ClientMixin):  # type: ignore[misc]
    def __init__(self, client: OAuthClient) -> None:
        self.client = client

    @property
    def client_id(self) -> str:
        return self.client.client_id

    def get_client_id(self) -> str:
        return self.client.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # the request must name one of the registered URIs

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = self.client.scopes
        if not scope:
            return str(list_to_scope(list(allowed)))
        return str(list_to_scope([s for s in scope_to_list(scope) if s in allowed]))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.client.redirect_uris  # exact string match

    def check_client_secret(self, client_secret: str) -> bool:
        return hmac.compare_digest(self.client.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in TOKEN_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


class S256CodeChallenge(CodeChallenge):  # type: ignore[misc]
    """PKCE required on every authorization request, S256 only (RFC 9700 §2.1.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    CODE_CHALLENGE_METHODS = {
        "S256": lambda verifier, challenge: hmac.compare_digest(
            create_s256_code_challenge(verifier), challenge
        )
    }

    def validate_code_challenge(self, grant: Any, redirect_uri: str | None) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError(
                "PKCE is required: send code_challenge with code_challenge_method=S256."
            )
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Only code_challenge_method=S256 is supported.")
        super().validate_code_challenge(grant, redirect_uri)


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    @property
    def state(self) -> SandboxState:
        state: SandboxState = self.server.state
        return state

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.state.codes[code] = AuthorizationCode(
            code=code,
            client_id=request.client.get_client_id(),
            account_id=request.user.id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            grant_id=secrets.token_hex(8),
            expires_at=time.time() + CODE_TTL,
        )

    def query_authorization_code(
        self, code: str, client: SandboxClient
    ) -> AuthorizationCode | None:
        replayed = self.state.used_codes.get(code)
        if replayed is not None:
            # RFC 6749 §4.1.2: a code used twice revokes what it was exchanged for.
            self.state.revoke_grant(replayed)
            return None
        item = self.state.codes.get(code)
        if item is None or item.client_id != client.get_client_id():
            return None
        if item.is_expired():
            del self.state.codes[code]
            return None
        return item

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        self.state.codes.pop(authorization_code.code, None)
        self.state.used_codes[authorization_code.code] = authorization_code.grant_id

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Account | None:
        return self.state.accounts.get(authorization_code.account_id)


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every refresh issues a new refresh token

    @property
    def state(self) -> SandboxState:
        state: SandboxState = self.server.state
        return state

    def authenticate_refresh_token(self, refresh_token: str) -> TokenModel | None:
        token = self.state.tokens_by_refresh.get(refresh_token)
        if token is None or token.refresh_revoked:
            return None
        return TokenModel(token)

    def authenticate_user(self, refresh_token: TokenModel) -> Account | None:
        return self.state.accounts.get(refresh_token.token.account_id)

    def revoke_old_credential(self, refresh_token: TokenModel) -> None:
        refresh_token.token.refresh_revoked = True


class TokenModel:
    """Authlib's TokenMixin over a stored token (duck-typed: the mixin only declares methods)."""

    def __init__(self, token: Token) -> None:
        self.token = token

    def check_client(self, client: SandboxClient) -> bool:
        return self.token.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.token.scope

    def get_expires_in(self) -> int:
        return self.token.expires_in

    def is_expired(self) -> bool:
        return self.token.access_expired()

    def is_revoked(self) -> bool:
        return self.token.refresh_revoked


class SandboxAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    """Authlib's server bound to the sandbox's state, answering with Litestar responses."""

    def __init__(self, state: SandboxState) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.state = state
        self.issuer = state.config.public_url
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=lambda **_: "sbxat_" + secrets.token_urlsafe(32),
                refresh_token_generator=lambda **_: "sbxrt_" + secrets.token_urlsafe(32),
                expires_generator=state.config.token_ttl,
            ),
        )
        self.register_grant(AuthorizationCodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(RefreshTokenGrant)

    # the framework adapter ------------------------------------------------------------------

    def create_oauth2_request(self, request: RequestSnapshot | OAuth2Request) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return LitestarOAuth2Request(request)

    def create_json_request(self, request: object) -> None:
        raise NotImplementedError("the sandbox has no JSON OAuth endpoints")

    def handle_response(
        self, status_code: int, payload: Any, headers: list[tuple[str, str]]
    ) -> Response[bytes]:
        if isinstance(payload, dict):
            body = json.dumps(payload).encode()
        else:
            body = str(payload or "").encode()
        header_map = dict(headers)
        media_type = header_map.pop("Content-Type", "text/plain; charset=utf-8")
        return Response(body, status_code=status_code, headers=header_map, media_type=media_type)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """Authlib announces events such as `after_authenticate_client`; nothing listens."""

    # the storage hooks ----------------------------------------------------------------------

    def query_client(self, client_id: str) -> SandboxClient | None:
        expected = self.state.client.client_id.encode()
        if client_id and hmac.compare_digest(str(client_id).encode(), expected):
            return SandboxClient(self.state.client)
        return None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        if request.authorization_code is not None:
            grant_id = request.authorization_code.grant_id
        else:
            grant_id = request.refresh_token.token.grant_id
        self.state.add_token(
            Token(
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                client_id=request.client.get_client_id(),
                account_id=request.user.id,
                scope=token.get("scope", ""),
                issued_at=time.time(),
                expires_in=int(token["expires_in"]),
                grant_id=grant_id,
            )
        )

    # the endpoints --------------------------------------------------------------------------

    def issuer_for_response(self) -> str | None:
        mode = self.state.behaviour.authorize_iss
        return None if mode == "omit" else WRONG_ISSUER if mode == "wrong" else self.issuer

    def add_issuer(self, response: Response[bytes]) -> Response[bytes]:
        """RFC 9207: every authorization response names its issuer, errors included."""
        location = response.headers.get("Location")
        issuer = self.issuer_for_response()
        if location and issuer:
            response.headers["Location"] = add_params_to_uri(location, [("iss", issuer)])
        return response

    def validate_authorization(self, snapshot: RequestSnapshot) -> Any:
        """The validated grant for a consent page; raises OAuth2Error when the request is bad."""
        return self.get_consent_grant(snapshot)

    def decide(self, grant: Any, account: Account | None) -> Response[bytes]:
        """Approve (an account) or deny (None): a redirect to the client either way."""
        response: Response[bytes] = self.create_authorization_response(
            grant.request, grant_user=account, grant=grant
        )
        return self.add_issuer(response)

    def error_redirect(self, error: OAuth2Error) -> Response[bytes] | None:
        """Redirect an error to the client when its redirect URI was validated; else None."""
        if not error.redirect_uri:
            return None
        response: Response[bytes] = self.handle_response(*error())
        return self.add_issuer(response)

    def token_response(self, snapshot: RequestSnapshot) -> Response[bytes]:
        try:
            response: Response[bytes] = self.create_token_response(snapshot)
        except OAuth2Error as error:  # raised while reading the request, e.g. insecure transport
            response = self.handle_response(*error())
        return response

    def metadata(self) -> dict[str, Any]:
        """RFC 8414 authorization server metadata."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/oauth/authorize",
            "token_endpoint": f"{self.issuer}/oauth/token",
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": TOKEN_AUTH_METHODS,
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
        }
