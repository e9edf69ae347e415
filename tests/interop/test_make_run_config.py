"""What `make run` starts: config/callrouter.yaml with config/example-org.yaml. A phone
registers with the credentials README.md names (the server here gets free ports and a
temporary store, everything else comes from the shipped files)."""
from __future__ import annotations

import os

import re
import socket
from pathlib import Path

import yaml

from callrouter.settings import load_settings
from sipcore.message import parse
from tests.server import ROOT, ServerProcess, free_port
from tests.sipcore.sipclient import digest_authorization, register, request_uri


def readme_credentials() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    return dict(re.findall(r"^\| `([\w-]+)` \| `([^`]+)` \| \d+ \|$", text, re.M))


def server_rtp_base() -> int:
    return 60000 - 2000 * (os.getpid() % 10)


def test_readme_credentials_register_against_the_shipped_configuration(tmp_path: Path):
    creds = readme_credentials()
    assert set(creds) == {"alice", "bob"}
    shipped = load_settings(ROOT / "config" / "callrouter.yaml")
    assert shipped.org == (ROOT / "config" / "example-org.yaml").resolve()
    assert (shipped.sip.port, shipped.api.port) == (5060, 8080)

    config = yaml.safe_load((ROOT / "config" / "callrouter.yaml").read_text())
    config["sip"].update(host="127.0.0.1", port=free_port(), tls_port=free_port())
    config["api"].update(host="127.0.0.1", port=free_port())
    config["store"]["url"] = f"sqlite:///{tmp_path / 'callrouter.db'}"
    config["location"]["snapshot_path"] = str(tmp_path / "bindings.db")
    config["org"] = str(ROOT / "config" / "example-org.yaml")
    # Relative paths in the shipped file point at config/; the copy lives elsewhere.
    if (config.get("carrier") or {}).get("simulator"):
        config["carrier"]["simulator"] = str(ROOT / "config" / config["carrier"]["simulator"])
    # A slice of RTP ports of its own, like every test server.
    config["rtp"].update(port_min=server_rtp_base(), port_max=server_rtp_base() + 1998)
    server = ServerProcess(tmp_path)
    server.config_path.write_text(yaml.safe_dump(config))
    server.sip_port, server.api_port = config["sip"]["port"], config["api"]["port"]
    server.start()
    try:
        for user, password in creds.items():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind(("127.0.0.1", 0))
                sock.settimeout(5)
                local, dest = sock.getsockname(), ("127.0.0.1", server.sip_port)
                first = register(user, port=server.sip_port, local=local)
                sock.sendto(first, dest)
                challenge = parse(sock.recv(65535))
                assert challenge.status == 401
                assert 'realm="acme-corp"' in challenge.get("www-authenticate")  # as README says
                auth = digest_authorization(challenge.get("www-authenticate"), user, password,
                                            "REGISTER", request_uri(first))
                sock.sendto(register(user, port=server.sip_port, local=local, cseq=2,
                                     authorization=auth), dest)
                assert parse(sock.recv(65535)).status == 200
        assert server.metric("callrouter_registrations") == 2
    finally:
        server.stop()
