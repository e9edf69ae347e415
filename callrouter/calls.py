"""Wiring for calls: the directory the router reads, the caller-facing addresses, and the
call records written behind.

Routing reads an immutable Directory; a change committed in the store publishes events,
and the holder rebuilds the directory off the event loop and swaps it in one assignment,
so a call never sees half a change and never waits for SQL.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from provisioning.directory_feed import load_directory_data
from provisioning.store import Store
from provisioning.tables_calls import CallRecordRow
from routing.directory import Directory
from routing.records import DirectoryData, TrunkRecord
from sipcore.calls import CallRecord

log = logging.getLogger("callrouter.calls")


def with_calling_plan_trunk(data: DirectoryData, address: str | None) -> DirectoryData:
    """Calling-plan locations have no trunk of their own: their calls go to the provider's
    interconnect (`carrier.calling_plan_trunk`), one trunk record per organisation."""
    if not address:
        return data
    host, _, port = address.rpartition(":")
    trunks = list(data.trunks)
    names: dict[str, str] = {}
    for org in data.organizations:
        name = "calling-plan"
        trunks.append(TrunkRecord(id=f"calling-plan:{org.id}", org_id=org.id, name=name,
                                  host=host.strip("[]"), port=int(port)))
        names[org.id] = name
    locations = [replace(loc, trunk_name=names.get(loc.org_id))
                 if loc.pstn_type == "CALLING_PLAN" and not loc.trunk_name else loc
                 for loc in data.locations]
    return replace(data, trunks=trunks, locations=locations)


class DirectoryHolder:
    """The current Directory, rebuilt from the store after every committed change."""

    def __init__(self, store: Store, on_rebuilt: Callable[[Directory], None] | None = None,
                 debounce: float = 0.05, calling_plan_trunk: str | None = None):
        self.calling_plan_trunk = calling_plan_trunk
        self.store = store
        self.current: Directory = Directory.build(DirectoryData((), (), (), (), (), (), ()))
        self.on_rebuilt = on_rebuilt
        self.debounce = debounce
        self.generation = 0
        self._pending: asyncio.Task | None = None
        self._dirty = False

    def rebuild_now(self) -> Directory:
        directory = self._build()
        self.current = directory
        self.generation += 1
        gc.freeze()
        if self.on_rebuilt is not None:
            self.on_rebuilt(directory)
        return directory

    def _build(self) -> Directory:
        data = with_calling_plan_trunk(load_directory_data(self.store), self.calling_plan_trunk)
        directory = Directory.build(data)
        for problem in directory.problems:
            log.warning("routing directory: %s", problem)
        return directory

    def changed(self, _events: Any = None) -> None:
        """Called (on the event loop) when the store committed a change."""
        self._dirty = True
        if self._pending is None or self._pending.done():
            self._pending = asyncio.get_running_loop().create_task(self._rebuild_soon())

    async def _rebuild_soon(self) -> None:
        # A burst of commits (an import, an order of 100 numbers) costs one rebuild.
        while self._dirty:
            await asyncio.sleep(self.debounce)
            self._dirty = False
            try:
                directory = await asyncio.to_thread(self._build)
            except Exception:
                log.exception("rebuilding the routing directory failed; keeping the previous one")
                continue
            self.current = directory
            self.generation += 1
            # A directory holds millions of objects and no cycles: keep the cyclic collector
            # from walking them (a full pass over a 1M-number directory stalled calls 0.2 s).
            # The one it replaces is freed by reference counting all the same.
            gc.freeze()
            if self.on_rebuilt is not None:
                self.on_rebuilt(directory)
            log.info("routing directory rebuilt (generation %d)", self.generation)

    async def idle(self) -> None:
        """Wait until no rebuild is pending (tests, and shutdown)."""
        while self._pending is not None and not self._pending.done():
            await asyncio.shield(self._pending)


class LocalAddress:
    """Our address as a peer should see it, per transport: the configured listen address,
    or when listening on all interfaces the one the kernel would use to reach that peer."""

    def __init__(self, host: str, ports: dict[str, int], advertise: str | None = None):
        self.host = host
        self.ports = ports
        self.advertise = advertise
        self._by_peer: dict[str, str] = {}

    def __call__(self, transport: str, dest: tuple[str, int]) -> tuple[str, int]:
        port = self.ports.get(transport, self.ports["UDP"])
        if self.advertise:
            return self.advertise, port
        if self.host not in ("0.0.0.0", "::", ""):
            return self.host, port
        ip = self._by_peer.get(dest[0])
        if ip is None:
            ip = self._route_to(dest[0])
            self._by_peer[dest[0]] = ip
        return ip, port

    @staticmethod
    def _route_to(peer: str) -> str:
        family = socket.AF_INET6 if ":" in peer else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            try:
                probe.connect((peer, 9))  # no packet is sent: connect() only picks the route
                return probe.getsockname()[0]
            except OSError:
                return "127.0.0.1"


class CallRecordWriter:
    """Call records go to the store in batches off the event loop; a failed batch is kept
    and retried, so a slow or briefly unreachable database loses no record."""

    def __init__(self, store: Store, directory: Callable[[], Directory], interval: float = 1.0):
        self.store = store
        self.directory = directory
        self.interval = interval
        self._queue: list[dict[str, Any]] = []
        self._task: asyncio.Task | None = None
        self.written = 0

    def __call__(self, record: CallRecord) -> None:
        self._queue.append(self._row(record))

    def _row(self, r: CallRecord) -> dict[str, Any]:
        directory = self.directory()
        caller_person = _person_of(directory, r.caller)
        callee_person = r.callee.get("personId")
        location = org = None
        for pid in (caller_person, callee_person):
            person = directory.person(pid) if pid else None
            if person is not None:
                location, org = person.location_id, person.org_id
                break
        if org is None:
            trunk = directory.trunk(r.caller.get("trunk") or r.callee.get("trunk") or "")
            org = trunk.org_id if trunk is not None else None
        return {
            "org_id": org, "call_id": r.call_id[:255], "direction": r.direction, "caller": dict(r.caller),
            "callee": dict(r.callee), "dialled": (r.dialled or "")[:64],
            "caller_person_id": caller_person, "callee_person_id": callee_person, "location_id": location,
            "start_time": _utc(r.start), "answer_time": _utc(r.answer) if r.answer else None,
            "end_time": _utc(r.end), "disposition": r.disposition, "status": r.status,
            "international": r.international, "emergency": r.emergency, "hangup_by": r.hangup_by,
        }

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self.flush()

    async def flush(self) -> None:
        if not self._queue:
            return
        batch, self._queue = self._queue, []
        try:
            await asyncio.to_thread(self._write, batch)
            self.written += len(batch)
        except Exception:
            log.exception("writing %d call records failed; will retry", len(batch))
            self._queue[:0] = batch

    def _write(self, batch: list[dict[str, Any]]) -> None:
        with self.store.session() as session:
            session.add_all(CallRecordRow(**row) for row in batch)


def _person_of(directory: Directory, party: dict[str, Any]) -> str | None:
    device = party.get("device")
    if device:
        record = directory.device(device)
        if record is not None:
            return record.person_id
    return None


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)

