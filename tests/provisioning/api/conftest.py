"""An in-process API on a real store (SQLite and PostgreSQL) with a real SMTP server (aiosmtpd).

``api`` gives an ``ApiHarness``: an aiohttp test client in front of ``create_api_app``, the
change events the bus delivered, the mail the SMTP server received, and helpers to activate the
owner and call the API with a token of any role.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller

from provisioning.api.activation import begin_activation
from provisioning.api.app import create_api_app
from provisioning.api.framework import ApiContext
from provisioning.events import ChangeEvent, EventBus
from provisioning.mail import Mailer, SmtpConfig
from provisioning.store import Store
from tests.server import free_port

OWNER_EMAIL = "owner@acme.example"
ADDRESS = {"address1": "100 Congress Ave", "city": "Austin", "state": "TX", "postalCode": "78701", "country": "US"}


class MailSink:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's name)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[MailSink, int]]:
    sink = MailSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


class Clock:
    """Real time plus an offset the test can move forward (lockouts, retries)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **kwargs: float) -> None:
        self.offset += timedelta(**kwargs)


def owner_settings(email: str = OWNER_EMAIL, organization: str = "Acme", country: str = "US") -> Any:
    return SimpleNamespace(owner=SimpleNamespace(email=email, organization=organization, country=country))


@dataclass
class ApiHarness:
    store: Store
    ctx: ApiContext
    client: TestClient
    mail: MailSink
    clock: Clock
    events: list[ChangeEvent] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # role -> bearer token

    async def request(self, method: str, path: str, *, json: Any = None, role: str | None = "OWNER",
                      token: str | None = None, headers: dict[str, str] | None = None, data: Any = None):
        headers = dict(headers or {})
        token = token if token is not None else (self.tokens.get(role) if role else None)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = await self.client.request(method, path, json=json, data=data, headers=headers)
        text = await response.text()
        body = None
        if text and response.content_type.endswith("json"):
            import json as _json

            body = _json.loads(text)
        return response, body

    async def call(self, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        response, body = await self.request(method, path, **kwargs)
        assert response.status == expect, f"{method} {path}: {response.status} {body}"
        return body

    async def problem(self, method: str, path: str, status: int, rule: str | None, field: str | None = None,
                      **kwargs: Any) -> dict:
        response, body = await self.request(method, path, **kwargs)
        assert response.status == status, f"{method} {path}: {response.status} {body}"
        assert response.content_type == "application/problem+json", response.content_type
        assert body["status"] == status and body["title"] and body["detail"]
        if rule is not None:
            assert body.get("rule") == rule, body
            assert body["type"] == f"https://callrouter.dev/problems/{rule}"
        if field is not None:
            assert body.get("field") == field, body
        return body

    async def wait_for_mail(self, to: str, count: int = 1, timeout: float = 10.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.mail.messages if m["To"] == to]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} mail(s) to {to} expected, got {len(found)}: "
                                     f"{[m['Subject'] for m in found]}")
            await asyncio.sleep(0.02)

    async def activate(self, email: str = OWNER_EMAIL) -> str:
        """Run activation as the owner would: read the code from the mailbox, post it."""
        assert await asyncio.to_thread(begin_activation, self.ctx)
        mail = (await self.wait_for_mail(email))[-1]
        code = re.search(r"\b(\d{6})\b", mail.get_payload()).group(1)
        body = await self.call("POST", "/v1/activation", json={"email": email, "code": code}, role=None, expect=201)
        self.tokens["OWNER"] = body["token"]
        return body["token"]

    async def make_tokens(self) -> None:
        """Owner-issued tokens for every other role."""
        for role in ("FULL_ADMIN", "PARTNER_ADMIN", "READ_ONLY"):
            body = await self.call("POST", "/v1/tokens", json={"name": f"{role.lower()}@acme.example", "role": role},
                                   expect=201)
            self.tokens[role] = body["token"]

    def events_for(self, entity: str, entity_id: str | None = None) -> list[ChangeEvent]:
        return [e for e in self.events if e.entity == entity and (entity_id is None or e.entity_id == entity_id)]


@pytest.fixture
async def api(store_url: str, smtp) -> AsyncIterator[ApiHarness]:
    sink, port = smtp
    clock = Clock()
    store = await asyncio.to_thread(Store.open, store_url)
    events = EventBus()
    mailer = Mailer(store, SmtpConfig("127.0.0.1", port, "callrouter@acme.example", 5.0), clock=clock,
                    poll_interval=0.5)
    ctx = ApiContext(store, events=events, mailer=mailer, clock=clock, settings=owner_settings())
    seen: list[ChangeEvent] = []
    events.subscribe(seen.extend)
    client = TestClient(TestServer(create_api_app(ctx)))
    await client.start_server()
    mailer.start()
    try:
        yield ApiHarness(store, ctx, client, sink, clock, seen)
    finally:
        await mailer.stop()
        await client.close()
        store.close()


@pytest.fixture
async def owner_api(api: ApiHarness) -> ApiHarness:
    """``api`` with the owner activated and a token for every role."""
    await api.activate()
    await api.make_tokens()
    return api
