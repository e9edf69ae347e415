"""The provisioning store: everything an administrator set, in SQLite or PostgreSQL.

Tables are SQLAlchemy 2 typed declarative models; the schema itself is owned by the Alembic
migrations in ``provisioning/migrations`` (``Store.open`` upgrades to head), and a test keeps
the two in step. Ids are UUID strings so rows can be created on any instance without a
round-trip; timestamps are timezone-aware UTC on both backends.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Enum,
    ForeignKey,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# A fixed key so concurrent starts (several instances on one PostgreSQL) migrate one at a time.
_MIGRATION_LOCK_KEY = 0x63616C6C726F7574  # "callrout"
_EXCLUSIVE_LOCK_KEY = _MIGRATION_LOCK_KEY + 1
_EXCLUSIVE = "callrouter_exclusive"


class StoreError(Exception):
    """The store cannot be opened (bad URL, unreachable server, failed migration)."""


class Subscription(enum.StrEnum):
    TRIAL = "TRIAL"
    PAID = "PAID"


class PstnType(enum.StrEnum):
    CALLING_PLAN = "CALLING_PLAN"
    CLOUD_CONNECTED_PSTN = "CLOUD_CONNECTED_PSTN"
    LOCAL_GATEWAY = "LOCAL_GATEWAY"


class NumberState(enum.StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    PORT_PENDING = "PORT_PENDING"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out.

    SQLite has no time zone storage and would hand back naive values; normalising here keeps
    comparisons between fresh and loaded timestamps from raising.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # VARCHAR + CHECK rather than PostgreSQL's native ENUM: adding a value later is then an
    # ordinary migration on both backends.
    return Enum(cls, name=name, native_enum=False, create_constraint=True, length=32,
                values_callable=lambda members: [m.value for m in members])


JSONDocument = JSON().with_variant(JSONB(), "postgresql")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class _Timestamps:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Organization(_Timestamps, Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    country: Mapped[str] = mapped_column(String(2))
    subscription: Mapped[Subscription] = mapped_column(_enum(Subscription, "subscription"))
    business_account: Mapped[bool] = mapped_column(Boolean, default=False)
    sip_realm: Mapped[str] = mapped_column(String(253), unique=True)

    locations: Mapped[list[Location]] = relationship(back_populates="organization")
    people: Mapped[list[Person]] = relationship(back_populates="organization")


class Location(_Timestamps, Base):
    __tablename__ = "locations"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    time_zone: Mapped[str] = mapped_column(String(64))
    address: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    emergency_address: Mapped[dict[str, Any]] = mapped_column(JSONDocument)
    pstn_type: Mapped[PstnType | None] = mapped_column(_enum(PstnType, "pstn_type"))
    pstn_trunk: Mapped[str | None] = mapped_column(String(200))
    # Deliberately not a foreign key: numbers.location_id already points this way, and a
    # cycle of foreign keys makes inserts and deletes order-dependent on both backends.
    main_number: Mapped[str | None] = mapped_column(String(16))
    # Where calls to the main number go: "PERSON" or "AUTO_ATTENDANT" and that entity's id.
    main_destination_type: Mapped[str | None] = mapped_column(String(16))
    main_destination_id: Mapped[str | None] = mapped_column(String(36))
    # Dialled before an extension to reach this location from another one (e.g. "8" + 1001).
    routing_prefix: Mapped[str | None] = mapped_column(String(8))
    # Dialled before an outside number (e.g. "9"); None: numbers are dialled as they are.
    outside_dial_digit: Mapped[str | None] = mapped_column(String(1))
    # Who the calling plan provider and emergency notifications reach: name, email, phone.
    contact: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)

    organization: Mapped[Organization] = relationship(back_populates="locations")
    people: Mapped[list[Person]] = relationship(back_populates="location")
    numbers: Mapped[list[Number]] = relationship(back_populates="location")


class Person(_Timestamps, Base):
    __tablename__ = "people"
    __table_args__ = (UniqueConstraint("location_id", "extension"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    location_id: Mapped[str] = mapped_column(ForeignKey("locations.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    extension: Mapped[str | None] = mapped_column(String(6))
    # Not a foreign key for the same reason as Location.main_number: Number.owner_id is the link.
    phone_number: Mapped[str | None] = mapped_column(String(16), unique=True)

    organization: Mapped[Organization] = relationship(back_populates="people")
    location: Mapped[Location] = relationship(back_populates="people")
    devices: Mapped[list[Device]] = relationship(back_populates="person", cascade="all, delete-orphan")


class Device(_Timestamps, Base):
    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    person_id: Mapped[str] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    sip_username: Mapped[str] = mapped_column(String(64), unique=True)
    # DESK_PHONE or SOFT_CLIENT: what the administrator handed out; SIP treats both alike.
    device_type: Mapped[str] = mapped_column(String(16), default="DESK_PHONE")
    ha1_md5: Mapped[str] = mapped_column(String(32))
    ha1_sha256: Mapped[str] = mapped_column(String(64))
    ha1_sha512_256: Mapped[str] = mapped_column(String(64))

    person: Mapped[Person] = relationship(back_populates="devices")

    def ha1(self) -> dict[str, str]:
        return {"MD5": self.ha1_md5, "SHA-256": self.ha1_sha256, "SHA-512-256": self.ha1_sha512_256}

    def set_ha1(self, digests: dict[str, str]) -> None:
        self.ha1_md5 = digests["MD5"]
        self.ha1_sha256 = digests["SHA-256"]
        self.ha1_sha512_256 = digests["SHA-512-256"]


class Number(_Timestamps, Base):
    __tablename__ = "numbers"

    e164: Mapped[str] = mapped_column(String(16), primary_key=True)
    location_id: Mapped[str] = mapped_column(ForeignKey("locations.id"), index=True)
    state: Mapped[NumberState] = mapped_column(_enum(NumberState, "number_state"), default=NumberState.ACTIVE)
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("people.id", ondelete="SET NULL"), index=True)
    is_main: Mapped[bool] = mapped_column(Boolean, default=False)
    # None: the location's emergency address applies (a remote worker's number has its own).
    emergency_address: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)

    location: Mapped[Location] = relationship(back_populates="numbers")
    owner: Mapped[Person | None] = relationship()


@dataclass(frozen=True)
class SipCredential:
    """What the registrar needs to challenge and recognise one device."""

    username: str
    realm: str
    ha1: dict[str, str] = field(hash=False)  # algorithm name ("MD5", "SHA-256", "SHA-512-256") -> hex
    person_email: str
    location: str
    extension: str | None
    phone_number: str | None


def normalize_url(url: str) -> URL:
    """Parse a store URL, choosing psycopg 3 for plain ``postgresql://``."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"not a database URL: {url!r}") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(f"unsupported store {parsed.drivername!r}: use sqlite:/// or postgresql://")
    return parsed


