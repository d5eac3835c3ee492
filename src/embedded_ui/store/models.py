"""Tables. Every tenant-owned row carries ``workspace_id`` and ``environment`` (TenantScoped),
which :mod:`embedded_ui.store.db` adds to every ORM query made under a principal."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

ENVIRONMENTS = ("development", "production")


def new_id() -> str:
    """24 hex characters, the shape of Alloy's ids, from 96 random bits."""
    return secrets.token_hex(12)


def new_ordered_id() -> str:
    """24 hex characters like ``new_id``, in creation order: the milliseconds since the epoch
    (12 hex digits, until the year 10889), then 48 random bits.

    For the rows created at the API's highest rates (users, executions): a random primary key
    lands each insert on a different leaf of its index, so every commit rewrote several pages
    of it; in order, the inserts of a commit share the last one. ``POST /users`` (bench/run.py,
    Granian x2) went from ~9,000 to ~10,500 req/s and 0.13 to 0.11 ms of CPU per request.
    Alloy's own ids (MongoDB ObjectIds) also begin with their creation time. Not for an id
    that is ever a capability: ``new_id``'s 96 random bits are for those."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_ms(moment: datetime) -> str:
    """Alloy's timestamp shape: ``2022-09-17T22:12:34.567Z``. Formatted field by field: a
    third of the cost of ``isoformat`` and a replace, on every hot response that has one."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (  # noqa: UP031 - the fastest form here
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond // 1000,
    )


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
        }
    )


class TenantScoped:
    """Rows owned by one workspace environment."""

    @declared_attr
    def workspace_id(cls) -> Mapped[str]:
        return mapped_column(String(24), ForeignKey("workspace.id", ondelete="CASCADE"))

    environment: Mapped[str] = mapped_column(String(16))


class Workspace(Base):
    """The ISV. Its two environments share nothing but the name."""

    __tablename__ = "workspace"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)


class ApiKey(TenantScoped, Base):
    """An ISV server key. Only its SHA-256 is stored, with a prefix people can recognise."""

    __tablename__ = "api_key"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    display_prefix: Mapped[str] = mapped_column(String(32))
    last_four: Mapped[str] = mapped_column(String(4))
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))

    __table_args__ = (Index(None, "workspace_id", "environment"),)


class User(TenantScoped, Base):
    """An end user (merchant) of the ISV, in one environment."""

    __tablename__ = "end_user"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_ordered_id)
    username: Mapped[str] = mapped_column(String(255))
    full_name: Mapped[str | None] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("workspace_id", "environment", "username"),
        Index(None, "workspace_id", "environment", "created_at", "id"),
    )


class AuditEntry(Base):
    """Append-only record of security-relevant actions. Never holds a secret or a payload."""

    __tablename__ = "audit_entry"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    workspace_id: Mapped[str | None] = mapped_column(String(24), index=True)
    environment: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)


class Integration(TenantScoped, Base):
    """What the ISV offers for one app: a group of parent workflows, defined as code."""

    __tablename__ = "integration"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    key: Mapped[str] = mapped_column(String(100))
    app: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("workspace_id", "environment", "key"),)


class CustomEvent(TenantScoped, Base):
    """A named event the ISV's backend runs (`POST /run/event`), with its payload schema."""

    __tablename__ = "custom_event"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("workspace_id", "environment", "name"),)


class ParentWorkflow(TenantScoped, Base):
    """The ISV's workflow template; its content lives in versions."""

    __tablename__ = "parent_workflow"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    integration_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("integration.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("workspace_id", "environment", "key"),
        Index(None, "integration_id"),
    )


class WorkflowVersion(TenantScoped, Base):
    """One version of a parent workflow. A draft (number NULL) may change; a released version
    has a number and never changes again."""

    __tablename__ = "workflow_version"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    workflow_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("parent_workflow.id", ondelete="CASCADE")
    )
    number: Mapped[int | None]
    name: Mapped[str] = mapped_column(String(200))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    fields: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))

    __table_args__ = (
        UniqueConstraint("workflow_id", "number"),
        Index(None, "workspace_id", "environment", "workflow_id"),
    )


