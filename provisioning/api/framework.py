"""The REST API framework: declare an operation once, get routing, checks and its OpenAPI entry.

Writing a resource module
-------------------------
A resource is a plain module whose handlers register themselves on import with ``@route``;
``provisioning/api/app.py`` imports a fixed list of them::

    from provisioning.api.framework import ApiError, ApiRequest, Page, PageQuery, WRITE_ROLES, route

    @route("POST", "/v1/trunks", summary="Create a trunk", tags=["trunks"], body=TrunkIn,
           response=TrunkOut, status=201, roles=WRITE_ROLES)
    async def create_trunk(req: ApiRequest) -> TrunkOut:
        with req.ctx.unit_of_work(req.actor) as uow:      # one transaction, whole or nothing
            if uow.session.scalar(...):                     # business rule broken:
                raise ApiError(409, "Trunk exists", "...", field="name", rule="trunk-name-unique")
            uow.session.add(row)
            uow.change("trunk", row.id, "created", None, snapshot(row))   # audit + event
            uow.mail(to, subject, body)                     # sent after the commit
        return TrunkOut.of(row)

What the framework does for every operation
-------------------------------------------
- Authentication: ``Authorization: Bearer <token>``; missing/unknown/revoked -> 401, a role
  outside ``roles`` -> 403 (``public=True`` skips both). ``req.actor`` is the ``Actor``
  (token_id, role, name, org_id); every query must be limited to ``req.actor.org_id``.
  ``roles`` defaults to every role for GET and to ``WRITE_ROLES`` for anything else.
- Input: the JSON body is validated against ``body`` (a pydantic model; camelCase aliases)
  into ``req.body``; the query string against ``query`` (a model, usually a ``PageQuery``
  subclass) into ``req.params``; ``req.path`` holds the path parameters. Unparseable JSON ->
  400, a body that is not JSON -> 415, invalid values -> 422 with ``errors: [{field, message}]``.
  Text containing NUL or unpaired surrogates is refused (422) before any handler sees it.
- Output: a handler returns a pydantic model, a list of models, a plain dict/list, ``None``
  (204) or an ``aiohttp.web.Response``; models are rendered with their aliases. ``status``
  is the success status.
- Errors: ``raise ApiError(status, title, detail, field=..., rule=...)`` renders RFC 9457
  ``application/problem+json`` with ``type`` = ``https://callrouter.dev/problems/<rule>``.
  Unique-constraint violations the handler did not foresee become 409, values the database
  cannot hold 422, a busy database 503 with Retry-After; anything else 500 (logged with an id,
  no traceback to the client).
- Idempotency: a POST with ``Idempotency-Key`` records the key in the same transaction as its
  change (the first unit of work of the request). The same key and body again replays the
  stored response (``Idempotent-Replayed: true``); the same key with another body is 422.
- ETags: GET responses carry ``ETag`` (a hash of the body; ``If-None-Match`` gives 304). PUT,
  PATCH and DELETE handlers call ``req.check_if_match(current)`` with the resource as GET
  shows it, inside their unit of work: a stale ``If-Match`` is 412 (no If-Match: no check).
- Caching: GET responses are cached per organisation and URL, and reused while the store's
  generation (bumped by every committed unit of work, in any process) is unchanged. Pass
  ``cache=False`` for an operation whose answer depends on anything else (the clock).
- Pagination: list operations take ``start`` (offset) and ``max`` (page size, 1..1000,
  default 100) and return ``Page[T]`` {items, start, max, total}.

The blocking database calls of a handler run on the event loop: keep units of work short
(milliseconds); use ``await asyncio.to_thread(...)`` for anything long.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar, get_args, get_origin

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from multidict import MultiMapping
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from sqlalchemy import Connection, delete, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session

from provisioning.events import EventBus
from provisioning.mail import Mailer
from provisioning.service import (
    CUSTOMER_ROLES,
    READ_ROLES,
    WRITE_ROLES,
    Actor,
    Role,
    Services,
    UnitOfWork,
)
from provisioning.store import Store
from provisioning.tables_access import ApiToken, IdempotencyRecord, StoreGeneration

__all__ = [
    "CUSTOMER_ROLES", "READ_ROLES", "WRITE_ROLES", "Actor", "ApiContext", "ApiError", "ApiModel", "ApiRequest",
    "Operation", "Page", "PageQuery", "Role", "ROUTES", "UnitOfWork", "etag_of", "hash_secret", "route",
]

log = logging.getLogger("callrouter.api")

PROBLEM_BASE = "https://callrouter.dev/problems/"
PROBLEM_JSON = "application/problem+json"
ALL_ROLES = WRITE_ROLES | READ_ROLES
IDEMPOTENCY_TTL = timedelta(hours=24)
MAX_BODY = 1 << 20
# aiohttp's defaults (8 KiB) refuse long query strings before any middleware runs, as text/plain.
HANDLER_ARGS = {"max_line_size": 65536, "max_field_size": 65536}
CACHE_BYTES = 32 << 20


# -- models ------------------------------------------------------------------------------------
class ApiModel(BaseModel):
    """Base for request and response models: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


