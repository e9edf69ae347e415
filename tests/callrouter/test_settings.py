from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from callrouter.settings import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "callrouter.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def error_of(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    return str(info.value)


def test_empty_file_gives_documented_defaults(tmp_path):
    s = load_settings(write(tmp_path, ""))
    assert (s.sip.host, s.sip.port, s.sip.tls_port) == ("0.0.0.0", 5060, 5061)
    assert s.sip.tls_cert is None and s.sip.tls_key is None
    assert (s.sip.max_message_size, s.sip.tcp_idle_timeout) == (65535, 300)
    assert (s.rtp.port_min, s.rtp.port_max) == (20000, 30000)
    assert (s.api.host, s.api.port) == ("0.0.0.0", 8080)
    assert s.store.url == f"sqlite:///{tmp_path / 'var' / 'callrouter.db'}"
    assert s.location.url == "memory://"
    assert s.location.snapshot_path == tmp_path / "var" / "bindings.db"
    assert s.location.snapshot_interval == 2
    assert (s.registrar.min_expires, s.registrar.max_expires, s.registrar.default_expires) == (60, 7200, 3600)
    assert s.auth.nonce_ttl == 300 and s.auth.secret is None
    assert s.auth.algorithms == ["SHA-256", "MD5"]
    sec = s.security
    assert (sec.rate_limit, sec.rate_burst, sec.ban_failures, sec.ban_window, sec.ban_duration) == (200, 400, 10, 60, 600)
    assert s.log.level == "INFO"
    assert s.org is None


def test_settings_in_code_resolve_against_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings().store.url == f"sqlite:///{tmp_path / 'var' / 'callrouter.db'}"


def test_empty_section_means_defaults(tmp_path):
    s = load_settings(write(tmp_path, "sip:\nrtp:\n  port_min: 40000\n  port_max: 40100\n"))
    assert s.sip.port == 5060
    assert (s.rtp.port_min, s.rtp.port_max) == (40000, 40100)


def test_every_key_is_read(tmp_path):
    (tmp_path / "tls").mkdir()
    path = write(tmp_path, """
        sip: {host: 127.0.0.1, port: 5070, tls_port: 0, tls_cert: tls/c.pem, tls_key: tls/k.pem,
              max_message_size: 4096, tcp_idle_timeout: 12.5}
        rtp: {port_min: 10000, port_max: 10002}
        api: {host: localhost, port: 9000}
        store: {url: "postgresql://u:p@db:5432/cr"}
        location: {url: "redis://cache:6379/3", snapshot_path: /srv/b.db, snapshot_interval: 0.5}
        registrar: {min_expires: 30, max_expires: 600, default_expires: 300}
        auth: {nonce_ttl: 30, secret: 0123456789abcdef0123, algorithms: [SHA-512-256]}
        security: {rate_limit: 5.5, rate_burst: 7, ban_failures: 3, ban_window: 9, ban_duration: 11}
        log: {level: debug}
        org: orgs/acme.yaml
    """)
    s = load_settings(path)
    assert (s.sip.host, s.sip.port, s.sip.tls_port) == ("127.0.0.1", 5070, 0)
    assert s.sip.tls_cert == tmp_path / "tls" / "c.pem" and s.sip.tls_key == tmp_path / "tls" / "k.pem"
    assert (s.sip.max_message_size, s.sip.tcp_idle_timeout) == (4096, 12.5)
    assert (s.rtp.port_min, s.rtp.port_max) == (10000, 10002)
    assert (s.api.host, s.api.port) == ("localhost", 9000)
    assert s.store.url == "postgresql://u:p@db:5432/cr"
    assert (s.location.url, s.location.snapshot_path, s.location.snapshot_interval) == (
        "redis://cache:6379/3", Path("/srv/b.db"), 0.5)
    assert (s.registrar.min_expires, s.registrar.max_expires, s.registrar.default_expires) == (30, 600, 300)
    assert s.auth.nonce_ttl == 30 and s.auth.algorithms == ["SHA-512-256"]
    assert s.auth.secret_bytes() == b"0123456789abcdef0123"
    assert "0123456789abcdef0123" not in repr(s)  # the secret stays out of logs
    assert (s.security.rate_limit, s.security.rate_burst, s.security.ban_failures) == (5.5, 7, 3)
    assert (s.security.ban_window, s.security.ban_duration) == (9, 11)
    assert s.log.level == "DEBUG"
    assert s.org == tmp_path / "orgs" / "acme.yaml"


