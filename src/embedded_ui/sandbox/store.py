"""The sandbox's whole state, in process memory: accounts, commerce data, OAuth grants, hooks.

One event loop serves every request and no method awaits, so each method runs to completion
without interleaving: nothing here needs a lock. A restart forgets everything.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from embedded_ui.sandbox.config import SandboxConfig, new_api_key

ORDER_STATUSES: tuple[tuple[str, str], ...] = (
    ("pending", "Pending"),
    ("shipped", "Shipped"),
    ("delivered", "Delivered"),
    ("cancelled", "Cancelled"),
)
EVENTS: tuple[str, ...] = ("order.created", "order.updated", "customer.created")
SCOPES: dict[str, str] = {
    "orders": "Read and update your orders, and receive order webhooks",
    "customers": "Read and create your customers",
}
CODE_TTL = 60
"""Seconds an authorization code stays valid."""
CONSENT_TTL = 600
"""Seconds a rendered consent page stays answerable."""
DEMO_ACCOUNT_ID = "acct_demo"
MAX_DELIVERIES_KEPT = 500

TokenEndpointMode = Literal["normal", "error500", "html", "huge", "slow"]
IssuerMode = Literal["normal", "omit", "wrong"]


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


@dataclass
class Account:
    id: str
    name: str
    email: str
    api_key: str = field(repr=False)
    created_at: str = field(default_factory=now_iso)

    def public(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "email": self.email}


@dataclass
class Customer:
    id: str
    account_id: str
    email: str
    name: str | None
    created_at: str = field(default_factory=now_iso)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "created_at": self.created_at,
        }


@dataclass
class Order:
    id: str
    account_id: str
    number: int
    customer_id: str | None
    status: str
    total: str
    currency: str
    items: list[dict[str, Any]]
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        del data["account_id"]
        return data


@dataclass
class Subscription:
    id: str
    account_id: str
    url: str
    event: str
    secret: str = field(repr=False)
    created_at: str = field(default_factory=now_iso)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "event": self.event, "created_at": self.created_at}


@dataclass
class Delivery:
    """One POST to one subscriber: what was sent, and how it went."""

    id: str
    subscription_id: str
    account_id: str
    event: str
    url: str
    body: bytes = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    attempts: list[dict[str, Any]] = field(default_factory=list)

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "subscription_id": self.subscription_id,
            "account_id": self.account_id,
            "event": self.event,
            "url": self.url,
            "headers": self.headers,
            "body": self.body.decode(),
            "attempts": self.attempts,
        }


@dataclass
class OAuthClient:
    client_id: str
    client_secret: str = field(repr=False)
    name: str = "embedded-ui demo"
    redirect_uris: tuple[str, ...] = ()
    scopes: tuple[str, ...] = tuple(SCOPES)


@dataclass
class AuthorizationCode:
    code: str = field(repr=False)
    client_id: str
    account_id: str
    redirect_uri: str
    scope: str
    code_challenge: str
    code_challenge_method: str
    grant_id: str
    expires_at: float

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    # Authlib's AuthorizationCodeMixin
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope


@dataclass
class Token:
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    client_id: str
    account_id: str
    scope: str
    issued_at: float
    expires_in: int
    grant_id: str
    access_revoked: bool = False
    refresh_revoked: bool = False

    def access_expired(self) -> bool:
        return time.time() >= self.issued_at + self.expires_in


@dataclass
class PendingConsent:
    """An authorization request that passed validation and awaits Approve or Deny."""

    params: list[tuple[str, str]]
    expires_at: float


@dataclass
class Stats:
    authorize_requests: int = 0
    consents_approved: int = 0
    consents_denied: int = 0
    token_requests: int = 0
    code_exchanges: int = 0
    refresh_requests: int = 0
    api_calls: int = 0
    webhook_deliveries: int = 0
    webhook_failures: int = 0


@dataclass
class Behaviour:
    """How the sandbox misbehaves, for tests of the service's OAuth client."""

    token_endpoint: TokenEndpointMode = "normal"  # noqa: S105 - a mode, not a secret
    times: int | None = None
    """How many token requests still get the mode; None means until changed."""
    slow_seconds: float = 20.0
    authorize_iss: IssuerMode = "normal"

    def take_token_mode(self) -> TokenEndpointMode:
        """The mode for this token request, counting it against `times`."""
        mode = self.token_endpoint
        if mode != "normal" and self.times is not None:
            self.times -= 1
            if self.times <= 0:
                self.token_endpoint, self.times = "normal", None
        return mode


