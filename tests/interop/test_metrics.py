"""/healthz and /metrics on the API port follow what happens on the SIP side."""
from __future__ import annotations

import json
import time
import urllib.request

from tests.interop.test_flood import register_once
from tests.server import ServerProcess


def test_health_and_metrics_follow_registrations(tmp_path):
    server = ServerProcess(tmp_path, settings={"registrar": {"min_expires": 1, "default_expires": 2}})
    server.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.api_port}/healthz", timeout=5) as r:
            health = json.load(r)
        assert health["status"] == "ok" and health["registrations"] == 0
        assert health["sip"]["port"] == server.sip_port

        assert register_once(server, "alice") == 200
        assert server.metric("callrouter_registrations") == 1
        assert server.metric("callrouter_registered_aors") == 1
        assert server.metric("callrouter_sip_requests_total", 'method="REGISTER"') == 2
        assert server.metric("callrouter_sip_responses_total", 'class="4xx"') == 1  # the 401
        assert server.metric("callrouter_sip_responses_total", 'class="2xx"') == 1
        # the challenge was stateless; the authenticated REGISTER is a non-INVITE server
        # transaction kept for Timer J (32 s on UDP) to absorb retransmissions
        assert server.metric("callrouter_sip_transactions", 'kind="nist"') == 1

        time.sleep(2.5)  # the binding (expires=2) runs out
        assert server.metric("callrouter_registrations") == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{server.api_port}/healthz", timeout=5) as r:
            assert json.load(r)["registrations"] == 0
    finally:
        server.stop()