def test_unset_secret_is_random_per_start_but_stable_within_one(tmp_path):
    a, b = load_settings(write(tmp_path, "")), load_settings(write(tmp_path, ""))
    assert a.auth.secret_bytes() == a.auth.secret_bytes()
    assert a.auth.secret_bytes() != b.auth.secret_bytes()
    assert len(a.auth.secret_bytes()) >= 16


def test_relative_paths_resolve_against_the_config_directory(tmp_path, monkeypatch):
    config_dir = tmp_path / "etc" / "cr"
    config_dir.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # a different working directory must not matter
    path = write(config_dir, """
        store: {url: "sqlite:///../data/cr.db"}
        location: {snapshot_path: state/bindings.db}
        org: org.yaml
    """)
    s = load_settings(Path("etc/cr/callrouter.yaml"))
    assert s.store.url == f"sqlite:///{tmp_path / 'etc' / 'data' / 'cr.db'}"
    assert s.location.snapshot_path == config_dir / "state" / "bindings.db"
    assert s.org == config_dir / "org.yaml"
    assert all(p.is_absolute() for p in (s.location.snapshot_path, s.org))
    assert path.exists()


def test_absolute_paths_are_kept(tmp_path):
    s = load_settings(write(tmp_path, 'store: {url: "sqlite:////srv/cr/db.sqlite"}\norg: /srv/org.yaml\n'))
    assert s.store.url == "sqlite:////srv/cr/db.sqlite"
    assert s.org == Path("/srv/org.yaml")


def test_example_config_points_into_project_var():
    s = load_settings(ROOT / "config" / "callrouter.yaml")
    assert s.store.url == f"sqlite:///{ROOT / 'var' / 'callrouter.db'}"
    assert s.location.url == "memory://"
    assert s.org == ROOT / "config" / "example-org.yaml" and s.org.exists()
    assert (s.sip.port, s.sip.tls_port, s.api.port) == (5060, 5061, 8080)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sip:\n  host: 0.0.0.0\n  port: 70000\n", "3: sip.port: must be between 1 and 65535"),
        ("sip:\n  port: 0\n", "2: sip.port: must be between 1 and 65535"),
        ("sip:\n  port: abc\n", "2: sip.port: must be an integer, got 'abc'"),
        ("sip:\n  port: yes\n", "2: sip.port: must be an integer, got True"),
        ("sip:\n  port: 5060\n  tls_port: 5060\n", "3: sip.tls_port: must differ from sip.port"),
        ("sip:\n  tls_cert: c.pem\n", "1: sip.tls_key: sip.tls_cert and sip.tls_key must be given together"),
        ("sip:\n  max_message_size: 100\n", "2: sip.max_message_size: must be between 1300 and 1048576 bytes"),
        ("sip:\n  tcp_idle_timeout: -1\n", "2: sip.tcp_idle_timeout: must be greater than 0"),
        ("sip:\n  host: 'not a host!'\n", "2: sip.host: must be an IP address or a host name"),
        ("sip:\n  prot: 5060\n", "2: sip.prot: unknown key"),
        ("bogus: 1\n", "1: bogus: unknown key"),
        ("sip: 5060\n", "1: sip: must be a mapping, got 5060"),
        ("rtp:\n  port_min: 20001\n", "2: rtp.port_min: must be an even number between 1024 and 65534"),
        ("rtp:\n  port_min: 20000\n  port_max: 20000\n", "3: rtp.port_max: must be greater than rtp.port_min (20000)"),
        ("api:\n  port: 65536\n", "2: api.port: must be between 1 and 65535"),
        ("store:\n  url: mysql://x/y\n", "2: store.url: must start with sqlite:/// or postgresql://"),
        ("store:\n  url: 'sqlite://'\n", "2: store.url: an SQLite store needs a file path"),
        ("location:\n  url: ftp://x\n", "2: location.url: must be memory:// or redis://host:port/db"),
        ("location:\n  url: redis://x:6379/abc\n", "2: location.url: the Redis database must be a number"),
        ("location:\n  snapshot_interval: 0\n", "2: location.snapshot_interval: must be greater than 0"),
        ("registrar:\n  min_expires: 0\n", "2: registrar.min_expires: must be at least 1 second"),
        ("registrar:\n  min_expires: 100\n  max_expires: 50\n", "3: registrar.max_expires: must be at least registrar.min_expires (100)"),
        ("registrar:\n  default_expires: 10\n", "2: registrar.default_expires: must be between registrar.min_expires (60)"),
        ("auth:\n  algorithms: [SHA-256, SHA-1]\n", "2: auth.algorithms[1]: must be one of 'MD5', 'SHA-256' or 'SHA-512-256'"),
        ("auth:\n  algorithms: []\n", "2: auth.algorithms: must name at least one of MD5, SHA-256, SHA-512-256"),
        ("auth:\n  algorithms: [MD5, MD5]\n", "2: auth.algorithms: must not repeat an algorithm"),
        ("auth:\n  algorithms: MD5\n", "2: auth.algorithms: must be a list, got 'MD5'"),
        ("auth:\n  secret: short\n", "2: auth.secret: must be at least 16 characters"),
        ("security:\n  rate_burst: 0\n", "2: security.rate_burst: must be at least 1"),
        ("security:\n  rate_limit: fast\n", "2: security.rate_limit: must be a number, got 'fast'"),
        ("log:\n  level: verbose\n", "2: log.level: must be one of 'DEBUG', 'INFO', 'WARNING', 'ERROR' or 'CRITICAL'"),
        ("org: 5\n", "1: org: must be a file path, got 5"),
        ("sip:\n  port: 5060\n  port: 5070\n", "3: sip.port: duplicate key (first given on line 2)"),
        ("- sip\n", "1: the settings file must be a mapping of sections"),
    ],
)
def test_bad_values_name_file_line_and_key(tmp_path, text, expected):
    path = write(tmp_path, text)
    message = error_of(path)
    assert message.startswith(f"{path}:{expected}"), message
    assert "\n" not in message


