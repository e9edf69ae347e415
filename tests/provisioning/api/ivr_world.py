"""An in-process API on a real store for the auto-attendant, schedule and announcement tests.

Two organisations: Acme (Austin and Boston, numbers, two people) and Other (to prove one
organisation never sees or touches the other's). The audio converter is the real one
(ivr.prompts.convert_upload, ffmpeg behind it), as the wiring installs it.
"""

from __future__ import annotations

import io
import secrets
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer

from ivr.prompts import convert_upload
from provisioning.api.app import create_api_app
from provisioning.api.framework import ApiContext, hash_secret
from provisioning.events import ChangeEvent, EventBus
from provisioning.store import Location, Number, Organization, Person, PstnType, Store, Subscription
from provisioning.tables_access import ApiToken

ADDRESS = {"address1": "100 Congress Ave", "city": "Austin", "state": "TX", "postalCode": "78701", "country": "US"}
ROLES = ("OWNER", "FULL_ADMIN", "READ_ONLY")

AUSTIN_MAIN, AUSTIN_ALICE, AUSTIN_FREE, AUSTIN_SPARE = "+15125550100", "+15125550101", "+15125550102", "+15125550103"
BOSTON_MAIN = "+16175550100"


@dataclass
class Org:
    id: str
    tokens: dict[str, str]
    locations: dict[str, str] = field(default_factory=dict)
    people: dict[str, str] = field(default_factory=dict)


@dataclass
class IvrWorld:
    client: TestClient
    ctx: ApiContext
    store: Store
    events: list[ChangeEvent]
    org: Org
    other: Org

    async def call(self, method: str, path: str, *, role: str = "OWNER", org: Org | None = None,
                   expect: int | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {(org or self.org).tokens[role]}", **kwargs.pop("headers", {})}
        response = await self.client.request(method, path, headers=headers, **kwargs)
        if response.content_type.endswith("json"):
            body = await response.json()
        elif response.content_type.startswith("audio/"):
            body = await response.read()
        else:
            body = await response.text()
        if expect is not None:
            assert response.status == expect, f"{method} {path}: {response.status} {body}"
        return body

    async def problem(self, method: str, path: str, status: int, rule: str, field: str | None = None,
                      **kwargs: Any) -> dict[str, Any]:
        role, org = kwargs.pop("role", "OWNER"), kwargs.pop("org", None)
        response = await self.client.request(method, path, headers={
            "Authorization": f"Bearer {(org or self.org).tokens[role]}", **kwargs.pop("headers", {})}, **kwargs)
        body = await response.json()
        assert response.status == status, body
        assert response.content_type == "application/problem+json"
        assert body["rule"] == rule, body
        if field is not None:
            assert body.get("field") == field, body
        return body

    def entity_events(self, entity: str) -> list[ChangeEvent]:
        return [e for e in self.events if e.entity == entity]

    async def upload(self, data: bytes, filename: str, expect: int = 201, **parts: str) -> dict[str, Any]:
        form = FormData()
        form.add_field("file", data, filename=filename, content_type="application/octet-stream")
        for name, value in parts.items():
            form.add_field(name, value)
        return await self.call("POST", "/v1/announcements", data=form, expect=expect)


def add_org(store: Store, name: str, country: str = "US") -> Org:
    with store.session() as s:
        row = Organization(name=name, country=country, subscription=Subscription.PAID, sip_realm=name.lower())
        s.add(row)
        s.flush()
        tokens = {}
        for role in ROLES:
            secret = secrets.token_urlsafe(32)
            s.add(ApiToken(org_id=row.id, role=role, name=f"{role.lower()}@{name.lower()}.example",
                           secret_hash=hash_secret(secret)))
            tokens[role] = secret
        return Org(row.id, tokens)


def add_location(store: Store, org: Org, name: str, numbers: list[str], zone: str = "America/Chicago") -> str:
    with store.session() as s:
        loc = Location(org_id=org.id, name=name, country="US", time_zone=zone, address=ADDRESS,
                       emergency_address=ADDRESS, pstn_type=PstnType.CALLING_PLAN)
        s.add(loc)
        s.flush()
        s.add_all(Number(e164=n, location_id=loc.id) for n in numbers)
        org.locations[name] = loc.id
        return loc.id


def add_person(store: Store, org: Org, location: str, email: str, first: str, last: str,
               extension: str | None = None, number: str | None = None) -> str:
    with store.session() as s:
        person = Person(org_id=org.id, location_id=org.locations[location], email=email, first_name=first,
                        last_name=last, extension=extension, phone_number=number)
        s.add(person)
        s.flush()
        if number:
            s.get(Number, number).owner_id = person.id
        org.people[email] = person.id
        return person.id


def tone_wav(seconds: float = 1.0, rate: int = 44100, channels: int = 2) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    tone = np.round(8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.repeat(tone, channels).tobytes())
    return buffer.getvalue()


@pytest.fixture
async def ivr_world(store_url: str) -> AsyncIterator[IvrWorld]:
    store = Store.open(store_url)
    events: list[ChangeEvent] = []
    bus = EventBus()
    bus.subscribe(events.extend)
    ctx = ApiContext(store, events=bus, audio_converter=convert_upload)
    client = TestClient(TestServer(create_api_app(ctx)))
    await client.start_server()
    org = add_org(store, "Acme")
    add_location(store, org, "Austin", [AUSTIN_MAIN, AUSTIN_ALICE, AUSTIN_FREE, AUSTIN_SPARE])
    add_location(store, org, "Boston", [BOSTON_MAIN], zone="America/New_York")
    add_person(store, org, "Austin", "alice@acme.example", "Alice", "Adams", "1001", AUSTIN_ALICE)
    add_person(store, org, "Boston", "bob@acme.example", "Bob", "Brown", "2001")
    other = add_org(store, "Other")
    add_location(store, other, "Elsewhere", ["+13125550100"])
    try:
        yield IvrWorld(client, ctx, store, events, org, other)
    finally:
        await client.close()
        store.close()


def business_hours(name: str = "Office hours", location_id: str = "", **days: list[tuple[str, str]]) -> dict[str, Any]:
    hours = days or {d: [("09:00", "12:00"), ("13:00", "17:00")] for d in
                     ("monday", "tuesday", "wednesday", "thursday", "friday")}
    return {"name": name, "locationId": location_id, "type": "BUSINESS_HOURS",
            "hours": {d: [{"startTime": a, "endTime": b} for a, b in spans] for d, spans in hours.items()}}


def holiday_schedule(name: str = "Holidays", location_id: str = "", holidays: list | None = None) -> dict[str, Any]:
    return {"name": name, "locationId": location_id, "type": "HOLIDAYS", "holidays": holidays if holidays is not None else [
        {"country": "US", "subdivision": "CA"},
        {"name": "Company day", "month": 6, "day": 14},
        {"name": "Christmas Eve afternoon", "month": 12, "day": 24, "startTime": "12:00", "endTime": "24:00"},
    ]}