T = TypeVar("T")


class Page(ApiModel, Generic[T]):
    items: list[T]
    start: int = Field(ge=0)
    max: int = Field(ge=1)
    total: int = Field(ge=0)


class PageQuery(ApiModel):
    start: int = Field(default=0, ge=0, le=10_000_000, description="Offset of the first item")
    max: int = Field(default=100, ge=1, le=1000, description="Page size")


# -- errors ------------------------------------------------------------------------------------
class ApiError(Exception):
    """An answer that is not success: rendered as RFC 9457 problem+json."""

    def __init__(self, status: int, title: str, detail: str, *, field: str | None = None,
                 rule: str | None = None, extra: dict | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.rule = rule
        self.extra = extra or {}
        self.headers = headers or {}

    def problem(self, instance: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + (self.rule or _STATUS_RULES.get(self.status, f"http-{self.status}")),
            "title": self.title, "status": self.status, "detail": self.detail, "instance": instance,
        }
        if self.field is not None:
            body["field"] = self.field
        if self.rule is not None:
            body["rule"] = self.rule
        body.update(self.extra)
        return body


_STATUS_RULES = {400: "bad-request", 401: "unauthenticated", 403: "forbidden", 404: "not-found",
                 405: "method-not-allowed", 409: "conflict", 412: "precondition-failed", 413: "too-large",
                 415: "unsupported-media-type", 422: "invalid", 500: "internal-error", 503: "unavailable"}


def not_found(kind: str, ident: str, field: str | None = None) -> ApiError:
    return ApiError(404, f"{kind} not found", f"no {kind} with id {ident!r} in this organisation",
                    field=field, rule="not-found")


def problem_response(error: ApiError, instance: str) -> web.Response:
    return web.Response(status=error.status, body=json.dumps(error.problem(instance)).encode(),
                        content_type=PROBLEM_JSON, headers=error.headers)


def _field_of(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) if loc else ""


def validation_error(exc: ValidationError, prefix: tuple[str, ...] = ()) -> ApiError:
    errors = [{"field": _field_of(prefix + tuple(e["loc"])), "message": e["msg"].removeprefix("Value error, "),
               "rule": e["type"]}
              for e in exc.errors(include_url=False, include_input=False)]
    first = errors[0]
    return ApiError(422, "Invalid request", f"{first['field'] or 'body'}: {first['message']}",
                    field=first["field"] or None, rule=first["rule"], extra={"errors": errors})


# -- registry ----------------------------------------------------------------------------------
Handler = Callable[["ApiRequest"], Awaitable[Any]]


@dataclass
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tags: list[str]
    body: type[BaseModel] | None
    response: Any
    status: int
    roles: frozenset[Role]
    query: type[BaseModel] | None
    public: bool
    cache: bool
    description: str | None = None
    request_body: dict | None = None  # a raw OpenAPI requestBody (multipart uploads)
    responses: dict[int, str] = field(default_factory=dict)  # further documented statuses

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


ROUTES: list[Operation] = []


def route(method: str, path: str, *, summary: str, tags: list[str], body: type[BaseModel] | None = None,
          response: Any = None, status: int = 200, roles: frozenset[Role] | None = None,
          query: type[BaseModel] | None = None, public: bool = False, cache: bool = True,
          description: str | None = None, request_body: dict | None = None,
          responses: dict[int, str] | None = None) -> Callable[[Handler], Handler]:
    method = method.upper()
    if roles is None:
        roles = ALL_ROLES if method == "GET" else WRITE_ROLES

    def register(handler: Handler) -> Handler:
        for i, op in enumerate(ROUTES):
            if op.method == method and op.path == path:
                if op.handler.__qualname__ != handler.__qualname__ or op.handler.__module__ != handler.__module__:
                    raise ValueError(f"{method} {path} is already registered by {op.handler.__module__}")
                del ROUTES[i]  # the same module imported again (importlib.reload)
                break
        ROUTES.append(Operation(method, path, handler, summary, list(tags), body, response, status,
                                frozenset(roles), query, public, cache and method == "GET", description,
                                request_body, dict(responses or {})))
        return handler

    return register


# -- context -----------------------------------------------------------------------------------
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


# -- the request -------------------------------------------------------------------------------
@dataclass
class ApiRequest:
    ctx: ApiContext
    actor: Actor | None
    body: Any
    path: dict[str, str]
    query: MultiMapping[str]
    raw: web.Request
    params: Any = None  # the validated ``query`` model
    response_headers: dict[str, str] = field(default_factory=dict)

    @property
    def org_id(self) -> str:
        if self.actor is None:
            raise ApiError(401, "Authentication required", "this operation needs a bearer token",
                           rule="unauthenticated")
        return self.actor.org_id

    def check_if_match(self, current: Any) -> None:
        """412 unless If-Match (when given) names ``current``'s ETag (or is ``*``)."""
        wanted = self.raw.headers.get("If-Match")
        if wanted is None:
            return
        tags = [t.strip().removeprefix("W/") for t in wanted.split(",")]
        if "*" in tags or etag_of(current) in tags:
            return
        raise ApiError(412, "Precondition failed",
                       "the resource changed since it was read (If-Match does not match its ETag); GET it again",
                       field="If-Match", rule="etag-mismatch")


# -- rendering ---------------------------------------------------------------------------------
def render(value: Any) -> bytes:
    if isinstance(value, BaseModel):
        return value.model_dump_json(by_alias=True).encode()
    if isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
        return b"[" + b",".join(v.model_dump_json(by_alias=True).encode() for v in value) + b"]"
    return json.dumps(value, separators=(",", ":"), default=str).encode()


def etag_of(value: Any) -> str:
    body = value if isinstance(value, bytes) else render(value)
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


# -- input checks ------------------------------------------------------------------------------
def _bad_text(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (no unpaired surrogates)"
    return None


def _check_text(value: Any, loc: tuple[Any, ...]) -> None:
    if isinstance(value, str):
        reason = _bad_text(value)
        if reason:
            raise ApiError(422, "Invalid request", f"{_field_of(loc) or 'body'}: {reason}",
                           field=_field_of(loc) or None, rule="invalid-text",
                           extra={"errors": [{"field": _field_of(loc), "message": reason, "rule": "invalid-text"}]})
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(k, loc)
            _check_text(v, loc + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_text(v, loc + (i,))


async def _read_body(op: Operation, request: web.Request) -> Any:
    if op.body is None:
        return None
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "Request too large", f"the body may be at most {MAX_BODY} bytes", rule="too-large")
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise ApiError(413, "Request too large", f"the body may be at most {MAX_BODY} bytes", rule="too-large")
    ctype = request.content_type
    if raw and ctype not in ("application/json", "application/merge-patch+json") and not ctype.endswith("+json"):
        raise ApiError(415, "Unsupported media type", f"send the body as application/json, not {ctype}",
                       rule="unsupported-media-type")
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "Malformed JSON", f"the body is not valid JSON: {exc}", rule="malformed-json") from None
    if data is None:
        raise ApiError(422, "Invalid request", "a JSON object body is required", rule="missing-body")
    _check_text(data, ())
    try:
        return op.body.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise validation_error(exc) from None


def _parse_query(op: Operation, request: web.Request) -> Any:
    for k, v in request.query.items():
        _check_text(k, ("query",))
        _check_text(v, ("query", k))
    if op.query is None:
        return None
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        data[key] = values if len(values) > 1 else values[0]
    try:
        return op.query.model_validate(data, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise validation_error(exc, ("query",)) from None


_BEARER = re.compile(r"^Bearer\s+(\S+)\s*$", re.IGNORECASE)


def _authenticate(op: Operation, ctx: ApiContext, request: web.Request, generation: int) -> Actor | None:
    if op.public:
        return None
    header = request.headers.get("Authorization")
    unauthenticated = {"WWW-Authenticate": 'Bearer realm="callrouter"'}
    if not header:
        raise ApiError(401, "Authentication required", "send Authorization: Bearer <token>",
                       field="Authorization", rule="unauthenticated", headers=unauthenticated)
    match = _BEARER.match(header)
    actor = ctx.actor_for(match.group(1), generation) if match and not _bad_text(match.group(1)) else None
    if actor is None:
        raise ApiError(401, "Invalid token", "the bearer token is unknown or revoked", field="Authorization",
                       rule="invalid-token", headers=unauthenticated)
    if actor.role not in op.roles:
        allowed = ", ".join(sorted(op.roles))
        raise ApiError(403, "Forbidden", f"a {actor.role} token cannot {op.method} {op.path}; it needs one of: {allowed}",
                       rule="role-not-allowed")
    return actor


# -- dispatch ----------------------------------------------------------------------------------
def _json_response(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def _claim_for(op: Operation, request: web.Request, actor: Actor | None, raw: bytes) -> _IdempotencyClaim | None:
    key = request.headers.get("Idempotency-Key")
    if op.method != "POST" or key is None:
        return None
    if not 1 <= len(key) <= 255 or _bad_text(key):
        raise ApiError(422, "Invalid Idempotency-Key", "Idempotency-Key must be 1 to 255 characters",
                       field="Idempotency-Key", rule="idempotency-key-invalid")
    fingerprint = hashlib.sha256(f"{op.method} {request.path_qs}\n".encode() + raw).hexdigest()
    return _IdempotencyClaim(actor.token_id if actor else "public", key, fingerprint)


def _replay(ctx: ApiContext, claim: _IdempotencyClaim) -> web.Response | None:
    with ctx.read() as s:
        row = s.scalar(select(IdempotencyRecord).where(IdempotencyRecord.scope == claim.scope,
                                                       IdempotencyRecord.key == claim.key))
        if row is None:
            return None
        if row.fingerprint != claim.fingerprint:
            raise ApiError(422, "Idempotency-Key reused", "this Idempotency-Key was used with another request "
                           "(method, path or body); use a new key for a new request", field="Idempotency-Key",
                           rule="idempotency-key-reused")
        if row.status is None:
            raise ApiError(409, "Request in progress", "a request with this Idempotency-Key was applied but its "
                           "response is not recorded yet; retry shortly or GET the resource",
                           field="Idempotency-Key", rule="idempotency-key-in-progress")
        ctype = PROBLEM_JSON if row.status >= 400 else "application/json"
        return web.Response(status=row.status, body=(row.response or "").encode(), content_type=ctype,
                            headers={"Idempotent-Replayed": "true"})


def _store_response(ctx: ApiContext, claim: _IdempotencyClaim, response: web.Response) -> None:
    body = response.body if isinstance(response.body, bytes) else b""
    with ctx.store.session() as s:
        row = s.scalar(select(IdempotencyRecord).where(IdempotencyRecord.scope == claim.scope,
                                                       IdempotencyRecord.key == claim.key))
        if row is not None:
            row.status = response.status
            row.response = body.decode("utf-8", "replace")


def _to_response(op: Operation, req: ApiRequest, result: Any) -> web.Response:
    if isinstance(result, web.StreamResponse):
        return result  # type: ignore[return-value]
    if result is None and op.status == 204:
        return web.Response(status=204, headers=req.response_headers)
    body = render(result)
    headers = dict(req.response_headers)
    if op.method in ("GET", "PUT", "PATCH") or (op.method == "POST" and op.status in (200, 201)):
        headers.setdefault("ETag", etag_of(body))
    return _json_response(op.status, body, headers)


def make_handler(op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        ctx: ApiContext = request.app[CONTEXT_KEY]
        generation = ctx.generation()
        actor = _authenticate(op, ctx, request, generation)
        cache_key = None
        if op.cache:
            # Only answers to valid requests are cached, so a hit needs no further checks.
            cache_key = (actor.org_id if actor else "", request.path_qs)
            hit = ctx.cached(cache_key, generation)
            if hit is not None:
                return _conditional_get(request, *hit)
        params = _parse_query(op, request)
        path = dict(request.match_info)
        for k, v in path.items():
            _check_text(v, ("path", k))

        body = await _read_body(op, request)
        claim = _claim_for(op, request, actor, await request.read() if op.body is not None else b"")
        if claim is not None:
            replay = _replay(ctx, claim)
            if replay is not None:
                return replay
        req = ApiRequest(ctx, actor, body, path, request.query, request, params)
        token = _CURRENT_CLAIM.set(claim)
        try:
            try:
                response = _to_response(op, req, await op.handler(req))
            except IntegrityError:
                if claim is not None and not claim.recorded:
                    replay = _replay(ctx, claim)  # a concurrent duplicate of this request won
                    if replay is not None:
                        return replay
                raise
            except ApiError as error:
                if claim is None or not claim.recorded:
                    raise
                response = problem_response(error, request.path)
        finally:
            _CURRENT_CLAIM.reset(token)
        if claim is not None and claim.recorded:
            _store_response(ctx, claim, response)
        if cache_key is not None and response.status == 200 and isinstance(response.body, bytes):
            ctx.remember(cache_key, generation, response.body, response.headers.get("ETag", ""))
            return _conditional_get(request, response.body, response.headers.get("ETag", ""))
        return response

    handle.__name__ = op.handler.__name__
    return handle


def _conditional_get(request: web.Request, body: bytes, etag: str) -> web.Response:
    wanted = request.headers.get("If-None-Match")
    if wanted and etag and (wanted.strip() == "*" or etag in [t.strip().removeprefix("W/") for t in wanted.split(",")]):
        return web.Response(status=304, headers={"ETag": etag})
    return _json_response(200, body, {"ETag": etag} if etag else {})


CONTEXT_KEY = web.AppKey("api_context", ApiContext)


@web.middleware
async def problem_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                             ) -> web.StreamResponse:
    """Every failure leaves as problem+json; no traceback ever reaches the client."""
    try:
        return await handler(request)
    except ApiError as error:
        return problem_response(error, request.path)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow",)}
        detail = {404: f"no such path: {request.path}",
                  405: f"{request.method} is not allowed on {request.path}"}.get(exc.status, exc.reason)
        return problem_response(ApiError(exc.status, exc.reason, detail, headers=headers), request.path)
    except HttpProcessingError as exc:
        # Malformed framing inside the body (a broken multipart part, a bad chunk).
        return problem_response(ApiError(400, "Malformed request", f"the request body cannot be parsed: "
                                         f"{exc.message}"[:300], rule="malformed-request"), request.path)
    except IntegrityError as exc:
        log.info("conflict on %s %s: %s", request.method, request.path, exc.orig)
        return problem_response(ApiError(409, "Conflict", "the change conflicts with existing data "
                                         "(a value that must be unique is taken, or something it refers to changed)",
                                         rule="conflict"), request.path)
    except DataError as exc:
        log.info("value refused by the store on %s %s: %s", request.method, request.path, exc.orig)
        return problem_response(ApiError(422, "Invalid value", "a value is out of the range the store can hold",
                                         rule="value-out-of-range"), request.path)
    except OperationalError as exc:
        log.warning("store busy or unreachable on %s %s: %s", request.method, request.path, exc.orig)
        return problem_response(ApiError(503, "Service unavailable", "the store is busy or unreachable; retry",
                                         rule="store-unavailable", headers={"Retry-After": "1"}), request.path)
    except Exception:
        incident = uuid.uuid4().hex[:12]
        log.exception("internal error %s on %s %s", incident, request.method, request.path)
        return problem_response(ApiError(500, "Internal error", f"an internal error occurred (incident {incident})",
                                         rule="internal-error", extra={"incident": incident}), request.path)


def response_model_of(response: Any) -> tuple[type[BaseModel] | None, bool]:
    """(model, is_list) for a ``response=`` declaration (a model or ``list[Model]``)."""
    if response is None:
        return None, False
    if get_origin(response) is list:
        (item,) = get_args(response)
        return item, True
    return response, False