class Credential(TenantScoped, Base):
    """A user's secret for one app. ``ciphertext`` is AES-GCM under ``key_id``, bound to this
    row by associated data; ``details`` holds only non-secret values (a shop name, scopes)."""

    __tablename__ = "credential"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(24), ForeignKey("end_user.id", ondelete="CASCADE"))
    app: Mapped[str] = mapped_column(String(60))
    auth_type: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    key_id: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    """When an OAuth access token expires (NULL: it does not, or the scheme has none)."""

    __table_args__ = (Index(None, "workspace_id", "environment", "user_id"),)


class Installation(TenantScoped, Base):
    """A user's child workflow: one parent workflow pinned to one released version."""

    __tablename__ = "installation"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(24), ForeignKey("end_user.id", ondelete="CASCADE"))
    workflow_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("parent_workflow.id", ondelete="CASCADE")
    )
    version_id: Mapped[str] = mapped_column(String(24), ForeignKey("workflow_version.id"))
    version_number: Mapped[int]
    active: Mapped[bool] = mapped_column(default=True)
    values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    credential_ids: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    webhook_key_id: Mapped[str | None] = mapped_column(String(64))
    webhook_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    """The inbound webhook secret (sealed): the app's signing secret from the registration,
    or a per-installation secret for apps that do not sign."""
    webhook_registrations: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list, server_default="[]"
    )
    """What the app answered when we registered our webhook with it (ids, never secrets)."""
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("user_id", "workflow_id"),
        Index(None, "workspace_id", "environment", "user_id"),
        Index(None, "workflow_id"),
    )


class PendingInstallation(TenantScoped, Base):
    """A headless installation between its start and its completion (expires after a day)."""

    __tablename__ = "pending_installation"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(24), ForeignKey("end_user.id", ondelete="CASCADE"))
    integration_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("integration.id", ondelete="CASCADE")
    )
    workflow_ids: Mapped[list[str]] = mapped_column(JSON)
    credential_ids: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))


class EnvironmentState(Base):
    """Per workspace environment: ``revision`` grows whenever its integrations change, so each
    process can keep the released workflows in memory and know when to read them again."""

    __tablename__ = "environment_state"
    workspace_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("workspace.id", ondelete="CASCADE"), primary_key=True
    )
    environment: Mapped[str] = mapped_column(String(16), primary_key=True)
    revision: Mapped[int] = mapped_column(default=0)


class EnvironmentSettings(TenantScoped, Base):
    """What the ISV configures per environment for the browser side: the origins allowed to
    frame the modal and the integrations page and to call the user-token routes (CORS), and
    the integrations page's theme."""

    __tablename__ = "environment_settings"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    allowed_origins: Mapped[list[str]] = mapped_column(JSON, default=list)
    theme: Mapped[dict[str, str]] = mapped_column(JSON, default=dict, server_default="{}")
    """The integrations page's theme options for this environment (a mount call's win)."""
    error_url: Mapped[str | None] = mapped_column(String(2048))
    """Where every workflow error is POSTed as it happens (Alloy's error webhook)."""
    updated_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("workspace_id", "environment"),)


class OAuthClient(TenantScoped, Base):
    """The ISV's own OAuth client at one app, per environment. The secret is sealed by the
    vault with associated data naming this row."""

    __tablename__ = "oauth_client"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    app: Mapped[str] = mapped_column(String(60))
    client_id: Mapped[str] = mapped_column(String(512))
    key_id: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("workspace_id", "environment", "app"),)


class OAuthFlow(TenantScoped, Base):
    """One OAuth authorization-code flow, from the modal's request to its recorded outcome.

    ``id`` is what the modal knows and polls; ``state_hash`` is SHA-256 of the single-use
    state sent to the provider (the state itself is never stored); ``binding_hash`` is
    SHA-256 of the cookie set in the popup, so the callback must come from the same browser.
    The PKCE verifier and connection values are sealed by the vault (``ciphertext``)."""

    __tablename__ = "oauth_flow"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(String(24), ForeignKey("end_user.id", ondelete="CASCADE"))
    app: Mapped[str] = mapped_column(String(60))
    purpose: Mapped[str] = mapped_column(String(20))
    state_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    binding_hash: Mapped[str | None] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default="created")
    """created → started (popup opened) → succeeded | failed | cancelled."""
    credential_id: Mapped[str | None] = mapped_column(String(24))
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))

    __table_args__ = (Index(None, "workspace_id", "environment", "user_id"),)


