"""The tables Flask-ClientAuth keeps: registered clients and a change log for revocation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Integer, MetaData, String, Text
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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Client(Base):
    """A registered client application. The secret is kept only as a bcrypt hash."""

    __tablename__ = "clientauth_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_MAX), unique=True, nullable=False)
    name: Mapped[str] = mapped_column(String(NAME_MAX), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    secret_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)

    def __repr__(self) -> str:
        return f"<Client {self.client_id!r} name={self.name!r} enabled={self.enabled}>"


class ClientEvent(Base):
    """One change to a client; every process polls this log to drop stale cache entries."""

    __tablename__ = "clientauth_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(CLIENT_ID_MAX), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, index=True)

    def __repr__(self) -> str:
        return f"<ClientEvent {self.id} {self.action} {self.client_id!r}>"


#: The two tables as Core ``Table`` objects (what :mod:`.store` builds its statements on).
clients_table = Base.metadata.tables[Client.__tablename__]
events_table = Base.metadata.tables[ClientEvent.__tablename__]
