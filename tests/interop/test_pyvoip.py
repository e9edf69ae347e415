"""pyVoIP 1.6.8 as a phone: VoIPPhone registers over UDP and unregisters when stopped.

What pyVoIP does on the wire (read from pyVoIP/SIP.py):
- it keeps only the first WWW-Authenticate of a 401 (the SHA-256 one under the default
  settings) but always computes MD5 and labels it algorithm=MD5; the nonce is shared by
  all challenges, so the server accepts it;
- it answers without qop (RFC 2069 style) and signs the digest uri
  "sip:<server>;transport=UDP" for a Request-URI "sip:<server>" (no port);
- its Via carries ;rport, its Contact carries +sip.instance, and it asks for Expires: 120;
- stop() deregisters (Expires: 0, with a new Call-ID) and waits for the answer.
"""
from __future__ import annotations

import time

import pytest

from tests.interop.conftest import UdpUac, free_udp_port, require_module, wait_metric
from tests.server import NAMED_USERS

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]


@pytest.fixture(scope="module")
def voip():
    require_module("pyVoIP", "install pyVoIP==1.6.8 (pip install -e '.[test]')")
    from pyVoIP.VoIP import PhoneStatus, VoIPPhone

    return VoIPPhone, PhoneStatus


def test_pyvoip_registers_and_unregisters_on_stop(start_server, voip):
    VoIPPhone, PhoneStatus = voip
    server = start_server()
    sip_port = free_udp_port()
    phone = VoIPPhone("127.0.0.1", server.sip_port, "carol", NAMED_USERS["carol"][0],
                      myIP="127.0.0.1", sipPort=sip_port, rtpPortLow=41000, rtpPortHigh=41100)
    # pyVoIP waits up to register_timeout per response; keep a lost answer from costing 30 s.
    phone.sip.register_timeout = 10
    started = False
    try:
        phone.start()  # registers synchronously: challenge, then MD5 answer
        started = True
        assert phone.get_status() == PhoneStatus.REGISTERED
        assert wait_metric(server, "callrouter_registrations", 1) == 1
        with UdpUac(server) as uac:
            bindings = uac.bindings("carol")
        assert len(bindings) == 1, bindings
        contact, expires = bindings[0]
        assert contact.startswith(f"sip:carol@127.0.0.1:{sip_port}"), contact
        assert 110 <= expires <= 120, bindings
        assert server.metric("callrouter_sip_auth_failures_total") == 0

        phone.stop()  # deregisters
        started = False
        assert phone.get_status() == PhoneStatus.INACTIVE
        assert wait_metric(server, "callrouter_registrations", 0) == 0
        with UdpUac(server) as uac:
            assert uac.bindings("carol") == []
        assert server.metric("callrouter_sip_auth_failures_total") == 0
    finally:
        if started:
            phone.stop()
        # pyVoIP's receive thread notices the closed socket within its poll interval.
        time.sleep(0.2)


def test_pyvoip_with_a_wrong_password_does_not_register(start_server, voip):
    VoIPPhone, PhoneStatus = voip
    server = start_server()
    phone = VoIPPhone("127.0.0.1", server.sip_port, "carol", "not-carols-password",
                      myIP="127.0.0.1", sipPort=free_udp_port(), rtpPortLow=41100, rtpPortHigh=41200)
    phone.sip.register_timeout = 5
    try:
        # Each try gets 403; pyVoIP retries up to REGISTER_FAILURE_THRESHOLD (3) times, then
        # stops itself with status FAILED.
        phone.start()
        deadline = time.monotonic() + 20
        while phone.get_status() != PhoneStatus.FAILED and time.monotonic() < deadline:
            time.sleep(0.1)
        assert phone.get_status() == PhoneStatus.FAILED
        assert server.metric("callrouter_sip_auth_failures_total") >= 3
        assert server.metric("callrouter_registrations") == 0
    finally:
        phone.sip.NSD and phone.stop()
        time.sleep(0.2)