def test_error_line_points_at_the_key_deep_in_a_real_file(tmp_path):
    text = (ROOT / "config" / "callrouter.yaml").read_text()
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.strip().startswith("port_max:"))
    lines[index] = "  port_max: 1025"
    path = tmp_path / "callrouter.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert error_of(path) == f"{path}:{index + 1}: rtp.port_max: must be an even number between 1024 and 65534"


def test_file_given_as_relative_path_is_named_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    write(tmp_path / "config", "sip:\n\n  port: 99999\n", "x.yaml")
    assert error_of(Path("config/x.yaml")) == "config/x.yaml:3: sip.port: must be between 1 and 65535"


def test_yaml_syntax_error_has_file_and_line(tmp_path):
    path = write(tmp_path, "sip:\n  port: 5060\n  host: [unclosed\napi:\n  port: 1\n")
    message = error_of(path)
    assert message.startswith(f"{path}:4: YAML syntax error:"), message


def test_missing_file_is_a_config_error(tmp_path):
    path = tmp_path / "absent.yaml"
    assert error_of(path) == f"{path}:1: cannot read file: No such file or directory"


def _keys(model: type, prefix: str = "") -> list[str]:
    out = []
    for name, info in model.model_fields.items():
        nested = info.annotation
        if isinstance(nested, type) and hasattr(nested, "model_fields"):
            out += _keys(nested, f"{prefix}{name}.")
        else:
            out.append(f"{prefix}{name}")
    return out


def test_every_key_is_documented_and_in_the_example():
    docs = (ROOT / "docs" / "configuration.md").read_text()
    example = (ROOT / "config" / "callrouter.yaml").read_text()
    keys = _keys(Settings)
    sections = set(Settings.model_fields)
    documented = {k for k in re.findall(r"^\| `([a-z_.]+)` \|", docs, re.M) if k.split(".")[0] in sections and (k == "org" or "." in k)}
    assert documented == set(keys), "docs/configuration.md and Settings disagree"
    for key in keys:
        assert f"| `{key}` |" in docs, f"{key} missing from docs/configuration.md"
        assert f"{key.rsplit('.', 1)[-1]}:" in example, f"{key} missing from config/callrouter.yaml"
