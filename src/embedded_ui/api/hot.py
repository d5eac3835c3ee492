"""The hot path: the API's busiest successful requests answered before Litestar's machinery.

Litestar spends ~0.2 ms of CPU on each request before and after our handler (routing,
middleware, dependency injection, a session per request, response building; measured with
``bench/profile_routes.py``), more than the handler itself. For the few routes an ISV calls
all the time — ``POST /users``, ``GET /users/{id}``, the user-token routes and the listing
``GET /integrations?userId=`` (an API key only; its JSON from the route's own per-revision
cache) — the service answers here instead, on SQLite's inline reader and group-commit
writer (store/inline.py, store/writer.py), with the same services' statements, row builders
and response types:

- ``POST /run/event`` (without an ``Idempotency-Key``) stores its executions through the
  writer and wakes the workers (api/runs.py's ``run_event_inline``);
- only a request that succeeds is answered here: anything else — a missing, malformed,
  unknown or revoked key, an unknown user, an invalid body, a duplicate username, an
  ``Origin`` header (CORS), a user token, a query other than the listing's one parameter, a
  listing not cached for the current revision yet, a database that could not answer at
  once — goes on to Litestar *unchanged* (a body read here is handed on as it came), which
  decides and explains it with the one error tree (errors.py);
- the rate limit is counted here once; a request that goes on carries that count in its
  scope, so Litestar's auth neither counts it again nor forgets a refusal;
- responses carry the same headers (the same ``security_headers`` hook) and the same bytes as
  Litestar's, which ``tests/integration/test_hot_path.py`` checks route by route with the hot
  path on and off.

Only with a SQLite file database and ``EMBEDDED_UI_HOT_PATH`` on (the default).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

import msgspec
import structlog
from litestar.types import (
    HTTPResponseStartEvent,
    HTTPScope,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)
from sqlalchemy import Table

from embedded_ui.api.auth import RATE_COUNTED, USER_TOKEN_HEADER, Principal
from embedded_ui.api.runs import run_event_inline
from embedded_ui.api.schemas import CreateUserIn, UserOut
from embedded_ui.api.users import mint_token
from embedded_ui.errors import EmbeddedUIError, Unauthorized
from embedded_ui.integrations.cache import ReleasedCache
from embedded_ui.integrations.installations import listing_inline
from embedded_ui.security import RateLimiter, UserTokens, api_keys
from embedded_ui.store import User, iso_ms
from embedded_ui.store.inline import InlineReader
from embedded_ui.store.writer import InlineWriter
from embedded_ui.users import NewUser, new_user_row, read_inline
from embedded_ui.workspaces import known_key
from embedded_ui.workspaces.service import KEY_CACHE

log = structlog.get_logger(__name__)

if TYPE_CHECKING:
    from embedded_ui.engine.runtime import EngineRuntime

Ordinary = Callable[[HTTPScope, Receive, Send], Awaitable[None]]
Answer = tuple[int, bytes]
Handler = Callable[[Principal, str, bytes], Awaitable[Answer | None]]

# The routes answered here, on the current prefix (older ones are aliased before this runs).
# "batch" is a static sibling of ``/users/{userId}`` (POST only): Litestar answers GET on it
# with 405, so it is never taken for a user reference here.
_USER = re.compile(r"/2024-03/users/(?!batch$)([^/]+)")
_TOKEN = re.compile(r"/2024-03/users?/([^/]+)/token")
_USERS = "/2024-03/users"
_LISTING = "/2024-03/integrations"
# The listing's query: exactly ``userId=<value>``, the one parameter its route takes, in plain
# characters and percent escapes (no ``+``, no repeat, nothing else); anything else falls
# through. The value is decoded as the route's parser does (parse_qsl: UTF-8, percent escapes).
_USER_QUERY = re.compile(rb"userId=((?:[A-Za-z0-9._~!$'()*,;:@-]|%[0-9A-Fa-f]{2})+)")
_USER_TOKEN_HEADER = USER_TOKEN_HEADER.encode()
_RUN_EVENT = "/2024-03/run/event"
_USER_TABLE = cast("Table", User.__table__)
MAX_HOT_BODY = 16_384
"""Larger bodies (or ones of unknown length) go to Litestar without being read here."""
_JSON = b"application/json"


@dataclass
class HotPath:
    # Not frozen: tests wrap ``answer`` on an instance to see which path answered.
    reader: InlineReader
    writer: InlineWriter
    tokens: UserTokens
    limiter: RateLimiter
    add_headers: Callable[[Message, Scope], Awaitable[None]]
    released: ReleasedCache
    """The listing's cache: the same object as the route's (``app.state.released_cache``)."""
    runtime: EngineRuntime
    _security_headers: list[tuple[bytes, bytes]] | None = field(default=None, init=False)
    """What ``add_headers`` adds to a hot response, learnt from the first one: it depends only
    on the path's kind (no hot route is under ``/schema``) and on the headers already set,
    which are the same two on every hot response. A tenth of ``POST /users``' own time went
    to calling it."""

    async def __call__(
        self, scope: HTTPScope, receive: Receive, send: Send, ordinary: Ordinary
    ) -> None:
        """Answer ``scope`` here, or hand it to ``ordinary`` as if this had not run."""
        route = self._route(scope)
        if route is None:
            await ordinary(scope, receive, send)
            return
        handler, reference, takes_body = route
        body = b""
        if takes_body:
            length = _small_json_body_length(scope)
            if length is None:  # nothing read: the ordinary path reads and limits it
                await ordinary(scope, receive, send)
                return
            messages = await _read(receive, length)
            receive = _replay(messages, receive)
            body = b"".join(m["body"] for m in messages if m["type"] == "http.request")
            if messages[-1]["type"] != "http.request" or len(body) != length:
                await ordinary(scope, receive, send)
                return
        if not await self.answer(scope, send, handler, reference, body):
            await ordinary(scope, receive, send)

    def _route(self, scope: HTTPScope) -> tuple[Handler, str, bool] | None:
        method, path = scope["method"], scope["path"]
        if method == "GET":
            if path == _LISTING:
                query = _USER_QUERY.fullmatch(scope["query_string"])
                if query is None:
                    return None
                argument = unquote(query.group(1).decode("ascii"))
                if "\ufffd" in argument:  # an escape that is not UTF-8: let the route decide
                    return None
                return self._listing, argument, False
            match = _USER.fullmatch(path)
            if match is not None:
                return self._user, match.group(1), False
            match = _TOKEN.fullmatch(path)
            if match is not None:
                return self._token, match.group(1), False
        elif method == "POST" and path == _USERS:
            return self._create_user, "", True
        elif method == "POST" and path == _RUN_EVENT and not _has_idempotency_key(scope):
            return self._run_event, "", True
        return None

    async def answer(
        self, scope: HTTPScope, send: Send, handler: Handler, reference: str, body: bytes
    ) -> bool:
        """Send the answer and return ``True``, or return ``False`` having sent nothing."""
        try:
            principal = await self._principal(scope)
            answer = None if principal is None else await handler(principal, reference, body)
        except Exception:
            # Nothing was sent or written (a handler writes last): the ordinary path answers,
            # with the one error body if it fails too.
            log.exception("hot_path_failed", path=scope["path"])
            return False
        if answer is None:
            return False
        status, content = answer
        headers = [(b"content-type", _JSON), (b"content-length", b"%d" % len(content))]
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": status,
            "headers": headers,
        }
        if self._security_headers is None:
            await self.add_headers(start, scope)
            self._security_headers = list(start["headers"])[len(headers) :]
        else:
            headers.extend(self._security_headers)
        await send(start)
        await send({"type": "http.response.body", "body": content, "more_body": False})
        return True

    async def _principal(self, scope: HTTPScope) -> Principal | None:
        authorization = None
        # The listing also takes a user token (``auth="api_key_or_user"``): it is answered
        # here only for an API key, and with a user token the ordinary path decides.
        either = scope["path"] == _LISTING
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is not None:
                    return None  # two of them: the ordinary path decides
                authorization = value.decode("latin-1")
            elif name == b"origin":
                return None  # CORS decisions stay in cors.py
            elif either and name == _USER_TOKEN_HEADER:
                return None  # a user token: not counted here, auth.py decides
        if authorization is None:
            return None
        try:
            credential = api_keys.bearer_credential(authorization)
        except Unauthorized:  # the ordinary path refuses it, with the reason
            return None
        # A key found valid a moment ago is known by its hash alone (the cache holds only
        # keys that passed every check); others are checked in full.
        key_hash = api_keys.hash_key(credential)
        key = KEY_CACHE.get(key_hash)
        if key is None:
            try:
                environment, key_hash = api_keys.parse(credential)
            except Unauthorized:
                return None
            key = known_key(environment, key_hash, self.reader)
            if key is None:
                return None
        retry_after = await self.limiter.hit(f"key:{key_hash[:32]}")
        scope[RATE_COUNTED] = retry_after  # type: ignore[literal-required]  # our own key
        if retry_after is not None:
            return None
        return Principal(scope=key.scope, actor=f"api_key:{key.key_id}")

    async def _user(self, principal: Principal, reference: str, _: bytes) -> Answer | None:
        user = read_inline(self.reader, principal.scope, reference)
        return None if user is None else (200, msgspec.json.encode(UserOut.of(user)))

    async def _listing(self, principal: Principal, reference: str, _: bytes) -> Answer | None:
        """``GET /integrations?userId=``: the user as ``resolve_user`` finds it for an API
        key (by id, then by username), then ``InstallationService.integrations_json``."""
        with self.reader.snapshot():  # the user and its installations, as of one moment
            user = read_inline(self.reader, principal.scope, reference)
            if user is None:
                return None
            content = listing_inline(self.reader, self.released, principal.scope, user.id)
        return None if content is None else (200, content)

    async def _token(self, principal: Principal, reference: str, _: bytes) -> Answer | None:
        user = read_inline(self.reader, principal.scope, reference)
        if user is None:
            return None
        return 200, msgspec.json.encode(mint_token(self.tokens, principal, user))

    async def _create_user(self, principal: Principal, _: str, body: bytes) -> Answer | None:
        try:
            data = msgspec.json.decode(body, type=CreateUserIn)
            row = new_user_row(principal.scope, NewUser(data.username, data.full_name))
        except (msgspec.MsgspecError, EmbeddedUIError):
            return None
        if not await self.writer.insert([(_USER_TABLE, row)]):
            return None  # e.g. the username is taken: the ordinary path says so (409)
        user = UserOut(row["id"], row["username"], row["full_name"], iso_ms(row["created_at"]))
        return 201, msgspec.json.encode(user)

    async def _run_event(self, principal: Principal, _: str, body: bytes) -> Answer | None:
        return await run_event_inline(self.reader, self.writer, self.runtime, principal, body)


def _has_idempotency_key(scope: HTTPScope) -> bool:
    """Requests with an ``Idempotency-Key`` keep the ordinary path (replay and remember)."""
    return any(name == b"idempotency-key" for name, _ in scope["headers"])


def _small_json_body_length(scope: HTTPScope) -> int | None:
    """The declared length of a JSON request's small body; ``None`` for any other request."""
    length = content_type = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = value
        elif name == b"content-type":
            content_type = value
    if content_type is None or content_type.partition(b";")[0].strip().lower() != _JSON:
        return None
    if length is None or not length.isdigit() or int(length) > MAX_HOT_BODY:
        return None
    return int(length)


async def _read(receive: Receive, length: int) -> list[ReceiveMessage]:
    """The request's messages up to the end of its body (or a disconnect), or up to its
    declared ``length``: once that many bytes arrived the body is complete, and the message
    that would only say so is not waited for. Granian sends a small body as two messages (the
    bytes with ``more_body`` true, then an empty last one), each a hand-off from its Rust
    threads to the event loop's; a raw ASGI app's POST went from ~12,000 to ~15,500 req/s
    (Granian x2) when it stopped at the declared length. HTTP/1.1 framing is the server's: the
    connection stays open for the next request. The ordinary path, if taken, reads the rest
    through ``_replay``."""
    messages: list[ReceiveMessage] = []
    received = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages
        received += len(message["body"])
        if received >= length:
            return messages


def _replay(messages: list[ReceiveMessage], receive: Receive) -> Receive:
    """``receive`` for the ordinary path: the messages read here again, then the rest."""
    pending = messages[::-1]

    async def replay() -> Any:
        return pending.pop() if pending else await receive()

    return replay
