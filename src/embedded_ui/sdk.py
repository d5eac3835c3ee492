"""Serving the browser SDK: ``GET /embedded.js`` and ``GET /embedded.<hash>.js`` (docs/sdk.md).

``static/embedded.js`` is written by hand and read once when the app is made: minified with
rjsmin, hashed (first 12 hex of SHA-256 of the served bytes) and gzipped once. The hashed
route is registered under its exact path, so any other hash is an ordinary 404.

Litestar compresses nothing unless the app has a ``CompressionConfig`` (this one does not), so
the gzipped bytes are chosen here from ``Accept-Encoding``, with ``Vary: Accept-Encoding``.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rjsmin  # type: ignore[import-untyped]  # no py.typed marker; one function used
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.status_codes import HTTP_200_OK, HTTP_304_NOT_MODIFIED

from embedded_ui.paths import STATIC_DIR

SDK_SOURCE = STATIC_DIR / "embedded.js"
GZIP_BUDGET = 2160  # bytes: Alloy's embedded.js gzipped; ours may not be larger
MEDIA_TYPE = "text/javascript"  # Litestar appends "; charset=utf-8" to text/*
NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"


@dataclass(frozen=True, slots=True)
class SdkAsset:
    """The SDK as served: minified bytes, their gzip, and their content hash."""

    source_size: int
    body: bytes
    gzipped: bytes
    digest: str

    @property
    def path(self) -> str:
        return f"/embedded.{self.digest}.js"

    @property
    def etag(self) -> str:
        # Weak: the identity and gzip bodies are the same representation, differently coded.
        return f'W/"{self.digest}"'


def minify(source: str) -> str:
    """Comments and whitespace out; the code itself is not rewritten."""
    return str(rjsmin.jsmin(source))


def load_sdk(path: Path = SDK_SOURCE) -> SdkAsset:
    source = path.read_bytes()
    body = minify(source.decode("utf-8")).encode("utf-8")
    return SdkAsset(
        source_size=len(source),
        body=body,
        gzipped=gzip.compress(body, compresslevel=9, mtime=0),
        digest=hashlib.sha256(body).hexdigest()[:12],
    )


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (``gzip`` or ``*``, with a q-value above 0)."""
    if not accept_encoding:
        return False
    for item in accept_encoding.split(","):
        coding, *parameters = (part.strip() for part in item.split(";"))
        if coding.lower() not in ("gzip", "x-gzip", "*"):
            continue
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


def _matches(if_none_match: str | None, digest: str) -> bool:
    """Weak comparison, as RFC 9110 prescribes for If-None-Match."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == f'"{digest}"':
            return True
    return False


def _respond(request: Request[Any, Any, Any], asset: SdkAsset, cache: str) -> Response[bytes]:
    headers = {
        "Cache-Control": cache,
        "ETag": asset.etag,
        "Vary": "Accept-Encoding",
        # Loadable by ISV pages that require CORP (COEP: require-corp).
        "Cross-Origin-Resource-Policy": "cross-origin",
        # A public file fetched without credentials: lets an ISV pin the hashed URL with
        # <script integrity=... crossorigin>, which needs a CORS response.
        "Access-Control-Allow-Origin": "*",
    }
    if cache == NO_CACHE:
        headers["Link"] = f"<{asset.path}>; rel=preload; as=script"
    if _matches(request.headers.get("if-none-match"), asset.digest):
        return Response(b"", status_code=HTTP_304_NOT_MODIFIED, headers=headers)
    body = asset.body
    if accepts_gzip(request.headers.get("accept-encoding")):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    return Response(body, status_code=HTTP_200_OK, media_type=MEDIA_TYPE, headers=headers)


def sdk_handlers(asset: SdkAsset | None = None) -> list[HTTPRouteHandler]:
    """The two routes, for one loaded asset (read from disk now when not given)."""
    asset = asset or load_sdk()

    @get("/embedded.js", include_in_schema=False, sync_to_thread=False)
    def current_sdk(request: Request[Any, Any, Any]) -> Response[bytes]:
        return _respond(request, asset, NO_CACHE)

    @get(asset.path, include_in_schema=False, sync_to_thread=False)
    def pinned_sdk(request: Request[Any, Any, Any]) -> Response[bytes]:
        return _respond(request, asset, IMMUTABLE)

    return [current_sdk, pinned_sdk]
