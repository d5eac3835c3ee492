"""Talking to a provider's authorization server: the authorize URL and the token endpoint,
through Authlib's httpx client.

The token endpoint is an untrusted peer. Its answer is read through a transport that stops
after :data:`MAX_TOKEN_RESPONSE_BYTES` (a provider may stream megabytes with no length), with
a timeout, without following redirects, and every failure becomes a :class:`ProviderError`
whose message names what went wrong without repeating a byte of what the provider sent or of
what we sent (the client secret, the code, the refresh token).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from authlib.deprecate import AuthlibDeprecationWarning

with warnings.catch_warnings():
    # Authlib 1.9 prefers the `httpx2` package and warns when it falls back to httpx, which
    # is the client this project uses everywhere; the fallback is the documented behaviour.
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

MAX_TOKEN_RESPONSE_BYTES = 256 * 1024
"""A token response is a few hundred bytes; anything past this is refused, not parsed."""
TOKEN_TIMEOUT_SECONDS = 15.0
_ERROR_CODE = re.compile(r"^[a-z_]{1,64}$")


class ProviderError(Exception):
    """The token endpoint failed. ``rejected``: it answered and said no (an OAuth error or a
    4xx, e.g. ``invalid_grant``), so retrying the same grant is pointless; otherwise it was
    unreachable, slow, or answered with something that is not a token."""

    def __init__(self, message: str, *, rejected: bool, reason: str) -> None:
        super().__init__(message)
        self.message = message
        self.rejected = rejected
        self.reason = reason
        """A short, fixed word for logs and audit rows: ``timeout``, ``too_large``, …"""


class ResponseTooLarge(Exception):
    """The token endpoint sent more than :data:`MAX_TOKEN_RESPONSE_BYTES`."""


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self._inner:
            received += len(chunk)
            if received > self._limit:
                raise ResponseTooLarge
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class CappedTransport(httpx.AsyncBaseTransport):
    """An httpx transport whose response bodies stop at ``limit`` bytes, whatever the
    provider claims in ``Content-Length`` (or leaves out)."""

    def __init__(self, limit: int = MAX_TOKEN_RESPONSE_BYTES) -> None:
        self._inner = httpx.AsyncHTTPTransport(retries=0)
        self._limit = limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CappedStream(response.stream, self._limit),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()


@dataclass(frozen=True, slots=True)
class ProviderClient:
    """One confidential client at one provider, with the URLs already filled in."""

    app_name: str
    client_id: str
    client_secret: str = field(repr=False)
    token_url: str
    pkce: bool
    token_params: Mapping[str, Any] = field(default_factory=dict)

    def _client(self, **extra: Any) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 (a method name)
            code_challenge_method="S256" if self.pkce else None,
            transport=CappedTransport(),
            timeout=httpx.Timeout(TOKEN_TIMEOUT_SECONDS),
            follow_redirects=False,
            trust_env=False,
            **extra,
        )

    def authorize_url(
        self,
        url: str,
        *,
        state: str,
        code_verifier: str | None,
        redirect_uri: str,
        scope: str | None,
        params: Mapping[str, str],
    ) -> str:
        """The provider's authorization URL with state, PKCE S256 challenge and our params."""
        client = self._client()
        extra: dict[str, Any] = dict(params)
        if scope:
            extra["scope"] = scope
        uri, _ = client.create_authorization_url(
            url, state=state, code_verifier=code_verifier, redirect_uri=redirect_uri, **extra
        )
        return str(uri)

    async def exchange_code(
        self, code: str, *, redirect_uri: str, code_verifier: str | None
    ) -> dict[str, Any]:
        """The authorization-code grant; the ``redirect_uri`` must equal the authorize one."""
        params: dict[str, Any] = {"code": code, "redirect_uri": redirect_uri}
        if code_verifier is not None:
            params["code_verifier"] = code_verifier
        async with self._client() as client:
            return await self._token_call(
                client.fetch_token(
                    self.token_url,
                    grant_type="authorization_code",
                    **params,
                    **self.token_params,
                )
            )

    async def refresh(self, refresh_token: str) -> dict[str, Any]:
        """The refresh-token grant. A provider that rotates answers with a new refresh token."""
        async with self._client() as client:
            return await self._token_call(
                client.refresh_token(self.token_url, refresh_token=refresh_token)
            )

    async def _token_call(self, call: Any) -> dict[str, Any]:
        name = self.app_name
        try:
            token = await call
        except OAuthError as exc:
            code = exc.error if isinstance(exc.error, str) and _ERROR_CODE.match(exc.error) else ""
            raise ProviderError(
                f"{name} refused the request ({code or 'an OAuth error'}).",
                rejected=True,
                reason=code or "oauth_error",
            ) from None
        except ResponseTooLarge:
            raise ProviderError(
                f"{name}'s token endpoint sent a response larger than "
                f"{MAX_TOKEN_RESPONSE_BYTES // 1024} KiB.",
                rejected=False,
                reason="too_large",
            ) from None
        except httpx.TimeoutException:
            raise ProviderError(
                f"{name}'s token endpoint did not answer within {TOKEN_TIMEOUT_SECONDS:g} s.",
                rejected=False,
                reason="timeout",
            ) from None
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            raise ProviderError(
                f"{name}'s token endpoint answered HTTP {status}.",
                rejected=400 <= status < 500,
                reason=f"http_{status}",
            ) from None
        except httpx.HTTPError:
            raise ProviderError(
                f"{name}'s token endpoint could not be reached.",
                rejected=False,
                reason="unreachable",
            ) from None
        except ValueError:  # a 2xx that is not a JSON object (an HTML page, say)
            raise ProviderError(
                f"{name}'s token endpoint did not answer with a token.",
                rejected=False,
                reason="not_a_token",
            ) from None
        access_token = token.get("access_token") if isinstance(token, Mapping) else None
        if not isinstance(access_token, str) or not access_token:
            raise ProviderError(
                f"{name}'s token endpoint did not answer with a token.",
                rejected=False,
                reason="not_a_token",
            )
        return dict(token)
