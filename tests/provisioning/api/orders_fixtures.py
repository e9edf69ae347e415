"""An in-process API with the simulated carrier, a real SMTP server (aiosmtpd) and a real store.

The order and port tests need more than a token: organisations on each subscription, locations
on and off the calling plan, tokens for every role, the change events routing would receive and
the mail an administrator would get. ``OrdersWorld`` holds all of that; the ``orders_world``
fixture builds one per test on SQLite or PostgreSQL (``store_url``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import Message
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller

from provisioning.api.app import create_api_app
from provisioning.api.framework import ApiContext, hash_secret
from provisioning.carrier import DEFAULT_CONFIG, SimulatedCarrier
from provisioning.events import ChangeEvent, EventBus
from provisioning.mail import Mailer, SmtpConfig
from provisioning.store import Location, Organization, PstnType, Store, Subscription
from provisioning.tables_access import ApiToken
from tests.server import free_port

# A Monday with no US holiday near it: business-day arithmetic in the tests is easy to follow.
ANCHOR = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)
ADDRESS = {"address1": "100 Congress Ave", "city": "Austin", "state": "TX", "postalCode": "78701", "country": "US"}
ROLES = ("OWNER", "FULL_ADMIN", "PARTNER_ADMIN", "READ_ONLY")


class TickingClock:
    """The anchor date, with real seconds passing (so timestamps still order events)."""

    def __init__(self, anchor: datetime = ANCHOR) -> None:
        self.anchor = anchor
        self.started = time.monotonic()

    def __call__(self) -> datetime:
        return self.anchor + timedelta(seconds=time.monotonic() - self.started)


class MailSink:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(message)
        return "250 OK"


@dataclass
class Org:
    id: str
    tokens: dict[str, str]
    locations: dict[str, str] = field(default_factory=dict)  # name -> id


@dataclass
class OrdersWorld:
    client: TestClient
    ctx: ApiContext
    store: Store
    carrier: SimulatedCarrier
    mail: MailSink
    events: list[ChangeEvent]
    org: Org  # a PAID organisation with an Austin location on the calling plan

    async def call(self, method: str, path: str, *, role: str = "OWNER", org: Org | None = None,
                   expect: int | None = None, **kwargs: Any) -> Any:
        token = (org or self.org).tokens[role]
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        response = await self.client.request(method, path, headers=headers, **kwargs)
        body = await response.json() if response.content_type.endswith("json") else await response.text()
        if expect is not None:
            assert response.status == expect, f"{method} {path}: {response.status} {body}"
        return body

    async def problem(self, method: str, path: str, status: int, rule: str, field: str | None = None,
                      **kwargs: Any) -> dict[str, Any]:
        """Call, expecting an RFC 9457 problem naming ``rule`` (and ``field`` when given)."""
        response = await self.client.request(method, path, headers={
            "Authorization": f"Bearer {(kwargs.pop('org', None) or self.org).tokens[kwargs.pop('role', 'OWNER')]}"},
            **kwargs)
        body = await response.json()
        assert response.status == status, body
        assert response.content_type == "application/problem+json"
        assert body["rule"] == rule, body
        assert body["type"].endswith("/" + rule)
        if field is not None:
            assert body.get("field") == field, body
        return body

    async def advance(self, days: int = 1) -> dict[str, Any]:
        return await self.call("POST", "/v1/carrierSimulator/clock", json={"advanceBusinessDays": days}, expect=200)

    async def mail_to(self, address: str, subject_part: str, count: int = 1, timeout: float = 10.0) -> list[Message]:
        """Wait until ``count`` messages to ``address`` whose subject contains ``subject_part`` arrived."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.mail.messages if address in m["X-Envelope-To"] and subject_part in m["Subject"]]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)

    def number_events(self, e164: str) -> list[ChangeEvent]:
        return [e for e in self.events if e.entity == "number" and e.entity_id == e164]

    def add_org(self, name: str, subscription: Subscription, locations: dict[str, tuple[str, PstnType | None]]) -> Org:
        """An organisation with tokens for every role and locations {name: (country, pstn type)}."""
        with self.store.session() as s:
            row = Organization(name=name, country="US", subscription=subscription, sip_realm=name.lower())
            s.add(row)
            s.flush()
            tokens = {}
            for role in ROLES:
                secret = secrets.token_urlsafe(32)
                s.add(ApiToken(org_id=row.id, role=role, name=f"{role.lower()}@{name.lower()}.example",
                               secret_hash=hash_secret(secret)))
                tokens[role] = secret
            org = Org(row.id, tokens)
            for loc_name, (country, pstn) in locations.items():
                loc = Location(org_id=row.id, name=loc_name, country=country, time_zone="America/Chicago",
                               address={**ADDRESS, "country": country}, emergency_address={**ADDRESS, "country": country},
                               pstn_type=pstn, pstn_trunk=None if pstn in (None, PstnType.CALLING_PLAN) else "trunk-1",
                               contact={"name": "Site Contact", "email": f"contact@{name.lower()}.example"})
                s.add(loc)
                s.flush()
                org.locations[loc_name] = loc.id
        return org


async def _stop_mailer(mailer: Mailer) -> None:
    """Mailer.stop(), but robust to a swallowed cancellation.

    A cancel that lands while the sender is inside a send can be lost (on Python 3.11 an
    asyncio timeout inside the SMTP client can turn it into a send error), and stop() then waits
    for the sender's next poll; so cancel again until it is really gone.
    """
    task = mailer._task
    for _ in range(100):
        if task is None or task.done():
            break
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    mailer._task = None


@pytest.fixture
async def orders_world(store_url: str) -> AsyncIterator[OrdersWorld]:
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    store = Store.open(store_url)
    clock = TickingClock()
    events: list[ChangeEvent] = []
    bus = EventBus()
    bus.subscribe(events.extend)
    # Sending is woken by each commit; a short poll interval only adds chances for Python 3.11's
    # asyncio.wait_for to swallow the cancellation that stops the sender.
    mailer = Mailer(store, SmtpConfig(host="127.0.0.1", port=controller.port, sender="callrouter@test"), clock=clock)
    carrier = SimulatedCarrier.from_file(DEFAULT_CONFIG, clock)
    ctx = ApiContext(store, events=bus, mailer=mailer, clock=clock, carrier=carrier)
    client = TestClient(TestServer(create_api_app(ctx)))
    await client.start_server()
    mailer.start()
    world = OrdersWorld(client, ctx, store, carrier, sink, events, Org("", {}))
    world.org = world.add_org("Acme", Subscription.PAID, {
        "Austin": ("US", PstnType.CALLING_PLAN), "Berlin": ("DE", PstnType.CALLING_PLAN),
        "Paris": ("FR", PstnType.CALLING_PLAN), "Dallas": ("US", PstnType.LOCAL_GATEWAY),
        "Jakarta": ("ID", None)})
    try:
        yield world
    finally:
        await _stop_mailer(mailer)
        await client.close()
        store.close()
        controller.stop()
