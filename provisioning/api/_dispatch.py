"""Running an operation: authentication, the GET cache, input checks, idempotency claims, rendering,
and the middleware that turns every failure into a problem document."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from provisioning.api._context import _CURRENT_CLAIM, CONTEXT_KEY, ApiContext, _IdempotencyClaim
from provisioning.api.framework import (
    MAX_BODY, PROBLEM_JSON, ApiError, ApiRequest, Operation, _field_of, etag_of, problem_response, render,
    validation_error,
)
from provisioning.service import Actor
from provisioning.tables_access import IdempotencyRecord

log = logging.getLogger("callrouter.api")

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
    # Exclusive: a read-then-write in a plain SQLite transaction fails at once ("database is
    # locked") when another writer is busy, and this request has already succeeded.
    with ctx.store.session(exclusive=True) as s:
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
            try:
                _store_response(ctx, claim, response)
            except Exception:
                # The change is committed; the client still gets its answer. A replay of this
                # key will say the response was not recorded (409) rather than apply it twice.
                log.exception("could not record the response for Idempotency-Key %r", claim.key)
        if (cache_key is not None and response.status == 200 and isinstance(response.body, bytes)
                and response.content_type == "application/json"):
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


