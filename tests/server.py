"""Run a real `callrouter serve` process for tests that talk to it over sockets.

The server gets its own free ports, a settings file and an organisation file in a
temporary folder, and is stopped (or killed, for crash tests) by the test.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
REALM = "acme-test"

# People of the test organisation whose credentials tests use by name.
NAMED_USERS = {
    "alice": ("alice-secret-1001", "1001"),
    "bob": ("bob-secret-1002", "1002"),
    "carol": ("carol-secret-1003", "1003"),
}


def bulk_password(n: int) -> str:
    return f"pw-u{n}"


def free_port(kind: str = "both") -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = tcp.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


def org_document(bulk_users: int = 0, *, extra_devices: dict[str, list[str]] | None = None,
                 phone_numbers: dict[str, str] | None = None, austin: dict | None = None,
                 locations: list[dict] | None = None, people: list[dict] | None = None) -> dict:
    """The test organisation. Options for call tests (all additive):
    extra_devices: named user -> more SIP usernames for that person (password "<name>-pw");
    phone_numbers: named user -> their number (must be one of Austin's numbers);
    austin: keys merged into the Austin location (numbers, mainNumber, pstn...);
    locations, people: more entries appended as given."""
    named = []
    for i, (name, (password, ext)) in enumerate(NAMED_USERS.items()):
        devices = [{"sipUsername": name, "password": password}]
        devices += [{"sipUsername": d, "password": f"{d}-pw"} for d in (extra_devices or {}).get(name, [])]
        person = {
            "email": f"{name}@acme.test", "firstName": name.capitalize(), "lastName": "Test",
            "location": "Austin", "extension": ext, "devices": devices,
        }
        if phone_numbers and name in phone_numbers:
            person["phoneNumber"] = phone_numbers[name]
        named.append(person)
    people, extra_people = named, people or []
    for n in range(1, bulk_users + 1):
        people.append({
            "email": f"u{n}@bulk.acme.test", "firstName": "User", "lastName": str(n),
            "location": "Austin", "extension": str(200000 + n),
            "devices": [{"sipUsername": f"u{n}", "password": bulk_password(n)}],
        })
    address = {"address1": "100 Congress Ave", "city": "Austin", "state": "TX",
               "postalCode": "78701", "country": "US"}
    austin_location = {"name": "Austin", "country": "US", "timeZone": "America/Chicago",
                       "address": address, "pstn": {"type": "LOCAL_GATEWAY", "trunk": "austin-gw"},
                       "numbers": []}
    austin_location.update(austin or {})
    return {
        "organization": {"name": "Acme Test", "country": "US", "subscription": "PAID",
                         "businessAccount": True, "sipRealm": REALM},
        "locations": [austin_location, *(locations or [])],
        "people": people + extra_people,
    }


# -- store preparation for call tests -------------------------------------------------------------
# The organisation file has no trunks, per-number emergency addresses, outside-dial digits or
# number states (yet); tests that need them write them into the store before the server starts
# (ServerProcess(prepare=...)), the way the API or a port's lifecycle would.

def add_trunk(store, name: str, host: str, port: int, transport: str = "UDP") -> str:
    from provisioning.store import Organization, new_id
    from provisioning.tables_access import Trunk

    with store.session() as session:
        org = session.query(Organization).one()
        trunk = Trunk(id=new_id(), org_id=org.id, name=name, host=host, port=port, transport=transport)
        session.add(trunk)
        return trunk.id


def add_api_token(store, secret: str, role: str = "FULL_ADMIN") -> None:
    """A bearer token for the API, as the owner would hand one out (POST /v1/tokens)."""
    import hashlib

    from provisioning.store import Organization, new_id
    from provisioning.tables_access import ApiToken

    with store.session() as session:
        org = session.query(Organization).one()
        session.add(ApiToken(id=new_id(), org_id=org.id, role=role, name=f"{role.lower()}@acme.test",
                             secret_hash=hashlib.sha256(secret.encode()).hexdigest()))


def update_location(store, name: str, **columns) -> None:
    from provisioning.store import Location

    with store.session() as session:
        row = session.query(Location).filter_by(name=name).one()
        for key, value in columns.items():
            setattr(row, key, value)


def update_number(store, e164: str, **columns) -> None:
    from provisioning.store import Number

    with store.session() as session:
        row = session.get(Number, e164)
        assert row is not None, f"{e164} is not in the store"
        for key, value in columns.items():
            setattr(row, key, value)


@dataclass
class ServerProcess:
    workdir: Path
    bulk_users: int = 0
    settings: dict = field(default_factory=dict)  # deep-merged over the defaults below
    sip_port: int = 0
    tls_port: int = 0
    api_port: int = 0
    proc: subprocess.Popen | None = None
    host: str = "127.0.0.1"
    realm: str = REALM
    org: dict | None = None        # the organisation document; org_document(bulk_users) if None
    # Called with an open Store after the organisation is applied and before the first start.
    # The server then does not re-apply the file at start (that would undo what prepare set,
    # such as a trunk on a location whose file entry has none).
    prepare: Callable[[Any], None] | None = None

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sip_port = free_port()
        self.tls_port = free_port()
        self.api_port = free_port()
        org_path = self.workdir / "org.yaml"
        org_path.write_text(yaml.safe_dump(self.org or org_document(self.bulk_users), sort_keys=False))
        self.org_path = org_path
        config = {
            "sip": {"host": "127.0.0.1", "port": self.sip_port, "tls_port": self.tls_port},
            # Each server its own slice of RTP ports, so servers running side by side (and
            # several test runs on one machine) never collide on a relay port.
            "rtp": {"port_min": (rtp_base := random.randrange(20000, 60000, 2000)), "port_max": rtp_base + 1998},
            "api": {"host": "127.0.0.1", "port": self.api_port},
            "store": {"url": f"sqlite:///{self.workdir / 'callrouter.db'}"},
            "location": {"url": "memory://", "snapshot_path": str(self.workdir / "bindings.db"),
                         "snapshot_interval": 0.5},
            "security": {"rate_limit": 100000, "rate_burst": 100000},
            "org": str(org_path),
            "log": {"level": "INFO"},
        }
        if self.prepare is not None:
            del config["org"]
        _merge(config, self.settings)
        self.config_path = self.workdir / "callrouter.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = self.workdir / "server.log"

    @property
    def store_url(self) -> str:
        return yaml.safe_load(self.config_path.read_text())["store"]["url"]

    def _prepare_store(self) -> None:
        from provisioning.orgfile import apply_org
        from provisioning.store import Store

        store = Store.open(self.store_url)
        try:
            apply_org(store, self.org_path)
            self.prepare(store)
        finally:
            store.close()
        self._prepared = True

    def start(self, timeout: float = 60.0) -> "ServerProcess":
        if self.prepare is not None and not getattr(self, "_prepared", False):
            self._prepare_store()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "callrouter", "serve", "--config", str(self.config_path)],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"callrouter exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"callrouter did not become healthy:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._log.close()
        return rc

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> "ServerProcess":
        self.stop()
        return self.start()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.api_port}/metrics", timeout=5) as r:
            return r.read().decode()

    def metric(self, name: str, labels: str = "") -> float:
        """One sample of the Prometheus text output, e.g. metric('callrouter_registrations')."""
        prefix = f"{name}{{{labels}}}" if labels else name
        for line in self.metrics().splitlines():
            if line.startswith(prefix + " "):
                return float(line.split()[-1])
        raise KeyError(prefix)


def _merge(base: dict, extra: dict) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
