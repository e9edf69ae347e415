"""The API as `callrouter serve` runs it: wired into the runtime's web app next to /healthz, with
activation on first start, the code written to the log when no SMTP server is configured."""

from __future__ import annotations

import re
import time

import requests

from tests.server import ServerProcess


def test_first_start_logs_the_code_and_activation_gives_the_owner_token(tmp_path):
    server = ServerProcess(tmp_path / "served", settings={"owner": {"email": "boss@acme.test",
                                                                    "organization": "Acme Test"}})
    server.start()
    base = f"http://127.0.0.1:{server.api_port}"
    try:
        deadline = time.time() + 10
        while not (found := re.search(r"activation code for Acme Test is (\d{6})", server.log())):
            assert time.time() < deadline, server.log()
            time.sleep(0.1)
        answer = requests.post(f"{base}/v1/activation", json={"email": "boss@acme.test", "code": found.group(1)},
                               timeout=10)
        assert answer.status_code == 201, answer.text
        auth = {"Authorization": f"Bearer {answer.json()['token']}"}
        people = requests.get(f"{base}/v1/people", headers=auth, timeout=10).json()
        assert {p["email"] for p in people["items"]} >= {"alice@acme.test", "bob@acme.test"}
        outbox = requests.get(f"{base}/v1/outbox", headers=auth, timeout=10).json()
        assert [(m["to"], m["status"]) for m in outbox["items"]] == [("boss@acme.test", "LOGGED")]
        assert requests.get(f"{base}/healthz", timeout=10).json()["status"] == "ok"
        assert requests.get(f"{base}/openapi.json", timeout=10).json()["openapi"] == "3.1.0"
        assert "/v1/people" in requests.get(f"{base}/docs", timeout=10).text
        missing = requests.get(f"{base}/v1/people", timeout=10)
        assert missing.status_code == 401 and missing.headers["Content-Type"].startswith("application/problem+json")
    finally:
        assert server.stop() == 0, server.log()
    # A restart after activation sends no new code.
    server.start()
    try:
        time.sleep(0.5)
        assert len(re.findall(r"activation code for Acme Test", server.log())) == 1
    finally:
        server.stop()
