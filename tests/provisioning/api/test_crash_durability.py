"""A write burst against a real server process, killed with SIGKILL in the middle of it.

After a restart every acknowledged write is there and whole (a person with their device, their
number pointing back at them, their audit entry and their invitation), nothing is half-written
(every person in the store, acknowledged or not, is whole), and retrying the unacknowledged
requests with their Idempotency-Keys creates nothing twice.
"""

from __future__ import annotations

import asyncio
import secrets
import signal

import aiohttp
import pytest

from tests.server import ServerProcess, add_api_token

pytestmark = pytest.mark.timeout(180)

REQUESTS = 120
KILL_AFTER = 40  # acknowledged writes before the kill
CONCURRENCY = 8


def _person(i: int, location_id: str) -> dict:
    return {"email": f"burst{i}@acme.test", "firstName": "Burst", "lastName": str(i), "locationId": location_id,
            "extension": str(5000 + i), "phoneNumber": f"+1512555{2000 + i:04d}",
            "devices": [{"sipUsername": f"burst{i}", "password": f"burst-password-{i}"}]}


async def _burst(base: str, auth: dict, location_id: str, server: ServerProcess) -> dict[int, dict]:
    acked: dict[int, dict] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(REQUESTS):
        queue.put_nowait(i)
    killed = asyncio.Event()

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty() and not killed.is_set():
            i = queue.get_nowait()
            try:
                async with session.post(f"{base}/v1/people", json=_person(i, location_id),
                                        headers={**auth, "Idempotency-Key": f"burst-{i}"}) as response:
                    body = await response.json()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                continue  # the server died under this request: not acknowledged
            assert response.status == 201, body
            acked[i] = body
            if len(acked) == KILL_AFTER and not killed.is_set():
                killed.set()
                server.proc.send_signal(signal.SIGKILL)  # others are in flight right now

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
    assert killed.is_set(), "the burst ended before the kill"
    return acked


async def _check_whole(session: aiohttp.ClientSession, base: str, auth: dict, person: dict) -> None:
    async with session.get(f"{base}/v1/people/{person['id']}", headers=auth) as r:
        assert r.status == 200, await r.text()
        stored = await r.json()
    assert stored == person
    async with session.get(f"{base}/v1/numbers/{person['phoneNumber']}", headers=auth) as r:
        assert (await r.json())["ownerId"] == person["id"]
    async with session.get(f"{base}/v1/auditEvents?targetType=person&targetId={person['id']}", headers=auth) as r:
        assert [e["action"] for e in (await r.json())["items"]] == ["person.created"]
    async with session.get(f"{base}/v1/outbox?to={person['email']}", headers=auth) as r:
        assert (await r.json())["total"] == 1


async def test_sigkill_mid_burst_keeps_every_acknowledged_write_whole(tmp_path, store_url):
    owner = "cr_" + secrets.token_urlsafe(24)
    server = ServerProcess(tmp_path / "server", prepare=lambda store: add_api_token(store, owner, "OWNER"),
                           settings={"store": {"url": store_url}, "log": {"level": "WARNING"}})
    server.start()
    base, auth = f"http://127.0.0.1:{server.api_port}", {"Authorization": f"Bearer {owner}"}
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/v1/locations?name=Austin", headers=auth) as r:
                location_id = (await r.json())["items"][0]["id"]
            numbers = [f"+1512555{2000 + i:04d}" for i in range(REQUESTS)]
            for start in range(0, REQUESTS, 100):
                async with session.post(f"{base}/v1/locations/{location_id}/numbers", headers=auth,
                                        json={"phoneNumbers": numbers[start:start + 100]}) as r:
                    assert r.status == 201, await r.text()

        acked = await _burst(base, auth, location_id, server)
        assert server.proc.wait(10) == -signal.SIGKILL
        server.start()

        async with aiohttp.ClientSession() as session:
            for person in acked.values():
                await _check_whole(session, base, auth, person)

            # Whatever else was stored when the process died is whole too.
            async with session.get(f"{base}/v1/people?max=1000", headers=auth) as r:
                stored = {p["email"]: p for p in (await r.json())["items"] if p["email"].startswith("burst")}
            assert len(stored) >= len(acked)
            for person in stored.values():
                await _check_whole(session, base, auth, person)

            # Retrying the unacknowledged requests with their keys creates each person exactly once.
            for i in sorted(set(range(REQUESTS)) - set(acked)):
                async with session.post(f"{base}/v1/people", json=_person(i, location_id),
                                        headers={**auth, "Idempotency-Key": f"burst-{i}"}) as r:
                    body = await r.json()
                    if r.status == 409:
                        # Committed, but the process died before recording the response.
                        assert body["rule"] == "idempotency-key-in-progress" and f"burst{i}@acme.test" in stored
                    else:
                        assert r.status == 201, body
                        assert (r.headers.get("Idempotent-Replayed") == "true") == (f"burst{i}@acme.test" in stored)
            async with session.get(f"{base}/v1/people?max=1000", headers=auth) as r:
                emails = [p["email"] for p in (await r.json())["items"] if p["email"].startswith("burst")]
            assert sorted(emails) == sorted(f"burst{i}@acme.test" for i in range(REQUESTS))
            async with session.get(f"{base}/v1/numbers?available=true", headers=auth) as r:
                assert (await r.json())["total"] == 0
    finally:
        server.stop()


