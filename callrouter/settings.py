"""Runtime settings: one YAML file, validated into frozen pydantic models.

Every error names the file, the line and the key (``config/x.yaml:7: sip.port: must be
between 1 and 65535``) so an operator never has to guess which of forty keys is wrong.
Models are strict: YAML's ``yes`` must not silently become port 1.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, ValidationInfo, field_validator
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from provisioning.yamlsource import SourceError, load_yaml, source_errors

__all__ = [
    "ApiSettings",
    "AuthSettings",
    "CarrierSettings",
    "CallsSettings",
    "ConfigError",
    "LocationSettings",
    "LogSettings",
    "MailSettings",
    "OwnerSettings",
    "RegistrarSettings",
    "RtpSettings",
    "SecuritySettings",
    "Settings",
    "SipSettings",
    "StoreSettings",
    "load_settings",
]

DIGEST_ALGORITHMS = ("MD5", "SHA-256", "SHA-512-256")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class ConfigError(SourceError):
    """The settings file is missing, unreadable or invalid."""


def _base_dir(info: ValidationInfo) -> Path:
    # Without a file (Settings() in code or tests) relative paths mean the working directory.
    context = info.context or {}
    return Path(context.get("base_dir") or Path.cwd())


def _resolve_path(value: Any, info: ValidationInfo) -> Any:
    if value is None:
        return None
    if not isinstance(value, (str, Path)) or not str(value):
        raise ValueError(f"must be a file path, got {value!r}")
    # resolve() follows symlinks as the kernel would when opening "dir/../x"; a config
    # directory symlinked elsewhere (as in the Docker image) keeps its relative paths working.
    return (_base_dir(info) / Path(value).expanduser()).resolve()


def _check_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.match(value):
            raise ValueError(f"must be an IP address or a host name, got {value!r}") from None
    return value


def _in_port_range(value: int, low: int) -> int:
    if not low <= value <= 65535:
        raise ValueError(f"must be between {low} and 65535")
    return value


def _check_port(value: int) -> int:
    return _in_port_range(value, 1)


def _check_positive(value: float) -> float:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SipSettings(_Section):
    host: str = "0.0.0.0"
    port: int = 5060
    tls_port: int = 5061
    tls_cert: Path | None = Field(default=None, validate_default=True)
    tls_key: Path | None = Field(default=None, validate_default=True)
    max_message_size: int = 65535
    tcp_idle_timeout: float = 300.0
    advertise: str | None = None

    _host = field_validator("host")(_check_host)

    @field_validator("advertise")
    @classmethod
    def _advertise(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"must be an IP address, got {value!r}") from None
        if ip.is_unspecified:
            raise ValueError("must be an address phones can reach, not a wildcard")
        return value
    _port = field_validator("port")(_check_port)

    @field_validator("tls_port")
    @classmethod
    def _tls_port(cls, value: int, info: ValidationInfo) -> int:
        _in_port_range(value, 0)
        if value and value == info.data.get("port"):
            raise ValueError("must differ from sip.port (TLS needs its own TCP port)")
        return value

    @field_validator("tls_cert", mode="before")
    @classmethod
    def _tls_cert(cls, value: Any, info: ValidationInfo) -> Any:
        return _resolve_path(value, info)

    @field_validator("tls_key", mode="before")
    @classmethod
    def _tls_key(cls, value: Any, info: ValidationInfo) -> Any:
        key = _resolve_path(value, info)
        if (key is None) != (info.data.get("tls_cert") is None) and "tls_cert" in info.data:
            raise ValueError("sip.tls_cert and sip.tls_key must be given together")
        return key

    @field_validator("max_message_size")
    @classmethod
    def _max_message_size(cls, value: int) -> int:
        # Below ~1300 bytes an ordinary INVITE with SDP no longer fits.
        if not 1300 <= value <= 1048576:
            raise ValueError("must be between 1300 and 1048576 bytes")
        return value

    _idle = field_validator("tcp_idle_timeout")(_check_positive)


class RtpSettings(_Section):
    port_min: int = 20000
    port_max: int = 30000
    relay: bool = True

    @field_validator("port_min")
    @classmethod
    def _port_min(cls, value: int) -> int:
        # RTP takes the even port and RTCP the odd one above it (RFC 3550 §11).
        if not 1024 <= value <= 65534 or value % 2:
            raise ValueError("must be an even number between 1024 and 65534")
        return value

    @field_validator("port_max")
    @classmethod
    def _port_max(cls, value: int, info: ValidationInfo) -> int:
        if not 1024 <= value <= 65534 or value % 2:
            raise ValueError("must be an even number between 1024 and 65534")
        low = info.data.get("port_min")
        if low is not None and value <= low:
            raise ValueError(f"must be greater than rtp.port_min ({low})")
        return value


class CallsSettings(_Section):
    no_answer_timeout: float = 30.0

    @field_validator("no_answer_timeout")
    @classmethod
    def _no_answer(cls, value: float) -> float:
        if not 5 <= value <= 600:
            raise ValueError("must be between 5 and 600 seconds")
        return value


class ApiSettings(_Section):
    host: str = "0.0.0.0"
    port: int = 8080

    _host = field_validator("host")(_check_host)
    _port = field_validator("port")(_check_port)


class StoreSettings(_Section):
    url: str = Field(default="sqlite:///var/callrouter.db", validate_default=True)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(f"not a database URL: {value!r}") from None
        if url.drivername in ("sqlite", "sqlite+pysqlite"):
            if not url.database or url.database == ":memory:":
                raise ValueError("an SQLite store needs a file path (sqlite:///path/to/file.db)")
            database = str((_base_dir(info) / Path(url.database).expanduser()).resolve())
            return url.set(database=database).render_as_string(hide_password=False)
        if url.drivername in ("postgresql", "postgresql+psycopg"):
            return value
        raise ValueError("must start with sqlite:/// or postgresql://")


class LocationSettings(_Section):
    url: str = "memory://"
    snapshot_path: Path = Field(default=Path("var/bindings.db"), validate_default=True)
    snapshot_interval: float = 2.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value == "memory://":
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError("must be memory:// or redis://host:port/db")
        try:
            parts.port  # noqa: B018 - raises on a non-numeric port
        except ValueError:
            raise ValueError(f"bad port in {value!r}") from None
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ValueError(f"the Redis database must be a number, got {db!r}")
        return value

    @field_validator("snapshot_path", mode="before")
    @classmethod
    def _snapshot_path(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            raise ValueError("must be a file path")
        return _resolve_path(value, info)

    _interval = field_validator("snapshot_interval")(_check_positive)


class RegistrarSettings(_Section):
    min_expires: int = 60
    max_expires: int = 7200
    default_expires: int = 3600

    @field_validator("min_expires")
    @classmethod
    def _min(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1 second")
        return value

    @field_validator("max_expires")
    @classmethod
    def _max(cls, value: int, info: ValidationInfo) -> int:
        low = info.data.get("min_expires")
        if low is not None and value < low:
            raise ValueError(f"must be at least registrar.min_expires ({low})")
        return value

    @field_validator("default_expires")
    @classmethod
    def _default(cls, value: int, info: ValidationInfo) -> int:
        low, high = info.data.get("min_expires"), info.data.get("max_expires")
        if low is not None and high is not None and not low <= value <= high:
            raise ValueError(f"must be between registrar.min_expires ({low}) and registrar.max_expires ({high})")
        return value


class AuthSettings(_Section):
    # false: REGISTER without digest authentication (benchmarks and closed lab networks only)
    required: bool = True
    nonce_ttl: float = 300.0
    # None means "random per start": fine for one instance, but instances sharing a location
    # store must share the secret or they reject each other's nonces.
    secret: SecretStr | None = None
    algorithms: list[Literal["MD5", "SHA-256", "SHA-512-256"]] = Field(default_factory=lambda: ["SHA-256", "MD5"])

    _ttl = field_validator("nonce_ttl")(_check_positive)

    _random_secret: bytes = PrivateAttr(default_factory=lambda: secrets.token_bytes(32))

    def secret_bytes(self) -> bytes:
        """The nonce-signing key: the configured secret, else one random key per process."""
        return self.secret.get_secret_value().encode() if self.secret is not None else self._random_secret

    @field_validator("secret", mode="before")
    @classmethod
    def _secret(cls, value: Any) -> Any:
        if isinstance(value, str) and len(value) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"must name at least one of {', '.join(DIGEST_ALGORITHMS)}")
        if len(set(value)) != len(value):
            raise ValueError("must not repeat an algorithm")
        return value


class SecuritySettings(_Section):
    rate_limit: float = 200.0
    rate_burst: int = 400
    ban_failures: int = 10
    ban_window: float = 60.0
    ban_duration: float = 600.0

    _rate = field_validator("rate_limit", "ban_window", "ban_duration")(_check_positive)

    @field_validator("rate_burst", "ban_failures")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError("must be at least 1")
        return value


class OwnerSettings(_Section):
    # The purchaser: on first start a 6-digit activation code is mailed here.
    email: str | None = None
    organization: str | None = None
    country: str = "US"

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", value):
            raise ValueError(f"not an e-mail address: {value!r}")
        return value

    @field_validator("organization")
    @classmethod
    def _organization(cls, value: str | None) -> str | None:
        if value is not None and not 1 <= len(value.strip()) <= 200:
            raise ValueError("must be 1 to 200 characters")
        return value

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        import phonenumbers

        if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"must be an ISO 3166 alpha-2 country code, got {value!r}")
        return value.upper()


class MailSettings(_Section):
    # None: mail is written to the log and kept in the outbox (GET /v1/outbox).
    smtp_host: str | None = None
    smtp_port: int = 25
    sender: str = "callrouter@localhost"
    timeout: float = 10.0

    @field_validator("smtp_host")
    @classmethod
    def _smtp_host(cls, value: str | None) -> str | None:
        return None if value is None else _check_host(value)

    _port = field_validator("smtp_port")(_check_port)
    _timeout = field_validator("timeout")(_check_positive)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if "@" not in value or any(c in value for c in "\r\n"):
            raise ValueError(f"must be an e-mail address, got {value!r}")
        return value


class CarrierSettings(_Section):
    # The simulated carrier's inventory and customer records; unset: no carrier simulator.
    simulator: Path | None = Field(default=None, validate_default=True)
    # The calling-plan provider's SIP interconnect ("host:port"), which calling-plan locations
    # use as their PSTN trunk; unset: their outside calls are refused (503).
    calling_plan_trunk: str | None = None

    @field_validator("calling_plan_trunk")
    @classmethod
    def _calling_plan_trunk(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"must be host:port, got {value!r}")
        _check_host(host.strip("[]"))
        return value

    @field_validator("simulator", mode="before")
    @classmethod
    def _simulator(cls, value: Any, info: ValidationInfo) -> Any:
        return _resolve_path(value, info)


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class Settings(_Section):
    sip: SipSettings = Field(default_factory=dict, validate_default=True)
    rtp: RtpSettings = Field(default_factory=dict, validate_default=True)
    calls: CallsSettings = Field(default_factory=dict, validate_default=True)
    api: ApiSettings = Field(default_factory=dict, validate_default=True)
    store: StoreSettings = Field(default_factory=dict, validate_default=True)
    location: LocationSettings = Field(default_factory=dict, validate_default=True)
    registrar: RegistrarSettings = Field(default_factory=dict, validate_default=True)
    auth: AuthSettings = Field(default_factory=dict, validate_default=True)
    security: SecuritySettings = Field(default_factory=dict, validate_default=True)
    log: LogSettings = Field(default_factory=dict, validate_default=True)
    owner: OwnerSettings = Field(default_factory=dict, validate_default=True)
    mail: MailSettings = Field(default_factory=dict, validate_default=True)
    carrier: CarrierSettings = Field(default_factory=dict, validate_default=True)
    org: Path | None = Field(default=None, validate_default=True)

    @field_validator("org", mode="before")
    @classmethod
    def _org(cls, value: Any, info: ValidationInfo) -> Any:
        return _resolve_path(value, info)

    @field_validator("sip", "rtp", "calls", "api", "store", "location", "registrar", "auth", "security", "log", "owner", "mail",
                     "carrier", mode="before")
    @classmethod
    def _section(cls, value: Any) -> Any:
        # An empty section ("sip:" with nothing under it) means "all defaults", not an error.
        return {} if value is None else value


def load_settings(path: str | Path) -> Settings:
    """Load and validate a settings file; relative paths resolve against its directory."""
    doc = load_yaml(path, ConfigError)
    data = {} if doc.data is None else doc.data
    if not isinstance(data, dict):
        raise ConfigError(doc.source, doc.line_for(()), "", "the settings file must be a mapping of sections")
    base_dir = Path(path).absolute().parent
    try:
        return Settings.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        raise source_errors(exc, doc, ConfigError)[0] from None
