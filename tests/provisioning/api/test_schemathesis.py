"""schemathesis against /openapi.json of a real server process: whatever it sends, valid or not,
no answer is a 5xx, and every answer has a documented status, content type and schema.

The server holds a little of everything (a trunk, numbers, people, a token per role) so list
and detail answers carry real data; the run is bounded to about a minute.
"""

from __future__ import annotations

import secrets
import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.server import ROOT, ServerProcess, add_api_token

pytestmark = pytest.mark.timeout(240)

BUDGET_SECONDS = 60.0
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance,
               response_headers_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    owner = "cr_" + secrets.token_urlsafe(24)
    proc = ServerProcess(tmp_path_factory.mktemp("schemathesis"), prepare=lambda store: add_api_token(store, owner, "OWNER"),
                         settings={"log": {"level": "WARNING"},
                                   "carrier": {"simulator": str(ROOT / "config" / "carrier-sim.yaml")}})
    proc.start()
    base = f"http://127.0.0.1:{proc.api_port}"
    auth = {"Authorization": f"Bearer {owner}"}

    def post(path: str, body: dict) -> dict:
        response = requests.post(base + path, json=body, headers=auth, timeout=10)
        assert response.status_code in (200, 201), (path, response.status_code, response.text)
        return response.json()

    post("/v1/trunks", {"name": "austin-gw", "host": "10.0.0.1", "username": "acme", "password": "trunk-pw"})
    location = requests.get(base + "/v1/locations?name=Austin", headers=auth, timeout=10).json()["items"][0]
    post(f"/v1/locations/{location['id']}/numbers", {"phoneNumbers": [f"+1512555{n:04d}" for n in range(100, 110)]})
    person = post("/v1/people", {"email": "dora@acme.test", "firstName": "Dora", "lastName": "Diaz",
                                 "locationId": location["id"], "extension": "1009", "phoneNumber": "+15125550101"})
    requests.put(f"{base}/v1/numbers/+15125550102/emergencyAddress", headers=auth, timeout=10, json={
        "address1": "1 Elm", "city": "Austin", "state": "TX", "postalCode": "78701", "country": "US"})
    requests.put(f"{base}/v1/locations/{location['id']}/mainNumber", headers=auth, timeout=10, json={
        "phoneNumber": "+15125550100", "destination": {"type": "PERSON", "id": person["id"]}})
    post("/v1/tokens", {"name": "reader", "role": "READ_ONLY"})
    try:
        yield base, auth, proc
    finally:
        rc = proc.stop()
        assert rc == 0, proc.log()


def _run(base: str, auth: dict, mode: GenerationMode, checks: list, examples: int, deadline: float) -> list[str]:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    failures: list[str] = []
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        if time.monotonic() > deadline:
            break

        @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def exercise(case) -> None:
            case.call_and_validate(base_url=base, session=session, headers=auth, checks=checks)

        try:
            exercise()
        except Exception as exc:  # a failed check: collect them all, report together
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    return failures


def test_valid_requests_get_documented_answers(server):
    base, auth, proc = server
    failures = _run(base, auth, GenerationMode.POSITIVE, CONFORMANCE, 25, time.monotonic() + BUDGET_SECONDS * 0.6)
    assert not failures, "\n\n".join(failures)
    assert "Traceback" not in proc.log()


def test_invalid_requests_get_4xx_not_5xx(server):
    base, auth, proc = server
    failures = _run(base, auth, GenerationMode.NEGATIVE, [not_a_server_error, status_code_conformance,
                                                           content_type_conformance], 15,
                    time.monotonic() + BUDGET_SECONDS * 0.4)
    assert not failures, "\n\n".join(failures)
