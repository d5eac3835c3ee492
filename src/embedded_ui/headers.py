"""Security headers on every response, errors included (CSP, framing, sniffing, referrer, HSTS).

A ``before_send`` hook rather than a middleware: Litestar wraps ``send`` with these hooks
before routing, so even 404s and exception responses carry the headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI's page bootstraps with an inline script; it holds no secrets and is never framed.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


def security_headers(hsts: bool) -> Callable[[Message, Scope], Awaitable[None]]:
    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        csp = DOCS_CSP if scope["path"].startswith("/schema") else API_CSP
        headers.setdefault("Content-Security-Policy", csp)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        if hsts:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")

    return add_headers
