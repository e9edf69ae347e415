"""The framework's promises, seen from a client: problem+json for every failure, idempotency
keys, ETags and preconditions, pagination, the generation-checked cache, one transaction per
change with its events and mail only after the commit, and the OpenAPI document."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from provisioning.events import ChangeEvent
from provisioning.service import Services, system_actor
from provisioning.store import Location, Store
from provisioning.tables_access import AuditEvent, OutboxMessage
from tests.provisioning.api.conftest import ADDRESS, ApiHarness

LOCATION = {"name": "Austin", "timeZone": "America/Chicago", "address": ADDRESS}


async def test_failures_are_problem_documents(owner_api: ApiHarness):
    api = owner_api
    body = await api.problem("GET", "/v1/nowhere", 404, None)
    assert body["type"] == "https://callrouter.dev/problems/not-found" and body["instance"] == "/v1/nowhere"
    response, body = await api.request("PATCH", "/v1/locations")
    assert response.status == 405 and response.content_type == "application/problem+json"
    assert "GET" in response.headers["Allow"]
    await api.problem("POST", "/v1/locations", 400, "malformed-json", data=b'{"name": ',
                      headers={"Content-Type": "application/json"})
    await api.problem("POST", "/v1/locations", 415, "unsupported-media-type", data=b"name=x",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    body = await api.problem("POST", "/v1/locations", 422, "missing", "timeZone", json={"name": "x", "address": ADDRESS})
    assert {"field": "timeZone", "message": "Field required", "rule": "missing"} in body["errors"]
    await api.problem("POST", "/v1/locations", 422, "extra_forbidden", "colour", json={**LOCATION, "colour": "red"})
    body = await api.problem("POST", "/v1/locations", 422, "value_error", "timeZone",
                             json={**LOCATION, "timeZone": "Mars/Olympus"})
    assert "unknown IANA time zone" in body["detail"]
    await api.problem("POST", "/v1/locations", 422, "invalid-text", "name", json={**LOCATION, "name": "a\u0000b"})
    await api.problem("GET", "/v1/numbers?max=0", 422, "greater_than_equal", "query.max")
    await api.problem("GET", "/v1/numbers?state=GONE", 422, "enum", "query.state")
    await api.problem("GET", "/v1/locations/nope", 404, "not-found", "locationId")


async def test_idempotency_key_replays_and_refuses_reuse(owner_api: ApiHarness):
    api = owner_api
    key = {"Idempotency-Key": "create-austin"}
    first, body = await api.request("POST", "/v1/locations", json=LOCATION, headers=key)
    assert first.status == 201
    again, replay = await api.request("POST", "/v1/locations", json=LOCATION, headers=key)
    assert again.status == 201 and replay == body and again.headers["Idempotent-Replayed"] == "true"
    await api.problem("POST", "/v1/locations", 422, "idempotency-key-reused", "Idempotency-Key",
                      json={**LOCATION, "name": "Dallas"}, headers=key)
    with api.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Location)) == 1
    # Without a key the same body is a new request (and the name is taken: 409).
    await api.problem("POST", "/v1/locations", 409, "location-name-unique", "name", json=LOCATION)
    # Keys belong to a token: another administrator's identical key is theirs alone.
    other, _ = await api.request("POST", "/v1/locations", json={**LOCATION, "name": "Dallas"}, headers=key,
                                 role="FULL_ADMIN")
    assert other.status == 201 and "Idempotent-Replayed" not in other.headers


async def test_failed_request_keeps_no_key(owner_api: ApiHarness):
    api = owner_api
    key = {"Idempotency-Key": "retry-me"}
    await api.problem("POST", "/v1/locations", 422, "value_error", json={**LOCATION, "timeZone": "Nowhere"},
                      headers=key)
    response, _ = await api.request("POST", "/v1/locations", json=LOCATION, headers=key)
    assert response.status == 201  # nothing was applied the first time, so the key was free


async def test_etags_and_preconditions(owner_api: ApiHarness):
    api = owner_api
    created = await api.call("POST", "/v1/locations", json=LOCATION, expect=201)
    path = f"/v1/locations/{created['id']}"
    response, body = await api.request("GET", path)
    etag = response.headers["ETag"]
    assert body == created
    not_modified, _ = await api.request("GET", path, headers={"If-None-Match": etag})
    assert not_modified.status == 304 and not_modified.headers["ETag"] == etag

    changed = {**LOCATION, "name": "Austin HQ"}
    await api.problem("PUT", path, 412, "etag-mismatch", "If-Match", json=changed, headers={"If-Match": '"stale"'})
    assert (await api.call("GET", path))["name"] == "Austin"
    response, body = await api.request("PUT", path, json=changed, headers={"If-Match": etag})
    assert response.status == 200 and body["name"] == "Austin HQ"
    hq_etag = response.headers["ETag"]
    assert hq_etag != etag
    # The old ETag is stale now; without If-Match the write is unconditional.
    await api.problem("PUT", path, 412, "etag-mismatch", json=LOCATION, headers={"If-Match": etag})
    assert (await api.call("PUT", path, json=LOCATION))["name"] == "Austin"
    await api.problem("DELETE", path, 412, "etag-mismatch", headers={"If-Match": hq_etag})
    await api.call("DELETE", path, expect=204, headers={"If-Match": "*"})
    await api.problem("GET", path, 404, "not-found")


async def test_pagination(owner_api: ApiHarness):
    api = owner_api
    for i in range(5):
        await api.call("POST", "/v1/locations", json={**LOCATION, "name": f"Site {i}"}, expect=201)
    page = await api.call("GET", "/v1/locations?start=1&max=2")
    assert [loc["name"] for loc in page["items"]] == ["Site 1", "Site 2"]
    assert (page["start"], page["max"], page["total"]) == (1, 2, 5)
    assert (await api.call("GET", "/v1/locations?start=10"))["items"] == []


async def test_cache_follows_changes_made_by_another_process(owner_api: ApiHarness, store_url: str):
    api = owner_api
    created = await api.call("POST", "/v1/locations", json=LOCATION, expect=201)
    assert (await api.call("GET", "/v1/locations"))["total"] == 1
    # Another process (the CLI, a second instance) renames it through its own service layer.
    other = await asyncio.to_thread(Store.open, store_url)
    try:
        with Services(other).unit_of_work(system_actor("cli", created["id"])) as uow:
            row = uow.session.get(Location, created["id"])
            row.name = "Renamed elsewhere"
    finally:
        other.close()
    listed = await api.call("GET", "/v1/locations")
    assert [loc["name"] for loc in listed["items"]] == ["Renamed elsewhere"]


async def test_change_is_whole_and_published_only_after_commit(owner_api: ApiHarness):
    api = owner_api
    api.events.clear()
    seen_during: list[int] = []

    with api.store.session() as s:
        audits_before = s.scalar(select(func.count()).select_from(AuditEvent))
        mails_before = s.scalar(select(func.count()).select_from(OutboxMessage))
    try:
        with api.ctx.unit_of_work(system_actor("test")) as uow:
            uow.session.add(Location(org_id=_org_id(api), name="Half", country="US", time_zone="UTC",
                                     address=ADDRESS, emergency_address=ADDRESS))
            uow.change("location", "half", "created", None, {"name": "Half"})
            uow.mail("someone@acme.example", "never", "never sent")
            seen_during.append(len(api.events))
            raise RuntimeError("something broke before the commit")
    except RuntimeError:
        pass
    assert seen_during == [0] and api.events == []
    with api.store.session() as s:
        assert s.scalar(select(func.count()).select_from(Location).where(Location.name == "Half")) == 0
        assert s.scalar(select(func.count()).select_from(AuditEvent)) == audits_before
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == mails_before

    # A subscriber that fails does not fail the request that made the (committed) change.
    def broken(_events):
        raise ValueError("subscriber bug")

    unsubscribe = api.ctx.events.subscribe(broken)
    created = await api.call("POST", "/v1/locations", json=LOCATION, expect=201)
    unsubscribe()
    assert api.events == [ChangeEvent("location", created["id"], "created", created)]


def _org_id(api: ApiHarness) -> str:
    from provisioning.store import Organization

    with api.store.session() as s:
        return s.scalars(select(Organization.id)).one()


async def test_openapi_document_and_docs_page(api: ApiHarness):
    response, document = await api.request("GET", "/openapi.json", role=None)
    assert response.status == 200 and document["openapi"] == "3.1.0"
    people = document["paths"]["/v1/people"]["post"]
    assert people["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/PersonIn"}
    assert set(people["responses"]) >= {"201", "401", "403", "409", "422"}
    assert people["security"] == [{"bearer": []}] and "READ_ONLY" not in people["x-roles"]
    device = document["components"]["schemas"]["DeviceIn"]["properties"]["password"]
    assert device["writeOnly"] is True
    assert "password" not in document["components"]["schemas"]["DeviceOut"]["properties"]
    assert "/v1/activation" in document["paths"] and "security" not in document["paths"]["/v1/activation"]["post"]
    response = await api.client.get("/docs")
    page = await response.text()
    assert response.status == 200 and "/v1/locations/{locationId}/emergencyAddress" in page
    assert "<script" not in page  # works offline
