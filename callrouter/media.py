"""The relay as the B2BUA core sees it: synchronous, never waiting.

`RelayPool` keeps a few relay sessions allocated ahead of need, so that an INVITE takes one
at once; addresses learnt from SDP and releases go down the control channel as tasks that
the core does not await (the channel keeps their order).
"""
from __future__ import annotations

import asyncio
import logging

from sipcore.calls import MediaError
from sipcore.relay import MediaRelay, RelayError, RelaySession

log = logging.getLogger("callrouter.media")


# Control requests in flight at once, allocations and the rest (updates, releases) each their
# own share, so that new calls never wait behind the bookkeeping of calls in progress. The
# control channel (an AF_UNIX SEQPACKET pair) queues only net.unix.max_dgram_qlen messages
# (10 by default); MediaRelay makes further senders wait in order.
IN_FLIGHT_ALLOCATIONS = 32
IN_FLIGHT_OTHERS = 32


class RelayPool:
    def __init__(self, relay: MediaRelay, spare: int = 64):
        self.relay = relay
        self.address = relay.advertise
        self.spare = spare
        self._allocation_slots = asyncio.Semaphore(IN_FLIGHT_ALLOCATIONS)
        self._other_slots = asyncio.Semaphore(IN_FLIGHT_OTHERS)
        self._ready: list[RelaySession] = []
        self._refilling: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self.active = 0

    async def start(self) -> None:
        await self._refill()

    async def stop(self) -> None:
        if self._refilling is not None:
            self._refilling.cancel()
        for task in list(self._tasks):
            try:
                await task
            except Exception:
                pass

    # -- RelayControl ------------------------------------------------------------------
    def open_session(self, call_id: str) -> tuple[str, dict[str, int]]:
        if not self._ready:
            self._kick()
            raise MediaError(503, "media relay has no free ports")
        session = self._ready.pop()
        self.active += 1
        self._kick()
        return session.id, {"a": session.leg_a.local_port, "b": session.leg_b.local_port}

    def set_remote(self, session_id, leg: str, remote: tuple[str, int] | None) -> None:
        self._spawn(self._ask(self.relay.update, session_id, leg, remote))

    def close_session(self, session_id) -> None:
        self.active -= 1
        self._spawn(self._ask(self.relay.release, session_id))

    # -- internals -------------------------------------------------------------------------
    async def _ask(self, request, *args):
        # A semaphore wakes waiters in order, so updates and releases still reach the relay in
        # the order they were made (an update before the release of the same session).
        slots = self._allocation_slots if request == self.relay.allocate else self._other_slots
        async with slots:
            return await request(*args)

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("relay command failed: %s", task.exception())

    def _kick(self) -> None:
        if len(self._ready) < self.spare and (self._refilling is None or self._refilling.done()):
            self._refilling = asyncio.get_running_loop().create_task(self._refill())

    async def _refill(self) -> None:
        # Everything missing is asked for at once (the control channel carries many requests
        # in flight): one round trip refills the pool after a burst of INVITEs, which one
        # request at a time could not keep up with.
        while len(self._ready) < self.spare:
            results = await asyncio.gather(*(self._ask(self.relay.allocate, "spare")
                                             for _ in range(self.spare - len(self._ready))),
                                           return_exceptions=True)
            self._ready.extend(r for r in results if isinstance(r, RelaySession))
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                if not isinstance(failures[0], RelayError):
                    raise failures[0]
                log.warning("cannot allocate relay ports ahead: %s", failures[0])
                return