Owned = TypeVar("Owned", Customer, Order, Subscription)


class SandboxState:
    """Everything the sandbox knows. :meth:`reset` returns it to how it started."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.client = OAuthClient(
            client_id=config.client_id,
            client_secret=config.client_secret,
            name=config.client_name,
            redirect_uris=config.redirect_uris,
        )
        self.reset()

    def reset(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.customers: dict[str, Customer] = {}
        self.orders: dict[str, Order] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: deque[Delivery] = deque(maxlen=MAX_DELIVERIES_KEPT)
        self.codes: dict[str, AuthorizationCode] = {}
        self.used_codes: dict[str, str] = {}
        self.tokens_by_access: dict[str, Token] = {}
        self.tokens_by_refresh: dict[str, Token] = {}
        self.consents: dict[str, PendingConsent] = {}
        self.stats = Stats()
        self.behaviour = Behaviour()
        self._order_numbers: dict[str, int] = {}
        self.add_account(
            "Demo Store", "owner@demo-store.test", self.config.api_key, DEMO_ACCOUNT_ID
        )

    # accounts ----------------------------------------------------------------------------

    def add_account(
        self, name: str, email: str, api_key: str | None = None, account_id: str | None = None
    ) -> Account:
        account = Account(account_id or new_id("acct"), name, email, api_key or new_api_key())
        self.accounts[account.id] = account
        return account

    def account_by_api_key(self, key: str) -> Account | None:
        for account in self.accounts.values():
            if secrets.compare_digest(account.api_key.encode(), key.encode()):
                return account
        return None

    # commerce ----------------------------------------------------------------------------

    def add_customer(self, account_id: str, email: str, name: str | None) -> Customer:
        customer = Customer(new_id("cus"), account_id, email, name)
        self.customers[customer.id] = customer
        return customer

    def add_order(
        self,
        account_id: str,
        customer_id: str | None,
        status: str,
        total: str,
        currency: str,
        items: list[dict[str, Any]],
    ) -> Order:
        number = self._order_numbers.get(account_id, 1000) + 1
        self._order_numbers[account_id] = number
        order = Order(
            new_id("ord"), account_id, number, customer_id, status, total, currency, items
        )
        self.orders[order.id] = order
        return order

    def owned(self, items: dict[str, Owned], item_id: str, account_id: str) -> Owned | None:
        """The item when it exists and belongs to the account; another's is simply absent."""
        item = items.get(item_id)
        return item if item is not None and item.account_id == account_id else None

    # OAuth -------------------------------------------------------------------------------

    def take_consent(self, consent_id: str) -> PendingConsent | None:
        """Single use: the consent is gone whether or not it is still fresh."""
        self._sweep_consents()
        pending = self.consents.pop(consent_id, None)
        if pending is None or time.time() >= pending.expires_at:
            return None
        return pending

    def add_consent(self, params: list[tuple[str, str]]) -> str:
        self._sweep_consents()
        consent_id = secrets.token_urlsafe(24)
        self.consents[consent_id] = PendingConsent(params, time.time() + CONSENT_TTL)
        return consent_id

    def _sweep_consents(self) -> None:
        now = time.time()
        for key in [k for k, v in self.consents.items() if now >= v.expires_at]:
            del self.consents[key]

    def add_token(self, token: Token) -> None:
        self.tokens_by_access[token.access_token] = token
        if token.refresh_token:
            self.tokens_by_refresh[token.refresh_token] = token

    def revoke_grant(self, grant_id: str) -> None:
        """Revoke every token descended from one authorization (a replayed code's tokens)."""
        for token in self.tokens_by_access.values():
            if token.grant_id == grant_id:
                token.access_revoked = token.refresh_revoked = True

    def revoke_tokens(self, account_id: str | None = None) -> int:
        count = 0
        for token in self.tokens_by_access.values():
            if account_id is None or token.account_id == account_id:
                token.access_revoked = token.refresh_revoked = True
                count += 1
        return count

    def expire_access_tokens(self, account_id: str | None = None) -> int:
        count = 0
        for token in self.tokens_by_access.values():
            if account_id is None or token.account_id == account_id:
                token.issued_at = 0.0
                count += 1
        return count
