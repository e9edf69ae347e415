"""The aiohttp application serving /v1, /openapi.json and /docs.

Resource modules register their operations on import; this list is the whole API. Modules
another change is still writing are skipped only while they do not exist yet.
"""

from __future__ import annotations

import importlib
import json
import logging

from aiohttp import web

from provisioning.api import framework
from provisioning.api._openapi import build_openapi, docs_page
from provisioning.api._dispatch import make_handler, problem_middleware
from provisioning.api.framework import CONTEXT_KEY, ApiContext

log = logging.getLogger("callrouter.api")

RESOURCES = [
    "activation", "tokens", "organization", "locations", "numbers", "people", "trunks", "audit", "outbox",
]
# Written by other changes; absent modules are skipped (only their own ImportError).
OPTIONAL_RESOURCES = [
    "orders", "ports", "inventory", "carrier_sim", "auto_attendants", "schedules", "announcements", "cdrs",
]


def load_resources() -> list[str]:
    loaded = []
    for name in RESOURCES:
        importlib.import_module(f"provisioning.api.{name}")
        loaded.append(name)
    for name in OPTIONAL_RESOURCES:
        module = f"provisioning.api.{name}"
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        loaded.append(name)
    return loaded


OPENAPI_KEY = web.AppKey("openapi", bytes)


def create_api_app(ctx: ApiContext, app: web.Application | None = None) -> web.Application:
    """Serve the API from ``app`` (a new application when None) with ``ctx`` behind it."""
    load_resources()
    app = app if app is not None else web.Application(client_max_size=framework.MAX_BODY + 4096,
                                                      handler_args=framework.HANDLER_ARGS)
    app.middlewares.append(problem_middleware)
    app[CONTEXT_KEY] = ctx
    operations = [op for op in framework.ROUTES if _wanted(op, ctx)]
    for op in operations:
        app.router.add_route(op.method, op.path, make_handler(op))
    document = build_openapi(operations)
    app[OPENAPI_KEY] = json.dumps(document).encode()
    page = docs_page(document)

    async def openapi(_request: web.Request) -> web.Response:
        return web.Response(body=app[OPENAPI_KEY], content_type="application/json")

    async def docs(_request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/docs", docs)

    async def close_context(_app: web.Application) -> None:
        ctx.close()

    app.on_cleanup.append(close_context)
    return app


def _wanted(op: framework.Operation, ctx: ApiContext) -> bool:
    # The carrier simulator's own operations exist only while it is configured.
    return not (op.path.startswith("/v1/carrierSimulator") and ctx.carrier is None)
