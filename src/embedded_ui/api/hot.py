"""The hot path: the API's busiest successful requests answered before Litestar's machinery.

Litestar spends ~0.2 ms of CPU on each request before and after our handler (routing,
middleware, dependency injection, a session per request, response building; measured with
``bench/profile_routes.py``), more than the handler itself. For the few routes an ISV calls on
every page view, the service answers here instead, on SQLite's inline reader
(store/inline.py), with the same services' statements and the same response types:

- only a request that succeeds is answered here: anything else — a missing, malformed,
  unknown or revoked key, an unknown user, an ``Origin`` header (CORS), a body, a reader that
  could not answer at once — falls through to Litestar *unchanged*, which then decides and
  explains with the one error tree (errors.py);
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
from typing import Any, cast

import msgspec
from litestar.types import HTTPScope, Message, Scope, Send

from embedded_ui.api.auth import RATE_COUNTED, Principal
from embedded_ui.api.schemas import UserOut
from embedded_ui.api.users import mint_token
from embedded_ui.errors import Unauthorized
from embedded_ui.security import RateLimiter, UserTokens, api_keys
from embedded_ui.store.inline import InlineReader
from embedded_ui.users import read_inline
from embedded_ui.workspaces import known_key

# The routes answered here, on the current prefix (older ones are aliased before this runs).
# "batch" is a static sibling of ``/users/{userId}`` (POST only): Litestar answers GET on it
# with 405, so it is never taken for a user reference here.
_USER = re.compile(r"/2024-03/users/(?!batch$)([^/]+)")
_TOKEN = re.compile(r"/2024-03/users?/([^/]+)/token")
_JSON_HEADERS = ((b"content-type", b"application/json"),)

Handler = Callable[[Principal, str], Awaitable[bytes | None]]


@dataclass(frozen=True, slots=True)
class HotPath:
    reader: InlineReader
    tokens: UserTokens
    limiter: RateLimiter
    add_headers: Callable[[Message, Scope], Awaitable[None]]

    async def __call__(self, scope: HTTPScope, send: Send) -> bool:
        """Answer ``scope`` and return ``True``, or return ``False`` having sent nothing."""
        if scope["method"] != "GET":
            return False
        path: str = scope["path"]
        handler: Handler
        match = _USER.fullmatch(path)
        if match is not None:
            handler = self._user
        else:
            match = _TOKEN.fullmatch(path)
            if match is None:
                return False
            handler = self._token
        principal = await self._principal(scope)
        if principal is None:
            return False
        body = await handler(principal, match.group(1))
        if body is None:
            return False
        await self._send_json(scope, send, body)
        return True

    async def _principal(self, scope: Scope) -> Principal | None:
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
            elif name == b"origin":
                return None  # CORS decisions stay in cors.py
        if authorization is None:
            return None
        try:
            environment, key_hash = api_keys.parse(api_keys.bearer_credential(authorization))
        except Unauthorized:  # the ordinary path refuses it, with the reason
            return None
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