class InstallLink(TenantScoped, Base):
    """A hosted, single-use, expiring link. Only the SHA-256 of its token is kept. With an
    ``integration_id`` it is an install link (``/install/{token}``); without one, a link to the
    user's integrations page (``/integrations-page/{token}``). Neither redeems the other."""

    __tablename__ = "install_link"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(24), ForeignKey("end_user.id", ondelete="CASCADE"))
    integration_id: Mapped[str | None] = mapped_column(
        String(24), ForeignKey("integration.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))


class Execution(TenantScoped, Base):
    """One run of a user's installed workflow, and its queue entry: the row is written in the
    same transaction that accepts the trigger, so nothing is queued that is not stored.

    A worker claims a due row (``status`` queued, ``available_at`` past) by setting
    ``running`` and a lease; a row whose lease ran out is claimed again (its worker died).
    ``results`` holds one entry per block (the logs); blocks that succeeded are not run
    again on a retry. The delivery id of Stream Data is derived from ``id``, so it stays the
    same across retries."""

    __tablename__ = "execution"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_ordered_id)
    user_id: Mapped[str] = mapped_column(String(24), ForeignKey("end_user.id", ondelete="CASCADE"))
    workflow_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("parent_workflow.id", ondelete="CASCADE")
    )
    installation_id: Mapped[str] = mapped_column(String(24))
    version_number: Mapped[int]
    trigger_type: Mapped[str] = mapped_column(String(20))
    """custom_event, app_event, manual (`POST /run/workflow`) or rerun."""
    trigger: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    """queued → running → succeeded | failed (and back to queued while retries remain)."""
    attempt: Mapped[int] = mapped_column(default=0)
    available_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(String(1000))
    rerun_of: Mapped[str | None] = mapped_column(String(24))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    stopped_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))

    __table_args__ = (
        Index(None, "status", "available_at"),
        Index(None, "workspace_id", "environment", "workflow_id", "created_at"),
        Index(None, "user_id"),
        Index(None, "created_at"),
    )


class WorkflowError(TenantScoped, Base):
    """One block failure of an execution (each failed attempt), for `GET .../errors`."""

    __tablename__ = "workflow_error"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(24), ForeignKey("end_user.id", ondelete="CASCADE"))
    workflow_id: Mapped[str] = mapped_column(
        String(24), ForeignKey("parent_workflow.id", ondelete="CASCADE")
    )
    execution_id: Mapped[str] = mapped_column(String(24))
    block_id: Mapped[str] = mapped_column(String(100))
    block_name: Mapped[str] = mapped_column(String(200))
    block_type: Mapped[str] = mapped_column(String(30))
    message: Mapped[str] = mapped_column(String(1000))
    occurred_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)

    __table_args__ = (
        # Named by hand: the conventional name is longer than PostgreSQL's 63 characters.
        Index(
            "ix_workflow_error_tenant_workflow_time",
            "workspace_id",
            "environment",
            "workflow_id",
            "occurred_at",
        ),
        Index(None, "user_id"),
        Index(None, "occurred_at"),
    )


class IdempotencyRecord(TenantScoped, Base):
    """The answer given to one `Idempotency-Key`, replayed for 24 hours."""

    __tablename__ = "idempotency_record"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("workspace_id", "environment", "key"),
        Index(None, "created_at"),
    )


class InboundDelivery(TenantScoped, Base):
    """A webhook delivery id already accepted from an app, so a redelivery is not run twice."""

    __tablename__ = "inbound_delivery"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(60))
    """The installation (or user, for user-wide URLs) the delivery came in for."""
    delivery_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)

    __table_args__ = (
        UniqueConstraint("workspace_id", "environment", "source", "delivery_id"),
        Index(None, "created_at"),
    )


class StreamEndpoint(TenantScoped, Base):
    """A URL that Stream Data blocks (and the error URL) deliver to, with its Standard
    Webhooks signing secret (sealed). A 410 answer disables it until the ISV enables it."""

    __tablename__ = "stream_endpoint"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    url: Mapped[str] = mapped_column(String(2048))
    url_hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    disabled_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True))
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("workspace_id", "environment", "url_hash"),)


class Destination(TenantScoped, Base):
    """A database that `database` blocks insert into: a SQLAlchemy URL, sealed, by name."""

    __tablename__ = "destination"
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    key_id: Mapped[str] = mapped_column(String(64))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("workspace_id", "environment", "name"),)
