"""The HTTP side of the runtime: the provisioning REST API, health and Prometheus metrics.

The API gets its context here from what the runtime already holds (the store, the event bus
that routing follows, the settings); its mailer and activation start with the web app and the
mailer stops with it.
"""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from .app import Runtime

RUNTIME_KEY = web.AppKey("runtime", object)
REGISTRY_KEY = web.AppKey("registry", CollectorRegistry)


class RuntimeCollector:
    """Reads the SIP core's plain counters at scrape time, so the hot path never touches
    prometheus_client objects."""

    def __init__(self, runtime: "Runtime"):
        self.runtime = runtime

    def collect(self):
        rt = self.runtime
        ep = rt.endpoint
        if ep is None:
            return
        stats = ep.stats
        rt.bindings.prune(time.time())  # expired bindings leave the count when they expire
        reg = GaugeMetricFamily("callrouter_registrations", "Current bindings (registered contacts)")
        reg.add_metric([], len(rt.bindings))
        yield reg
        aors = GaugeMetricFamily("callrouter_registered_aors", "Users with at least one binding")
        aors.add_metric([], sum(1 for _ in rt.bindings.aors()))
        yield aors
        req = CounterMetricFamily("callrouter_sip_requests", "SIP requests received", labels=["method"])
        for method, n in sorted(stats.requests.items()):
            req.add_metric([method], n)
        yield req
        resp = CounterMetricFamily("callrouter_sip_responses", "SIP responses sent", labels=["class"])
        for cls, n in sorted(stats.responses.items()):
            resp.add_metric([cls], n)
        yield resp
        txn = GaugeMetricFamily("callrouter_sip_transactions", "SIP transactions in flight", labels=["kind"])
        for kind, n in sorted(ep.transactions.counts().items()):
            txn.add_metric([kind], n)
        yield txn
        perr = CounterMetricFamily("callrouter_sip_parse_errors", "Messages that could not be parsed")
        perr.add_metric([], stats.parse_errors)
        yield perr
        drop = CounterMetricFamily("callrouter_sip_dropped", "Messages dropped", labels=["reason"])
        for reason, n in sorted(stats.dropped.items()):
            drop.add_metric([reason], n)
        yield drop
        auth = CounterMetricFamily("callrouter_sip_auth_failures", "Failed digest authentications")
        auth.add_metric([], stats.auth_failures)
        yield auth
        bans = GaugeMetricFamily("callrouter_sip_banned_sources", "Source addresses currently banned")
        bans.add_metric([], len(ep.guard.banned_sources(time.time())))
        yield bans


async def healthz(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME_KEY]
    ok = rt.endpoint is not None and rt.sip is not None
    rt.bindings.prune(time.time())
    body = {
        "status": "ok" if ok else "starting",
        "uptimeSeconds": round(time.time() - rt.started_at, 1),
        "registrations": len(rt.bindings),
        "sip": {"port": rt.sip.port if rt.sip else None,
                "tlsPort": rt.sip.tls_port if rt.sip and rt.sip.ssl_context else None},
    }
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    registry = request.app[REGISTRY_KEY]
    return web.Response(body=generate_latest(registry),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


def build_api_context(runtime: "Runtime"):
    from provisioning.api.framework import ApiContext
    from provisioning.events import EventBus
    from provisioning.mail import Mailer, SmtpConfig

    s = runtime.settings
    smtp = (SmtpConfig(s.mail.smtp_host, s.mail.smtp_port, s.mail.sender, s.mail.timeout)
            if s.mail.smtp_host else None)
    events = getattr(runtime, "events", None) or EventBus()
    ctx = ApiContext(runtime.store, events=events, mailer=Mailer(runtime.store, smtp), settings=s)
    from ivr.prompts import convert_upload  # provisioning may not import ivr; the wiring hands it over

    ctx.audio_converter = convert_upload
    if s.carrier.simulator is not None:
        from provisioning.simulated_carrier import carrier_from_settings

        ctx.carrier = carrier_from_settings(s.carrier.simulator, ctx.clock)
    return ctx


CARRIER_SYNC_KEY = web.AppKey("carrier_sync", asyncio.Task)


async def _start_api(app: web.Application) -> None:
    from provisioning.api.activation import begin_activation
    from provisioning.api.framework import CONTEXT_KEY

    ctx = app[CONTEXT_KEY]
    ctx.mailer.start()
    await asyncio.to_thread(begin_activation, ctx)
    if ctx.carrier is not None:
        from provisioning.api.carrier_sim import carrier_sync_loop

        # Orders and ports move when the carrier answers; a real carrier answers only to polling.
        app[CARRIER_SYNC_KEY] = asyncio.get_running_loop().create_task(carrier_sync_loop(ctx))


async def _stop_api(app: web.Application) -> None:
    from provisioning.api.framework import CONTEXT_KEY

    sync = app.get(CARRIER_SYNC_KEY)
    if sync is not None:
        sync.cancel()
        try:
            await sync
        except asyncio.CancelledError:
            pass
    await app[CONTEXT_KEY].mailer.stop()


def build_web_app(runtime: "Runtime") -> web.Application:
    from provisioning.api.app import create_api_app
    from provisioning.api.framework import HANDLER_ARGS, MAX_BODY

    app = web.Application(client_max_size=MAX_BODY + 4096, handler_args=HANDLER_ARGS)
    if runtime.store is not None:
        create_api_app(build_api_context(runtime), app)
        app.on_startup.append(_start_api)
        app.on_cleanup.append(_stop_api)
    app[RUNTIME_KEY] = runtime
    registry = CollectorRegistry()
    registry.register(RuntimeCollector(runtime))
    app[REGISTRY_KEY] = registry
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
