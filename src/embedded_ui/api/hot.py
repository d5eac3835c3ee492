"""The hot path: the API's busiest successful requests answered before Litestar's machinery.

Litestar spends ~0.2 ms of CPU on each request before and after our handler (routing,
middleware, dependency injection, a session per request, response building; measured with
``bench/profile_routes.py``), more than the handler itself. For the few routes an ISV calls on
every page view, the service answers here instead, on SQLite's inline reader
(store/inline.py), with the same services' statements and the same response types —
``GET /users/{id}``, ``GET /users/{id}/token`` and the listing ``GET /integrations?userId=``
(an API key only; its JSON from the route's own per-revision cache):

- only a request that succeeds is answered here: anything else — a missing, malformed,
  unknown or revoked key, an unknown user, an ``Origin`` header (CORS), a user token, a query
  other than the route's one parameter, a body, a reader that could not answer at once, a
  listing whose JSON is not cached for the current revision yet — falls through to Litestar
  *unchanged*, which then decides and explains with the one error tree (errors.py);
- the rate limit is counted here once; a request that falls through carries that count in its
  scope, so Litestar's auth neither counts it again nor forgets a refusal;
- responses carry the same headers (the same ``security_headers`` hook) and the same bytes as
  Litestar's, which ``tests/integration/test_hot_path.py`` checks route by route with the hot
  path on and off.

Only with a SQLite file database (where the inline reader exists) and ``EMBEDDED_UI_HOT_PATH``
on (the default).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast
from urllib.parse import unquote

import msgspec
from litestar.types import HTTPScope, Message, Scope, Send

from embedded_ui.api.auth import RATE_COUNTED, USER_TOKEN_HEADER, Principal
from embedded_ui.api.schemas import UserOut
from embedded_ui.api.users import mint_token
from embedded_ui.errors import Unauthorized
from embedded_ui.integrations.cache import ReleasedCache
from embedded_ui.integrations.installations import listing_inline
from embedded_ui.security import RateLimiter, UserTokens, api_keys
from embedded_ui.store.inline import InlineReader
from embedded_ui.users import read_inline
from embedded_ui.workspaces import known_key

# The routes answered here, on the current prefix (older ones are aliased before this runs).
# "batch" is a static sibling of ``/users/{userId}`` (POST only): Litestar answers GET on it
# with 405, so it is never taken for a user reference here.
_USER = re.compile(r"/2024-03/users/(?!batch$)([^/]+)")
_TOKEN = re.compile(r"/2024-03/users?/([^/]+)/token")
_LISTING = "/2024-03/integrations"
# The listing's query: exactly ``userId=<value>``, the one parameter its route takes, in plain
# characters and percent escapes (no ``+``, no repeat, nothing else); anything else falls
# through. The value is decoded as the route's parser does (parse_qsl: UTF-8, percent escapes).
_USER_QUERY = re.compile(rb"userId=((?:[A-Za-z0-9._~!$'()*,;:@-]|%[0-9A-Fa-f]{2})+)")
_USER_TOKEN_HEADER = USER_TOKEN_HEADER.encode()
_JSON_HEADERS = ((b"content-type", b"application/json"),)

Handler = Callable[[Principal, str], Awaitable[bytes | None]]


@dataclass(frozen=True, slots=True)
class HotPath:
    reader: InlineReader
    tokens: UserTokens
    limiter: RateLimiter
    add_headers: Callable[[Message, Scope], Awaitable[None]]
    released: ReleasedCache
    """The listing's cache: the same object as the route's (``app.state.released_cache``)."""

    async def __call__(self, scope: HTTPScope, send: Send) -> bool:
        """Answer ``scope`` and return ``True``, or return ``False`` having sent nothing."""
        if scope["method"] != "GET":
            return False
        path: str = scope["path"]
        handler: Handler
        # A route that also takes a user token (``auth="api_key_or_user"``) is answered here
        # only for an API key: with a user token the ordinary path decides.
        either = False
        if path == _LISTING:
            query = _USER_QUERY.fullmatch(scope["query_string"])
            if query is None:
                return False
            argument = unquote(query.group(1).decode("ascii"))
            if "\ufffd" in argument:  # an escape that is not UTF-8: let the route decide
                return False
            handler, either = self._listing, True
        elif (match := _USER.fullmatch(path)) is not None:
            handler, argument = self._user, match.group(1)
        elif (match := _TOKEN.fullmatch(path)) is not None:
            handler, argument = self._token, match.group(1)
        else:
            return False
        principal = await self._principal(scope, either)
        if principal is None:
            return False
        body = await handler(principal, argument)
        if body is None:
            return False
        await self._send_json(scope, send, body)
        return True

    async def _principal(self, scope: Scope, either: bool = False) -> Principal | None:
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"origin":
                return None  # CORS decisions stay in cors.py
            elif either and name == _USER_TOKEN_HEADER:
                return None  # a user token: not counted here, auth.py decides
        if authorization is None:
            return None
        parsed = _parse_key(authorization)
        if parsed is None:  # the ordinary path refuses it, with the reason
            return None
        environment, key_hash = parsed
        key = known_key(environment, key_hash, self.reader)
        if key is None:
            return None
        retry_after = await self.limiter.hit(f"key:{key_hash[:32]}")
        cast("dict[str, Any]", scope)[RATE_COUNTED] = retry_after
        if retry_after is not None:
            return None
        return Principal(scope=key.scope, actor=f"api_key:{key.key_id}")

    async def _user(self, principal: Principal, reference: str) -> bytes | None:
        user = read_inline(self.reader, principal.scope, reference)
        return None if user is None else msgspec.json.encode(UserOut.of(user))

    async def _listing(self, principal: Principal, reference: str) -> bytes | None:
        """``GET /integrations?userId=``: the user as ``resolve_user`` finds it for an API
        key (by id, then by username), then ``InstallationService.integrations_json``."""
        user = read_inline(self.reader, principal.scope, reference)
        if user is None:
            return None
        return listing_inline(self.reader, self.released, principal.scope, user.id)

    async def _token(self, principal: Principal, reference: str) -> bytes | None:
        user = read_inline(self.reader, principal.scope, reference)
        if user is None:
            return None
        return msgspec.json.encode(mint_token(self.tokens, principal, user))

    async def _send_json(self, scope: Scope, send: Send, body: bytes) -> None:
        start: dict[str, Any] = {
            "type": "http.response.start",
            "status": 200,
            "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
        }
        await self.add_headers(start, scope)  # type: ignore[arg-type]
        await send(start)  # type: ignore[arg-type]
        await send({"type": "http.response.body", "body": body, "more_body": False})


@lru_cache(maxsize=1024)
def _parse_key(authorization: str) -> tuple[str, str] | None:
    """``(environment, key hash)`` of an ``Authorization`` header, or ``None`` when it is not
    a well-formed API key. A pure function of the header, so remembered for the few keys an
    ISV's servers send (the checksum, base-62 digits and SHA-256 were ~8 µs a request)."""
    try:
        return api_keys.parse(api_keys.bearer_credential(authorization))
    except Unauthorized:
        return None
