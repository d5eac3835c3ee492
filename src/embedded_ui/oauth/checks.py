"""Provider-specific checks of a callback, run before any token request.

Most providers need nothing beyond state, cookie, app and ``iss``. Shopify signs its callback
(``hmac`` over the other parameters, keyed by the client secret) and names the shop; the token
URL is built from the shop the user typed when the flow began (checked against a strict
pattern then), never from the callback, and the callback's ``shop`` must be that same shop.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping


class CallbackCheckFailed(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def shopify_hmac(params: Mapping[str, str], client_secret: str) -> str:
    """Shopify's signature: hex HMAC-SHA256 of ``k=v`` pairs sorted, joined by ``&``."""
    message = "&".join(
        f"{key}={value}"
        for key, value in sorted(params.items())
        if key not in ("hmac", "signature")
    )
    return hmac.new(client_secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def _check_shopify(
    params: Mapping[str, str], connection: Mapping[str, str], client_secret: str
) -> None:
    given = params.get("hmac", "")
    expected = shopify_hmac(params, client_secret)
    if not given or not hmac.compare_digest(given.lower().encode(), expected.encode()):
        raise CallbackCheckFailed("The response from Shopify is not signed correctly.")
    if params.get("shop") != f"{connection.get('shop')}.myshopify.com":
        raise CallbackCheckFailed("The response from Shopify names another shop.")


_CHECKS: dict[str, Callable[[Mapping[str, str], Mapping[str, str], str], None]] = {
    "shopify": _check_shopify,
}


def check_callback(
    app_key: str,
    params: Mapping[str, str],
    connection: Mapping[str, str],
    client_secret: str,
) -> None:
    """Raise :class:`CallbackCheckFailed` when the app's own callback rules are broken."""
    check = _CHECKS.get(app_key)
    if check is not None:
        check(params, connection, client_secret)
