"""Tables. Every tenant-owned row carries ``workspace_id`` and ``environment`` (TenantScoped),
which :mod:`embedded_ui.store.db` adds to every ORM query made under a principal."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from advanced_alchemy.types import DateTimeUTC
from sqlalchemy import JSON, ForeignKey, Index, MetaData, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

ENVIRONMENTS = ("development", "production")


def new_id() -> str:
    """24 hex characters, the shape of Alloy's ids, from 96 random bits."""
    return secrets.token_hex(12)


def utcnow() -> datetime:
    return datetime.now(UTC)


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
    id: Mapped[str] = mapped_column(String(24), primary_key=True, default=new_id)
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
