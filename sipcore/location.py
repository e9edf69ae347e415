"""Binding store (usrloc): who is registered where.

The registrar works on an in-memory map so that a REGISTER never waits for a disk or a
network round trip. Durability is write-behind: changed addresses of record are marked
dirty and `flush()` (called every few seconds by the server shell, and at shutdown) writes
them in one batch to a SQLite snapshot or to Redis. After a crash at most one interval of
refreshes is lost, and phones refresh on their own well before their bindings expire.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Iterable


@dataclass(slots=True)
class Binding:
    aor: str                    # the registered user (device SIP username, lower-case)
    contact: str                # Contact URI as the phone sent it
    expires_at: float           # wall-clock seconds since the epoch
    call_id: str
    cseq: int
    q: float | None = None
    instance: str | None = None  # +sip.instance (RFC 5626), kept to recognise the device
    reg_id: int | None = None
    received: tuple[str, int] | None = None  # where the REGISTER came from (NAT traversal)
    transport: str = "UDP"
    user_agent: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)  # other Contact parameters

    def remaining(self, now: float) -> int:
        return max(0, int(self.expires_at - now + 0.5))

    def to_json(self) -> str:
        # A flat list in field order: dataclasses.asdict() deep-copies and cost 25 us a
        # binding, which the snapshot thread spent holding the GIL.
        return _dumps([getattr(self, name) for name in _FIELDS])

    @classmethod
    def from_json(cls, text: str | bytes) -> "Binding":
        data = json.loads(text)
        b = cls(**data) if isinstance(data, dict) else cls(*data)
        if b.received is not None:
            b.received = tuple(b.received)
        return b


_FIELDS = [f.name for f in fields(Binding)]
_dumps = json.JSONEncoder(separators=(",", ":")).encode


class MemoryBindingStore:
    """Bindings in a dict, with dirty tracking for write-behind persistence."""

    def __init__(self) -> None:
        self._by_aor: dict[str, list[Binding]] = {}
        self._dirty: set[str] = set()
        self._count = 0

    def lookup(self, aor: str, now: float) -> list[Binding]:
        bindings = self._by_aor.get(aor)
        if not bindings:
            return []
        live = [b for b in bindings if b.expires_at > now]
        if len(live) != len(bindings):
            self.replace(aor, live)
        return live

    def replace(self, aor: str, bindings: list[Binding]) -> None:
        old = self._by_aor.get(aor)
        self._count += len(bindings) - (len(old) if old else 0)
        if bindings:
            self._by_aor[aor] = bindings
        else:
            self._by_aor.pop(aor, None)
        self._dirty.add(aor)

    def prune(self, now: float) -> int:
        """Drop expired bindings everywhere; returns how many went."""
        gone = 0
        for aor in list(self._by_aor):
            bindings = self._by_aor[aor]
            live = [b for b in bindings if b.expires_at > now]
            if len(live) != len(bindings):
                gone += len(bindings) - len(live)
                self.replace(aor, live)
        return gone

    def __len__(self) -> int:
        return self._count

    def aors(self) -> Iterable[str]:
        return self._by_aor.keys()

    def take_dirty(self) -> dict[str, list[Binding]]:
        """The changed AORs with their current bindings (empty list = deleted); clears the mark."""
        dirty = {aor: list(self._by_aor.get(aor, ())) for aor in self._dirty}
        self._dirty.clear()
        return dirty

    def mark_dirty(self, aors: Iterable[str]) -> None:
        """Mark AORs for the next flush again (after a failed write)."""
        self._dirty.update(aors)

    def load(self, bindings: Iterable[Binding], now: float) -> int:
        loaded = 0
        for b in bindings:
            if b.expires_at > now:
                self._by_aor.setdefault(b.aor, []).append(b)
                self._count += 1
                loaded += 1
        return loaded


class SQLiteSnapshot:
    """Persists bindings to a SQLite file, one row per binding, written in batches."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("CREATE TABLE IF NOT EXISTS bindings (aor TEXT NOT NULL, expires_at REAL NOT NULL,"
                       " data TEXT NOT NULL)")
            db.execute("CREATE INDEX IF NOT EXISTS bindings_aor ON bindings (aor)")

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def write(self, changes: dict[str, list[Binding]]) -> None:
        if not changes:
            return
        db = self._connect()
        try:
            with db:
                db.executemany("DELETE FROM bindings WHERE aor = ?", [(aor,) for aor in changes])
                db.executemany("INSERT INTO bindings (aor, expires_at, data) VALUES (?, ?, ?)",
                               [(b.aor, b.expires_at, b.to_json()) for bs in changes.values() for b in bs])
        finally:
            db.close()

    def read(self, now: float) -> list[Binding]:
        db = self._connect()
        try:
            with db:
                db.execute("DELETE FROM bindings WHERE expires_at <= ?", (now,))
            rows = db.execute("SELECT data FROM bindings").fetchall()
        finally:
            db.close()
        return [Binding.from_json(r[0]) for r in rows]


class RedisSnapshot:
    """Persists bindings to Redis: one hash per AOR, expiring with its longest binding, so
    that several callrouter nodes can share registrations (see docs/scaling.md)."""

    PREFIX = "callrouter:loc:"

    def __init__(self, url: str):
        import redis  # imported here: only deployments that scale out need it

        self._redis = redis.Redis.from_url(url, socket_timeout=5)

    def write(self, changes: dict[str, list[Binding]]) -> None:
        if not changes:
            return
        pipe = self._redis.pipeline(transaction=False)
        for aor, bindings in changes.items():
            key = self.PREFIX + aor
            pipe.delete(key)
            if bindings:
                pipe.hset(key, mapping={b.contact: b.to_json() for b in bindings})
                pipe.expireat(key, int(max(b.expires_at for b in bindings)) + 1)
        pipe.execute()

    def read(self, now: float) -> list[Binding]:
        out: list[Binding] = []
        for key in self._redis.scan_iter(match=self.PREFIX + "*", count=1000):
            for raw in self._redis.hvals(key):
                b = Binding.from_json(raw)
                if b.expires_at > now:
                    out.append(b)
        return out

    def ping(self) -> None:
        self._redis.ping()


def open_snapshot(location_url: str, snapshot_path: str | Path) -> SQLiteSnapshot | RedisSnapshot:
    if location_url.startswith("redis://") or location_url.startswith("rediss://"):
        return RedisSnapshot(location_url)
    if location_url.startswith("memory://"):
        return SQLiteSnapshot(snapshot_path)
    raise ValueError(f"unsupported location.url {location_url!r} (memory:// or redis://)")
