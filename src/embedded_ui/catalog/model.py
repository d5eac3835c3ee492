"""The catalog's types: frozen, built once from the YAML files at start."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

AuthType = Literal["oauth2", "api_key", "basic", "custom"]


@dataclass(frozen=True, slots=True)
class Field:
    """A value the user types: a credential part or a connection parameter."""

    name: str
    label: str
    help: str = ""
    pattern: str | None = None
    secret: bool = False
    example: str | None = None


@dataclass(frozen=True, slots=True)
class AuthScheme:
    type: AuthType
    fields: tuple[Field, ...] = ()
    """Credential fields (api_key/basic/custom) or connection fields asked before OAuth."""
    authorize_url: str | None = None
    token_url: str | None = None
    issuer: str | None = None
    """The authorization server's issuer (RFC 9207): when set, the callback's `iss` must equal
    it. A template, like the URLs (the sandbox's is ``{sandbox_url}``)."""
    scopes: tuple[str, ...] = ()
    scope_separator: str = " "
    pkce: bool = True
    authorize_params: dict[str, str] = field(default_factory=dict)
    token_params: dict[str, str] = field(default_factory=dict)
    token_fields: dict[str, str] = field(default_factory=dict)

    @property
    def provides(self) -> frozenset[str]:
        """Placeholder names a credential of this scheme can fill."""
        names = {f.name for f in self.fields} | set(self.token_fields)
        if self.type == "oauth2":
            names.add("access_token")
        return frozenset(names)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    error_message_path: str | None = None


@dataclass(frozen=True, slots=True)
class Api:
    base_url: str
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    basic_auth: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Trigger:
    key: str
    name: str
    events: tuple[str, ...]
    registration: Literal["automatic", "manual"]
    description: str = ""
    signature: dict[str, str] | None = None
    webhook_url: Literal["workflow", "user"] = "workflow"


@dataclass(frozen=True, slots=True)
class Action:
    key: str
    name: str
    request: Request
    input_schema: dict[str, Any]
    description: str = ""
    input_options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OptionSource:
    key: str
    request: Request
    value: str
    label: str
    items_path: str = ""


@dataclass(frozen=True, slots=True)
class Webhooks:
    """How we subscribe to an app's webhooks and how its deliveries identify themselves."""

    register: Request | None = None
    unregister: Request | None = None
    id_path: str = "id"
    secret_path: str | None = None
    delivery_id_header: str | None = None
    event_header: str | None = None


@dataclass(frozen=True, slots=True)
class App:
    key: str
    name: str
    description: str
    categories: tuple[str, ...]
    icon: str
    icon_svg: str = field(repr=False)
    auth: tuple[AuthScheme, ...]
    api: Api
    verification: Request
    triggers: tuple[Trigger, ...]
    actions: tuple[Action, ...]
    option_sources: tuple[OptionSource, ...] = ()
    docs_url: str | None = None
    webhooks: Webhooks = field(default_factory=Webhooks)

    def trigger(self, key: str) -> Trigger | None:
        return next((t for t in self.triggers if t.key == key), None)

    def action(self, key: str) -> Action | None:
        return next((a for a in self.actions if a.key == key), None)

    @property
    def manual_webhooks(self) -> bool:
        return any(t.registration == "manual" for t in self.triggers)
