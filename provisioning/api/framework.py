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
(milliseconds); use ``await asyncio.to_thread(...)`` for anything long. Hot read paths can use
``req.ctx.read_connection()`` (SQLAlchemy Core on a long-lived connection, one transaction per
use) instead of an ORM session.

This module holds the contract; ``_context.py`` the context and its caches, ``_dispatch.py``
the running of an operation and the problem middleware, ``_openapi.py`` the document.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, get_args, get_origin

from aiohttp import web
from multidict import MultiMapping
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from provisioning.api._context import CONTEXT_KEY, ApiContext, hash_secret
from provisioning.service import (
    CUSTOMER_ROLES,
    READ_ROLES,
    WRITE_ROLES,
    Actor,
    Role,
    UnitOfWork,
)

__all__ = [
    "CONTEXT_KEY", "CUSTOMER_ROLES", "READ_ROLES", "WRITE_ROLES", "Actor", "ApiContext", "ApiError", "ApiModel",
    "ApiRequest", "Operation", "Page", "PageQuery", "Role", "ROUTES", "UnitOfWork", "etag_of", "hash_secret", "route",
]

log = logging.getLogger("callrouter.api")

PROBLEM_BASE = "https://callrouter.dev/problems/"
PROBLEM_JSON = "application/problem+json"
ALL_ROLES = WRITE_ROLES | READ_ROLES
MAX_BODY = 1 << 20
# aiohttp's defaults (8 KiB) refuse long query strings before any middleware runs, as text/plain.
HANDLER_ARGS = {"max_line_size": 65536, "max_field_size": 65536}


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


def response_model_of(response: Any) -> tuple[type[BaseModel] | None, bool]:
    """(model, is_list) for a ``response=`` declaration (a model or ``list[Model]``)."""
    if response is None:
        return None, False
    if get_origin(response) is list:
        (item,) = get_args(response)
        return item, True
    return response, False
