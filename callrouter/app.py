"""Assembling the running service: store, registrar, SIP listeners and the HTTP side.

`Runtime` is what `callrouter serve` runs and what the tests start in-process or as a
subprocess; it owns the order of start-up (store and organisation first, so that the first
REGISTER already finds its credentials) and of shutdown (bindings flushed last).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from provisioning.events import EventBus
from provisioning.orgfile import apply_org
from provisioning.store import Store
from sipcore.auth import DigestAuthenticator, DigestCredentials
from sipcore.b2bua import B2BUA
from sipcore.endpoint import Endpoint
from sipcore.identify import CallerIdentifier
from sipcore.mediasession import PassthroughMedia, RelayedMedia
from sipcore.relay import MediaRelay
from sipcore.guard import SourceGuard
from sipcore.location import MemoryBindingStore, open_snapshot
from sipcore.registrar import Registrar, RegistrarPolicy
from sipcore.tls import server_context
from sipcore.transaction import TransactionLayer
from sipcore.transport import SipServer

from .calls import CallRecordWriter, DirectoryHolder, LocalAddress
from .media import RelayPool
from .settings import Settings
from .web import build_web_app

log = logging.getLogger("callrouter")
DEFAULT_REALM = "callrouter"
PRUNE_EVERY = 5.0


class Runtime:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store: Store | None = None
        self.bindings = MemoryBindingStore()
        self.snapshot = None
        self.credentials: dict[str, DigestCredentials] = {}
        self.realm = DEFAULT_REALM
        self.endpoint: Endpoint | None = None
        self.directory: DirectoryHolder | None = None
        self.b2bua: B2BUA | None = None
        self.relay: MediaRelay | None = None
        self.relay_pool: RelayPool | None = None
        self.call_records: CallRecordWriter | None = None
        self.local_address: LocalAddress | None = None
        # Every committed change (API, org file) is published here; routing and the
        # registrar's credentials follow it without a restart.
        self.events = EventBus()
        self.events.subscribe(self._on_store_events)
        self.sip: SipServer | None = None
        self._web_runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []
        self.started_at = time.time()

    # -- start and stop --------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        self._loop = asyncio.get_running_loop()
        self.store = await asyncio.to_thread(Store.open, s.store.url)
        if s.org is not None:
            summary = await asyncio.to_thread(apply_org, self.store, s.org)
            log.info("organisation %s applied: %s", s.org, summary)
        await asyncio.to_thread(self.reload_credentials)

        self.snapshot = open_snapshot(s.location.url, s.location.snapshot_path)
        loaded = self.bindings.load(await asyncio.to_thread(self.snapshot.read, time.time()), time.time())
        log.info("restored %d bindings from %s", loaded, s.location.url)

        self.directory = DirectoryHolder(self.store, calling_plan_trunk=s.carrier.calling_plan_trunk)
        await asyncio.to_thread(self.directory.rebuild_now)
        authenticator = DigestAuthenticator(s.auth.secret_bytes(), nonce_ttl=s.auth.nonce_ttl,
                                            algorithms=tuple(s.auth.algorithms))
        transactions = TransactionLayer()
        self.local_address = LocalAddress(s.sip.host, {"UDP": s.sip.port, "TCP": s.sip.port,
                                                       "TLS": s.sip.tls_port}, s.sip.advertise)
        media_factory = PassthroughMedia
        relay_host, relay_advertise = relay_binding(s)
        ivr_min, ivr_max = ivr_ports(s)
        if s.rtp.relay:
            self.relay = MediaRelay(relay_host, s.rtp.port_min, ivr_min - 1,
                                    advertise=relay_advertise, on_exit=self._relay_died)
            await self.relay.start()
            self.relay_pool = RelayPool(self.relay)
            await self.relay_pool.start()
            pool = self.relay_pool
            media_factory = lambda call_id: RelayedMedia(pool, call_id)  # noqa: E731
        self.call_records = CallRecordWriter(self.store, lambda: self.directory.current)
        self.b2bua = B2BUA(
            transactions=transactions, bindings=self.bindings,
            identify=lambda *args: self._identify(*args),
            router=self._route, local=self.local_address, media_factory=media_factory,
            records=self.call_records, no_answer_timeout=s.calls.no_answer_timeout,
            emergency_notify=self._emergency_notify,
        )
        await self._start_attendants(relay_host, relay_advertise, ivr_min, ivr_max)
        self.endpoint = Endpoint(
            registrar=Registrar(self.bindings, RegistrarPolicy(
                min_expires=s.registrar.min_expires, max_expires=s.registrar.max_expires,
                default_expires=s.registrar.default_expires)),
            authenticator=authenticator,
            guard=SourceGuard(rate=s.security.rate_limit, burst=s.security.rate_burst,
                              ban_failures=s.security.ban_failures, ban_window=s.security.ban_window,
                              ban_duration=s.security.ban_duration),
            credentials=self.credentials.get,
            realm=lambda _req: self.realm,
            transactions=transactions,
            auth_required=s.auth.required,
            handler=self.b2bua,
        )
        self._identify = CallerIdentifier(
            authenticator=authenticator, credentials=self.credentials.get, realm=lambda _req: self.realm,
            bindings=self.bindings,
            trunk_for_source=lambda ip, port: self.directory.current.trunk_for_source(ip, port),
            on_auth_failed=self.endpoint._auth_failed, auth_required=s.auth.required)
        ssl_ctx = None
        if s.sip.tls_port:
            state_dir = Path(s.location.snapshot_path).parent
            ssl_ctx = await asyncio.to_thread(server_context, s.sip.tls_cert, s.sip.tls_key, state_dir)
        self.sip = SipServer(self.endpoint, s.sip.host, s.sip.port, s.sip.tls_port if ssl_ctx else -1,
                             ssl_ctx, s.sip.max_message_size, s.sip.tcp_idle_timeout)
        await self.sip.start()
        self.local_address.ports.update({"UDP": self.sip.port, "TCP": self.sip.port,
                                         "TLS": self.sip.tls_port})
        self.call_records.start()

        app = build_web_app(self)
        from provisioning.api.framework import CONTEXT_KEY

        self.api_context = app[CONTEXT_KEY]
        self._web_runner = web.AppRunner(app, access_log=None)
        await self._web_runner.setup()
        site = web.TCPSite(self._web_runner, s.api.host, s.api.port)
        await site.start()
        log.info("API listening on %s:%d", s.api.host, s.api.port)
        self._tasks.append(asyncio.create_task(self._persist_loop()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        if self.sip is not None:
            await self.sip.stop()
        if self.call_records is not None:
            await self.call_records.stop()
        if self.relay_pool is not None:
            await self.relay_pool.stop()
        if self.relay is not None:
            await self.relay.stop()
        if getattr(self, "ivr_media", None) is not None:
            await self.ivr_media.stop()
        if self._web_runner is not None:
            await self._web_runner.cleanup()
        await self.flush()
        if self.store is not None:
            self.store.close()
        log.info("stopped")

    # -- state ---------------------------------------------------------------------------------
    def reload_credentials(self) -> None:
        """Rebuild the username -> HA1 map from the store (called after every change)."""
        creds = self.store.sip_credentials()
        fresh = {c.username.lower(): DigestCredentials(c.username, c.realm, c.ha1) for c in creds}
        realms = {c.realm for c in creds}
        # One organisation per deployment today; its realm is the one challenges carry.
        self.realm = sorted(realms)[0] if realms else DEFAULT_REALM
        self.credentials.clear()
        self.credentials.update(fresh)
        log.info("%d SIP credentials loaded (realm %s)", len(fresh), self.realm)

    async def _start_attendants(self, host: str, advertise: str, port_min: int, port_max: int) -> None:
        """The IVR: attendants from the store, a media worker process, the per-call menus."""
        from ivr.calls import AttendantCalls
        from ivr.media import IvrMedia
        from ivr.prompts import PromptLibrary

        from .attendants import AttendantSupport

        self.attendant_support = AttendantSupport(self.store, lambda: self.directory.current,
                                                  await asyncio.to_thread(PromptLibrary))
        await asyncio.to_thread(self.attendant_support.reload)
        self.ivr_media = IvrMedia(host, port_min, port_max, advertise,
                                  on_event=lambda event: self.attendant_calls.on_media_event(event))
        await self.ivr_media.start()
        self.attendant_calls = AttendantCalls(
            b2bua=self.b2bua, media=self.ivr_media, send=self._send_sip,
            attendant=self.attendant_support.attendant, menu_directory=self.attendant_support.menu_directory,
            transfer_route=self.attendant_support.transfer_route, clip=self.attendant_support.clip,
            clock=time.time, transfer_timeout=self.settings.calls.no_answer_timeout)
        self.b2bua.auto_attendant = self.attendant_calls
        self.b2bua.application_timers = self.attendant_calls

    def _send_sip(self, sends) -> None:
        """What the IVR's call side has the B2BUA send outside a SIP event (a digit, a timer)."""
        if sends and self.sip is not None:
            self.sip.send(sends)
        if self.sip is not None:
            self.sip.rearm()

    def _route(self, dialled: str, caller, now: float):
        from routing.resolve import resolve

        return resolve(dialled, caller, self.directory.current, datetime.fromtimestamp(now, UTC))

    def _emergency_notify(self, route, call) -> None:
        """Tell the location's contact about an emergency call, by mail, off the call path."""
        if not route.notify_email or getattr(self, "api_context", None) is None:
            return
        location = self.directory.current.location(route.location_id)
        caller = route.caller_name or call.caller.get("device") or "unknown caller"
        esa = route.esa or {}
        address = ", ".join(str(esa[k]) for k in ("address1", "address2", "city", "state", "postalCode", "country")
                            if esa.get(k))
        body = (f"{caller} called {route.service_number} at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC"
                f"{f' from location {location.name}' if location else ''}.\n"
                f"Callback number: {route.callback_number or 'none'}\n"
                f"Emergency service address sent with the call: {address or 'none on record'}\n")
        org_id = location.org_id if location else None

        def send() -> None:
            from provisioning.service import system_actor

            actor = system_actor("emergency-call", org_id or "")
            with self.api_context.unit_of_work(actor, org_id=org_id) as uow:
                uow.mail(route.notify_email, f"Emergency call from {caller}", body)

        task = asyncio.get_running_loop().create_task(asyncio.to_thread(send))
        self._tasks.append(task)
        task.add_done_callback(lambda t: (self._tasks.remove(t) if t in self._tasks else None,
                                          t.cancelled() or t.exception() is None
                                          or log.error("emergency notification failed: %s", t.exception())))

    def _relay_died(self, reason: str) -> None:
        # Calls in progress lose their media; new calls get 503 until the operator restarts.
        log.error("media relay process died: %s", reason)

    def _on_store_events(self, events) -> None:
        if self.directory is None:
            return  # still starting: the first directory is built from the store anyway
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a commit made outside the event loop (a worker thread)
            loop = self._loop
            loop.call_soon_threadsafe(lambda: loop.create_task(self.store_changed(events)))
            return
        task = loop.create_task(self.store_changed(events))
        self._tasks.append(task)
        task.add_done_callback(lambda t: self._tasks.remove(t) if t in self._tasks else None)

    async def store_changed(self, _events=None) -> None:
        """A committed change in the store: credentials and the routing directory follow."""
        await asyncio.to_thread(self.reload_credentials)
        self.directory.changed()
        if getattr(self, "attendant_support", None) is not None:
            await asyncio.to_thread(self.attendant_support.reload)

    async def flush(self) -> None:
        changes = self.bindings.take_dirty()
        if changes and self.snapshot is not None:
            try:
                await asyncio.to_thread(self.snapshot.write, changes)
            except Exception:
                # Put them back: the next round tries again rather than losing them.
                self.bindings.mark_dirty(changes)
                log.exception("could not persist %d bindings", len(changes))

    async def _persist_loop(self) -> None:
        interval = self.settings.location.snapshot_interval
        last_prune = time.time()
        while True:
            await asyncio.sleep(interval)
            now = time.time()
            if now - last_prune >= PRUNE_EVERY:
                self.bindings.prune(now)
                last_prune = now
            await self.flush()


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    runtime = Runtime(settings)
    await runtime.start()
    tune_garbage_collector()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    print(f"callrouter ready: SIP {settings.sip.host}:{runtime.sip.port} (UDP/TCP)"
          f"{f', TLS {runtime.sip.tls_port}' if runtime.sip.ssl_context else ''}, "
          f"API http://{settings.api.host}:{settings.api.port}", flush=True)
    await stop.wait()
    await runtime.stop()


def ivr_ports(s: Settings) -> tuple[int, int]:
    """The auto attendants' media worker takes the top quarter of the RTP range (an even
    start), the relay the rest."""
    span = s.rtp.port_max + 2 - s.rtp.port_min
    start = s.rtp.port_max + 2 - max(4, (span // 4) & ~1)
    return start, s.rtp.port_max + 1


def relay_binding(s: Settings) -> tuple[str, str]:
    """(address the relay binds, address it advertises in SDP)."""
    if s.sip.host not in ("0.0.0.0", "::"):
        return s.sip.host, s.sip.advertise or s.sip.host
    advertise = s.sip.advertise or LocalAddress._route_to("192.0.2.1")
    return s.sip.host, advertise


def tune_garbage_collector() -> None:
    """Every REGISTER allocates a few dozen objects and a transaction lives 32 s, so with
    the default thresholds the cyclic collector walks hundreds of thousands of live objects
    many times a second (it cost a third of registrar throughput). Objects that exist at
    start-up are frozen out of collection, and collections run ~100x less often; the
    runtime creates few reference cycles, so memory stays bounded."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def run(settings: Settings) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(settings))