def _sqlite_engine(url: URL) -> Engine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling skips BEGIN before SELECT and DDL, so a
        # read-then-write session is not atomic; take over BEGIN ourselves (SQLAlchemy's
        # documented recipe) and turn on what SQLite leaves off by default.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: two writers that both read first would
        # otherwise deadlock on the upgrade and one would fail with "database is locked".
        exclusive = connection.get_execution_options().get(_EXCLUSIVE)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if exclusive else "BEGIN")

    return engine


def create_store_engine(url: str | URL) -> Engine:
    """An engine for a store URL, with the per-backend settings the store relies on."""
    parsed = normalize_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    return create_engine(parsed, pool_pre_ping=True)


class Store:
    """An open store: an engine, its session factory, and the queries the runtime needs."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._exclusive_sessions = sessionmaker(engine.execution_options(**{_EXCLUSIVE: True}), expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> Store:
        """Connect to ``sqlite:///path`` or ``postgresql://...`` and migrate to the newest schema."""
        parsed = normalize_url(url)
        engine = create_store_engine(parsed)
        store = cls(engine)
        try:
            store.migrate()
        except DBAPIError as exc:
            engine.dispose()
            shown = parsed.render_as_string(hide_password=True)
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StoreError(f"cannot open store {shown}: {reason}") from exc
        return store

    def migrate(self) -> None:
        """Run Alembic ``upgrade head`` on this engine, without an alembic.ini on disk."""
        from alembic import command

        config = alembic_config()
        with self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def session(self, exclusive: bool = False) -> Iterator[Session]:
        """A unit of work that commits whole on success and rolls back on any exception.

        ``exclusive`` sessions run one at a time across every process using the store
        (SQLite: BEGIN IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock). Use it
        for read-check-write work such as applying an organisation file, which several
        instances starting together would otherwise race on.
        """
        factory = self._exclusive_sessions if exclusive else self._sessions
        with factory() as session:
            try:
                if exclusive and self.engine.dialect.name == "postgresql":
                    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _EXCLUSIVE_LOCK_KEY})
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def sip_credentials(self) -> list[SipCredential]:
        """Every device's digest credentials with who and where it belongs, by username."""
        query = (
            select(Device, Person, Location, Organization)
            .join(Device.person)
            .join(Person.location)
            .join(Person.organization)
            .order_by(Device.sip_username)
        )
        with self.session() as session:
            return [
                SipCredential(
                    username=device.sip_username,
                    realm=org.sip_realm,
                    ha1=device.ha1(),
                    person_email=person.email,
                    location=location.name,
                    extension=person.extension,
                    phone_number=person.phone_number,
                )
                for device, person, location, org in session.execute(query)
            ]


def alembic_config() -> Any:
    """An Alembic Config pointing at the packaged migrations (no ini file needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Silences Alembic's warning about legacy space/comma splitting of version_locations.
    config.set_main_option("path_separator", "os")
    return config


# Tables owned by later concerns live in their own modules; importing them here registers them
# on Base.metadata wherever the store is used (and lets the migration test compare them all).
from provisioning import tables_access, tables_calls, tables_ivr, tables_orders  # noqa: E402,F401
