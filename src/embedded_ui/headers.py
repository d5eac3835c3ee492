"""Security headers on every response, errors included (CSP, framing, sniffing, referrer, HSTS).

A ``before_send`` hook rather than a middleware: Litestar wraps ``send`` with these hooks
before routing, so even 404s and exception responses carry the headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar.types import Message, Scope

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI's page bootstraps with an inline script; it holds no secrets and is never framed.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def _defaults(csp: str, hsts: bool) -> tuple[tuple[bytes, bytes], ...]:
    headers = [
        (b"content-security-policy", csp.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
    ]
    if hsts:
        headers.append((b"strict-transport-security", b"max-age=31536000"))
    return tuple(headers)


def security_headers(hsts: bool) -> Callable[[Message, Scope], Awaitable[None]]:
    api, docs = _defaults(API_CSP, hsts), _defaults(DOCS_CSP, hsts)

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        # Each header unless the response set it already (any case), appended in this order.
        # Raw header pairs rather than MutableScopeHeaders.setdefault, which rescans and
        # re-decodes every header for each default: it was a tenth of a cached GET's time.
        headers = list(message.get("headers") or ())
        present = {name.lower() for name, _ in headers}
        defaults = docs if scope["path"].startswith("/schema") else api
        headers.extend(pair for pair in defaults if pair[0] not in present)
        message["headers"] = headers

    return add_headers
