"""The API's context: what handlers reach (store, events, mail, clock, carrier, settings), plus the
per-server caches (tokens, GET answers) checked against the store generation, and the idempotency
claim a request's first unit of work records. Re-exported by ``provisioning.api.framework``.
"""

from __future__ import annotations

import contextvars
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import Connection, delete, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from provisioning.events import EventBus
from provisioning.mail import Mailer
from provisioning.service import Actor, Role, Services, UnitOfWork
from provisioning.store import Store
from provisioning.tables_access import ApiToken, IdempotencyRecord, StoreGeneration

IDEMPOTENCY_TTL = timedelta(hours=24)
CACHE_BYTES = 32 << 20

_GENERATION = select(StoreGeneration.value).where(StoreGeneration.id == 1)
@dataclass
class _IdempotencyClaim:
    scope: str
    key: str
    fingerprint: str
    recorded: bool = False


_CURRENT_CLAIM: contextvars.ContextVar[_IdempotencyClaim | None] = contextvars.ContextVar("idempotency", default=None)


class ApiContext:
    """Everything handlers reach: one per running server."""

    def __init__(self, store: Store, *, events: EventBus | None = None, mailer: Mailer | None = None,
                 clock: Callable[[], datetime] | None = None, carrier: Any | None = None,
                 settings: Any = None, audio_converter: Any = None) -> None:
        clock = clock or (lambda: datetime.now(UTC))
        self.services = Services(store, events or EventBus(), mailer or Mailer(store, None, clock=clock), clock)
        self.carrier = carrier
        self.settings = settings
        self.audio_converter = audio_converter  # set by the wiring for announcement uploads (ivr)
        self._cache: OrderedDict[tuple[str, str], tuple[int, bytes, str]] = OrderedDict()
        self._cache_bytes = 0
        self._tokens: dict[str, tuple[int, Actor | None]] = {}
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._raw_connections: list[Any] = []

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def events(self) -> EventBus:
        return self.services.events

    @property
    def mailer(self) -> Mailer:
        assert self.services.mailer is not None
        return self.services.mailer

    @property
    def clock(self) -> Callable[[], datetime]:
        return self.services.clock

    @clock.setter
    def clock(self, value: Callable[[], datetime]) -> None:
        self.services.clock = value
        self.mailer.clock = value

    @contextmanager
    def unit_of_work(self, actor: Actor | None, *, org_id: str | None = None) -> Iterator[UnitOfWork]:
        claim = _CURRENT_CLAIM.get()
        hook = None
        if claim is not None and not claim.recorded:
            def hook(session: Session) -> None:
                _record_claim(session, claim, self.clock())
        with self.services.unit_of_work(actor, org_id=org_id, before_commit=hook) as uow:
            yield uow
        if claim is not None:
            claim.recorded = True

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading (no exclusive lock, nothing audited)."""
        with self.store.session() as session:
            yield session

    @contextmanager
    def read_connection(self) -> Iterator[Connection]:
        """A short read transaction on this thread's long-lived connection, for hot read paths.

        SQLAlchemy Core on a connection that stays checked out costs a tenth of an ORM session
        from the pool; each use is its own transaction, so it never reads a stale snapshot.
        """
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            conn = self._local.conn = self.store.engine.connect()
            self._connections.append(conn)
        try:
            with conn.begin():
                yield conn
        except DBAPIError as exc:
            if exc.connection_invalidated:
                self._local.conn = None
            raise

    def generation(self) -> int:
        """The store generation, read on every request: one autocommit SELECT on a driver
        connection of its own (a few microseconds; through SQLAlchemy it is most of a cached
        GET's cost)."""
        raw = getattr(self._local, "raw", None)
        try:
            if raw is None:
                raw = self._local.raw = self.store.engine.raw_connection()
                self._raw_connections.append(raw)
                if self.store.engine.dialect.name == "postgresql":
                    raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            cursor = raw.cursor()
            try:
                cursor.execute("SELECT value FROM store_generation WHERE id = 1")
                return int(cursor.fetchone()[0])
            finally:
                cursor.close()
        except Exception:
            # A broken connection (database restarted): drop it and answer the slow way.
            self._local.raw = None
            if raw is not None:
                raw.invalidate()
            with self.read_connection() as conn:
                return conn.execute(_GENERATION).scalar_one()

    def close(self) -> None:
        for conn in self._connections:
            conn.close()
        for raw in self._raw_connections:
            raw.invalidate()  # not back to the pool: its autocommit setting is ours
        self._connections.clear()
        self._raw_connections.clear()
        self._local = threading.local()

    # Token lookups and GET responses are reused while the store generation is unchanged.
    def actor_for(self, secret: str, generation: int) -> Actor | None:
        digest = hash_secret(secret)
        cached = self._tokens.get(digest)
        if cached is not None and cached[0] == generation:
            return cached[1]
        with self.store.session() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.secret_hash == digest, ApiToken.revoked_at.is_(None)))
            actor = Actor(row.id, Role(row.role), row.name, row.org_id) if row is not None else None
        if len(self._tokens) > 10_000:
            self._tokens.clear()
        self._tokens[digest] = (generation, actor)
        return actor

    def cached(self, key: tuple[str, str], generation: int) -> tuple[bytes, str] | None:
        hit = self._cache.get(key)
        if hit is None or hit[0] != generation:
            return None
        self._cache.move_to_end(key)
        return hit[1], hit[2]

    def remember(self, key: tuple[str, str], generation: int, body: bytes, etag: str) -> None:
        old = self._cache.pop(key, None)
        if old is not None:
            self._cache_bytes -= len(old[1])
        self._cache[key] = (generation, body, etag)
        self._cache_bytes += len(body)
        while self._cache_bytes > CACHE_BYTES and self._cache:
            _key, (_gen, dropped, _etag) = self._cache.popitem(last=False)
            self._cache_bytes -= len(dropped)


def hash_secret(secret: str) -> str:
    # Tokens are 256-bit random strings, so a plain hash is as good as a slow KDF here.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _record_claim(session: Session, claim: _IdempotencyClaim, now: datetime) -> None:
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - IDEMPOTENCY_TTL))
    session.add(IdempotencyRecord(scope=claim.scope, key=claim.key, fingerprint=claim.fingerprint, created_at=now))



CONTEXT_KEY = web.AppKey("api_context", ApiContext)
