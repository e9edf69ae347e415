"""Bindings persisted to Redis (location.url redis://): written in batches, read back at
start, expired ones left out; and a server restart with Redis keeps the registrations."""
from __future__ import annotations

import time

from sipcore.location import Binding, MemoryBindingStore, RedisSnapshot, open_snapshot


def test_redis_snapshot_round_trip(redis_url):
    now = time.time()  # Redis expires each AOR key with its last binding: real time
    store = MemoryBindingStore()
    store.replace("alice", [Binding("alice", "sip:alice@10.0.0.5", now + 60, "c1", 1, q=0.5),
                            Binding("alice", "sip:alice@10.0.0.6", now + 5, "c2", 1)])
    store.replace("bob", [Binding("bob", "sip:bob@10.0.0.7", now + 60, "c3", 1,
                                  received=("10.0.0.7", 5062))])
    snap = open_snapshot(redis_url, "/nonexistent/unused.db")
    assert isinstance(snap, RedisSnapshot)
    snap.write(store.take_dirty())

    later = RedisSnapshot(redis_url).read(now + 10)  # the 5 s binding has expired by then
    assert sorted((b.aor, b.contact) for b in later) == [("alice", "sip:alice@10.0.0.5"),
                                                        ("bob", "sip:bob@10.0.0.7")]
    assert next(b for b in later if b.aor == "bob").received == ("10.0.0.7", 5062)

    store.replace("alice", [])  # unregistered: the AOR's key goes
    snap.write(store.take_dirty())
    assert [b.aor for b in RedisSnapshot(redis_url).read(now)] == ["bob"]


def test_server_with_redis_keeps_bindings_across_restart(tmp_path, redis_url):
    from tests.interop.test_flood import register_once
    from tests.server import ServerProcess

    server = ServerProcess(tmp_path, settings={"location": {"url": redis_url}})
    server.start()
    try:
        assert register_once(server, "bob") == 200
        server.restart()
        assert server.metric("callrouter_registrations") == 1
        assert "restored 1 bindings from redis://" in server.log()
    finally:
        server.stop()
