"""The tables Flask-ClientAuth keeps: clients, their credentials, the change log and the audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Length limits, also enforced before any database lookup.
CLIENT_ID_MAX = 64
NAME_MAX = 200
LABEL_MAX = 200
ROLE_MAX = 64
#: Roles of one client: they are stored space-separated in a TEXT column (64 KiB on MySQL / MariaDB).
ROLES_MAX = 100
ACTOR_MAX = 200
PLAN_MAX = 64


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Client(Base):
    """A client application (API Connect's "application"): a name, roles, an enabled flag, and one or
    more :class:`Credential` rows. Disabling the client disables all of its credentials."""

    __tablename__ = "clientauth_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: Before revision ca0002 each client had one credential, held in this row. The upgrade moves it
    #: into ``clientauth_credentials`` and empties both columns; they stay declared so that an app's
    #: own autogenerate never proposes to drop them (with what they held, before the move).
    client_id: Mapped[str | None] = mapped_column(String(CLIENT_ID_MAX), unique=True, nullable=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    secret_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    #: The client's roles, space-separated (role names hold no spaces), sorted.
    roles: Mapped[str] = mapped_column(Text, nullable=False, default="", server_default="")
    #: The client's plan (a name in ``CLIENTAUTH_PLANS`` / ``CLIENTAUTH_PRODUCT``); ``None``: the default plan.
    plan: Mapped[str | None] = mapped_column(String(PLAN_MAX), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    def __repr__(self) -> str:
        return f"<Client {self.id} name={self.name!r} enabled={self.enabled}>"


class Credential(Base):
    """One client ID and its secret (none for ID-only APIs). Secrets are kept only as hashes; after a
    reset with a grace period, the previous hash keeps working until ``previous_secret_until``."""

    __tablename__ = "clientauth_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_pk: Mapped[int] = mapped_column(
        Integer, ForeignKey("clientauth_clients.id", ondelete="CASCADE"), nullable=False, index=True
    )
    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_MAX), unique=True, nullable=False)
    label: Mapped[str] = mapped_column(String(LABEL_MAX), nullable=False, default="")
    secret_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    previous_secret_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    previous_secret_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def __repr__(self) -> str:
        return f"<Credential {self.client_id!r} label={self.label!r}>"


class ClientEvent(Base):
    """One change to a client; every process polls this log to drop stale cache entries."""

    __tablename__ = "clientauth_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_MAX), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)

    def __repr__(self) -> str:
        return f"<ClientEvent {self.id} {self.action} {self.client_id!r}>"


class AuditEvent(Base):
    """One lifecycle change, kept until the operator prunes it. Never a secret or a hash.

    ``client_ref`` is the client's primary key without a foreign key, so a deleted client's history
    stays; ``client_id`` is the credential the change was made through or on.
    """

    __tablename__ = "clientauth_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    client_ref: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    client_id: Mapped[str | None] = mapped_column(String(CLIENT_ID_MAX), nullable=True)
    client_name: Mapped[str] = mapped_column(String(NAME_MAX), nullable=False, default="")
    actor: Mapped[str | None] = mapped_column(String(ACTOR_MAX), nullable=True)
    #: What changed, as JSON (a label, an expiry, roles added and removed, the new client ID).
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="")

    def __repr__(self) -> str:
        return f"<AuditEvent {self.id} {self.action} {self.client_id!r}>"


#: The tables as Core ``Table`` objects (what :mod:`.store` builds its statements on).
clients_table = Base.metadata.tables[Client.__tablename__]
credentials_table = Base.metadata.tables[Credential.__tablename__]
events_table = Base.metadata.tables[ClientEvent.__tablename__]
audit_table = Base.metadata.tables[AuditEvent.__tablename__]
