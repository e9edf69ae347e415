"""The container files, checked for structure (there is no Docker engine in the test run)."""

from __future__ import annotations

import json
import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

from callrouter.cli import build_parser
from callrouter.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def instructions(name: str) -> list[str]:
    return [rest for keyword, rest in dockerfile() if keyword == name]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def mounts(service: dict) -> dict[str, Path]:
    """Container path -> host path of the bind mounts (named volumes left out)."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            out[target] = ROOT / source
    return out


def container_config_path() -> str:
    [cmd] = instructions("CMD")
    return build_parser().parse_args(json.loads(cmd)[1:]).config


def compose_settings(compose: dict) -> Settings:
    return load_settings(mounts(compose["services"]["callrouter"])[container_config_path()])


def test_image_base_and_command_match_the_cli():
    assert instructions("FROM") == ["python:3.11-slim"]
    [cmd] = instructions("CMD")
    argv = json.loads(cmd)  # exec form, so signals reach callrouter directly
    assert argv[0] == "callrouter"
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.config) == ("serve", "/etc/callrouter/callrouter.yaml")
    assert any(re.match(r"pip install .*\.", run) for run in instructions("RUN"))


def test_image_exposes_sip_tls_and_api_ports():
    exposed = {token for line in instructions("EXPOSE") for token in line.split()}
    normalised = {token if "/" in token else f"{token}/tcp" for token in exposed}
    assert {"5060/udp", "5060/tcp", "5061/tcp", "8080/tcp"} <= normalised
    defaults = load_settings(ROOT / "config" / "callrouter.yaml")
    assert f"{defaults.rtp.port_min}-{defaults.rtp.port_max}/udp" in normalised


def test_image_copies_only_files_that_exist():
    for line in instructions("COPY"):
        *sources, _target = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repository"


def test_image_config_resolves_to_a_writable_state_folder():
    # /etc/callrouter links to /opt/callrouter/config; the default settings' ../var then
    # means /opt/callrouter/var, the folder the image makes, hands to its user and keeps.
    runs = " ".join(instructions("RUN"))
    assert "ln -s /opt/callrouter/config /etc/callrouter" in runs
    settings = load_settings(ROOT / "config" / "callrouter.yaml")
    relative = Path(settings.store.url.removeprefix("sqlite:///")).relative_to(ROOT)
    state = PurePosixPath("/opt/callrouter") / relative.parent
    assert str(state) == "/opt/callrouter/var"
    assert f"mkdir -p {state}" in runs and f"chown callrouter {state}" in runs
    assert instructions("VOLUME") == [str(state)]
    assert instructions("USER") == ["callrouter"]


def test_compose_has_the_three_services_wired_together(compose):
    services = compose["services"]
    assert set(services) == {"callrouter", "postgres", "redis"}
    app = services["callrouter"]
    assert app["build"] == "."
    assert app["depends_on"] == {"postgres": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"}}
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]
    assert "command" not in app  # the image's CMD, tested above, is what runs


def test_compose_config_is_mounted_where_the_image_reads_it_and_loads(compose):
    app_mounts = mounts(compose["services"]["callrouter"])
    config_target = container_config_path()
    assert config_target in app_mounts
    assert app_mounts[config_target] == ROOT / "config" / "callrouter.compose.yaml"
    settings = compose_settings(compose)
    # The organisation file sits next to the config on the host and in the container.
    assert settings.org == app_mounts[config_target].parent / "example-org.yaml" and settings.org.exists()
    assert str(PurePosixPath(config_target).parent / settings.org.name) in app_mounts


def test_compose_store_points_at_the_postgres_service(compose):
    store = urlsplit(compose_settings(compose).store.url)
    env = compose["services"]["postgres"]["environment"]
    assert store.scheme == "postgresql" and store.hostname == "postgres" and (store.port or 5432) == 5432
    assert (store.username, store.password, store.path.lstrip("/")) == (
        env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"])


def test_compose_bindings_point_at_the_redis_service(compose):
    location = urlsplit(compose_settings(compose).location.url)
    assert (location.scheme, location.hostname, location.port or 6379) == ("redis", "redis", 6379)


def test_compose_publishes_the_ports_the_config_listens_on(compose):
    settings = compose_settings(compose)
    published = set()
    for mapping in compose["services"]["callrouter"]["ports"]:
        ports, _, proto = mapping.partition("/")
        host, container = ports.split(":")
        assert host == container, mapping  # SIP puts its own port into Via and Contact
        published.add((container, proto or "tcp"))
    assert {(str(settings.sip.port), "udp"), (str(settings.sip.port), "tcp"),
            (str(settings.sip.tls_port), "tcp"), (str(settings.api.port), "tcp")} <= published
    [(rtp, _)] = [p for p in published if p[1] == "udp" and "-" in p[0]]
    low, high = map(int, rtp.split("-"))
    # RTP on the even ports of the range, RTCP on the odd port just above each.
    assert (low, high) == (settings.rtp.port_min, settings.rtp.port_max + 1)
