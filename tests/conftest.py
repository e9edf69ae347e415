"""Fixtures shared by every test package: real PostgreSQL and Redis, or a clear reason why not.

Tests talk to real services (see DESIGN.md, "Real parts in tests"). On a developer machine
a missing service skips the tests that need it, with the reason shown; in CI (the ``CI``
environment variable is set) a missing service is a failure, so a broken CI image cannot
turn into a green run that tested nothing.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DB = "127.0.0.1", 5432, "test"
POSTGRES_USERS = ("postgres", "root")
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# A database number of its own, flushed around each test that asks for redis_url.
REDIS_TEST_DB = 15


def require_service(name: str, host: str, port: int) -> None:
    """Skip the calling test (fail it when ``CI`` is set) unless host:port accepts TCP."""
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return
    except OSError as exc:
        reason = f"{name} is not reachable at {host}:{port} ({exc.strerror or exc})"
    if "CI" in os.environ:
        pytest.fail(f"{reason}; CI is set, so a missing service is a failure", pytrace=False)
    pytest.skip(f"{reason}; start it to run this test (with CI set this would fail)")


def _postgres_connect():  # -> (psycopg.Connection, user)
    import psycopg

    last: Exception | None = None
    for user in POSTGRES_USERS:
        try:
            conn = psycopg.connect(
                host=POSTGRES_HOST, port=POSTGRES_PORT, dbname=POSTGRES_DB, user=user, autocommit=True,
                connect_timeout=5,
            )
            return conn, user
        except psycopg.OperationalError as exc:  # wrong role: try the next one
            last = exc
    reason = f"PostgreSQL at {POSTGRES_HOST}:{POSTGRES_PORT} refused users {', '.join(POSTGRES_USERS)}: {last}"
    if "CI" in os.environ:
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    require_service("PostgreSQL", POSTGRES_HOST, POSTGRES_PORT)
    admin, user = _postgres_connect()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield (
            f"postgresql://{user}@{POSTGRES_HOST}:{POSTGRES_PORT}/{POSTGRES_DB}"
            f"?options=-csearch_path%3D{schema}&application_name={schema}"
        )
    finally:
        # Connections the test left open (tagged with the schema as application_name)
        # would block DROP; end them first.
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
            (schema,),
        )
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A store URL for an empty database: SQLite in tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'callrouter.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A Redis URL on a test database that is empty when the test starts and after it ends."""
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    import redis

    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_TEST_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