ORDERS = 60
KILL_AFTER_ORDERS = 20


async def test_sigkill_mid_order_burst_leaves_no_order_half_written(tmp_path, store_url):
    """Number orders reserve at the carrier and store the order and its numbers in one
    transaction: after a SIGKILL every acknowledged order is there with all its numbers, and
    every order in the store (acknowledged or not) has all its numbers and no number is left
    without its order."""
    from tests.server import ROOT, org_document

    owner = "cr_" + secrets.token_urlsafe(24)
    server = ServerProcess(tmp_path / "server", prepare=lambda store: add_api_token(store, owner, "OWNER"),
                           org=org_document(austin={"pstn": {"type": "CALLING_PLAN"}}),
                           settings={"store": {"url": store_url}, "log": {"level": "WARNING"},
                                     "carrier": {"simulator": str(ROOT / "config" / "carrier-sim.yaml")}})
    server.start()
    base, auth = f"http://127.0.0.1:{server.api_port}", {"Authorization": f"Bearer {owner}"}
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/v1/locations?name=Austin", headers=auth) as r:
                location_id = (await r.json())["items"][0]["id"]
            async with session.get(f"{base}/v1/numbers?locationId={location_id}&max=1000", headers=auth) as r:
                before = {n["phoneNumber"] for n in (await r.json())["items"]}

        acked: dict[int, dict] = {}
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(ORDERS):
            queue.put_nowait(i)
        killed = asyncio.Event()

        async def worker(session: aiohttp.ClientSession) -> None:
            while not queue.empty() and not killed.is_set():
                i = queue.get_nowait()
                body = {"locationId": location_id, "kind": "SEARCH", "quantity": 2, "search": {"city": "Austin"}}
                try:
                    async with session.post(f"{base}/v1/numberOrders", json=body,
                                            headers={**auth, "Idempotency-Key": f"order-{i}"}) as response:
                        answer = await response.json()
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    continue
                assert response.status == 201, answer
                acked[i] = answer
                if len(acked) == KILL_AFTER_ORDERS and not killed.is_set():
                    killed.set()
                    server.proc.send_signal(signal.SIGKILL)

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
        assert killed.is_set(), "the burst ended before the kill"
        assert server.proc.wait(10) == -signal.SIGKILL
        server.start()

        async with aiohttp.ClientSession() as session:
            for order in acked.values():
                async with session.get(f"{base}/v1/numberOrders/{order['id']}", headers=auth) as r:
                    assert r.status == 200
                    assert (await r.json())["phoneNumbers"] == order["phoneNumbers"]
            async with session.get(f"{base}/v1/numberOrders?max=1000", headers=auth) as r:
                orders = (await r.json())["items"]
            assert len(orders) >= len(acked)
            ordered = [n for order in orders for n in order["phoneNumbers"]]
            assert all(len(order["phoneNumbers"]) == 2 for order in orders), orders
            assert len(ordered) == len(set(ordered))
            async with session.get(f"{base}/v1/numbers?locationId={location_id}&max=1000", headers=auth) as r:
                stored = {n["phoneNumber"]: n for n in (await r.json())["items"]}
            assert set(stored) - before == set(ordered)  # no number without its order, none missing
            assert all(stored[n]["state"] == "INACTIVE" for n in ordered)  # terms not accepted yet
    finally:
        server.stop()
