from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from provisioning.digest import digest_hex, ha1, ha1_all
from provisioning.store import (
    Base,
    Device,
    Location,
    Number,
    NumberState,
    Organization,
    Person,
    PstnType,
    SipCredential,
    Store,
    StoreError,
    Subscription,
    alembic_config,
    normalize_url,
)

ADDRESS = {"address1": "100 Congress Ave", "city": "Austin", "state": "TX", "postalCode": "78701", "country": "US"}


@pytest.fixture
def store(store_url):
    with Store.open(store_url) as opened:
        yield opened


def add_org(store: Store, name: str = "Acme", realm: str = "acme", prefix: str = "+1512555") -> dict[str, str]:
    """One organisation with a location, a person with a number, and a device; returns ids."""
    with store.session() as s:
        org = Organization(name=name, country="US", subscription=Subscription.PAID, sip_realm=realm)
        s.add(org)
        s.flush()
        loc = Location(org_id=org.id, name="Austin", country="US", time_zone="America/Chicago",
                       address=ADDRESS, emergency_address=ADDRESS, pstn_type=PstnType.CALLING_PLAN,
                       main_number=f"{prefix}0100")
        s.add(loc)
        s.flush()
        person = Person(org_id=org.id, location_id=loc.id, email=f"alice@{realm}.example", first_name="Alice",
                        last_name="A", extension="1001", phone_number=f"{prefix}0101")
        s.add(person)
        s.flush()
        s.add_all([
            Number(e164=f"{prefix}0100", location_id=loc.id, is_main=True),
            Number(e164=f"{prefix}0101", location_id=loc.id, owner_id=person.id),
        ])
        device = Device(person_id=person.id, sip_username=f"alice-{realm}")
        device.set_ha1(ha1_all(f"alice-{realm}", realm, "pw-1"))
        s.add(device)
        s.flush()
        return {"org": org.id, "location": loc.id, "person": person.id, "device": device.id}


def test_open_runs_migrations_to_head_and_schema_matches_models(store):
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head
        assert set(inspect(conn).get_table_names()) >= {
            "organizations", "locations", "people", "devices", "numbers", "alembic_version"}
        # The migration is hand-written; any drift from the models shows up here.
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_reopening_an_existing_store_keeps_data(store_url):
    with Store.open(store_url) as first:
        add_org(first)
    with Store.open(store_url) as second:
        assert [c.username for c in second.sip_credentials()] == ["alice-acme"]


def test_session_commits_whole_or_not_at_all(store):
    with pytest.raises(RuntimeError):
        with store.session() as s:
            s.add(Organization(name="Half", country="US", subscription=Subscription.TRIAL, sip_realm="half"))
            s.flush()  # written to the database inside the transaction ...
            raise RuntimeError("boom")  # ... and rolled back here
    with store.session() as s:
        assert s.scalars(select(Organization)).all() == []
        s.add(Organization(name="Whole", country="US", subscription=Subscription.TRIAL, sip_realm="whole"))
    with store.session() as s:
        assert [o.name for o in s.scalars(select(Organization))] == ["Whole"]


def test_sip_credentials_carry_ha1_and_whereabouts(store):
    add_org(store, "Beta", "beta", prefix="+1737555")
    add_org(store, "Acme", "acme")
    creds = store.sip_credentials()
    assert [c.username for c in creds] == ["alice-acme", "alice-beta"]
    first = creds[0]
    assert isinstance(first, SipCredential)
    assert first == SipCredential(
        username="alice-acme", realm="acme",
        ha1={alg: ha1(alg, "alice-acme", "acme", "pw-1") for alg in ("MD5", "SHA-256", "SHA-512-256")},
        person_email="alice@acme.example", location="Austin", extension="1001", phone_number="+15125550101")
    with pytest.raises(AttributeError):
        first.username = "mallory"  # type: ignore[misc]


def test_enums_and_utc_timestamps_round_trip(store):
    ids = add_org(store)
    with store.session() as s:
        org = s.get(Organization, ids["org"])
        number = s.get(Number, "+15125550100")
        assert org.subscription is Subscription.PAID
        assert number.state is NumberState.ACTIVE and number.is_main is True
        assert s.get(Location, ids["location"]).pstn_type is PstnType.CALLING_PLAN
        assert org.created_at.tzinfo is not None and org.created_at.utcoffset() == timedelta(0)
        assert abs(datetime.now(UTC) - org.created_at) < timedelta(minutes=1)
        first_update = org.updated_at
        org.business_account = True
    with store.session() as s:
        assert s.get(Organization, ids["org"]).updated_at > first_update


def test_ids_are_uuid_strings(store):
    ids = add_org(store)
    assert all(len(value) == 36 and value.count("-") == 4 for value in ids.values())


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s, ids: s.add(Person(org_id=ids["org"], location_id=ids["location"], email="alice@acme.example",
                                                  first_name="A", last_name="B")), id="email unique"),
        pytest.param(lambda s, ids: s.add(Person(org_id=ids["org"], location_id=ids["location"], email="x@acme.example",
                                                  first_name="A", last_name="B", extension="1001")), id="extension unique per location"),
        pytest.param(lambda s, ids: s.add(Device(person_id=ids["person"], sip_username="alice-acme", ha1_md5="0" * 32,
                                                  ha1_sha256="0" * 64, ha1_sha512_256="0" * 64)), id="sip username unique"),
        pytest.param(lambda s, ids: s.add(Number(e164="+15125550199", location_id="no-such-location")), id="foreign keys enforced"),
        pytest.param(lambda s, ids: s.execute(text("UPDATE numbers SET state = 'LOST'")), id="state checked"),
        pytest.param(lambda s, ids: s.add(Location(org_id=ids["org"], name="Austin", country="US", time_zone="UTC",
                                                    address={}, emergency_address={})), id="location name unique per org"),
    ],
)
def test_constraints_are_enforced_by_the_database(store, change):
    ids = add_org(store)
    with pytest.raises(IntegrityError):
        with store.session() as s:
            change(s, ids)
            s.flush()


def test_sqlite_creates_parent_directory_and_uses_wal_with_foreign_keys(tmp_path):
    path = tmp_path / "deep" / "er" / "cr.db"
    with Store.open(f"sqlite:///{path}") as store:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert path.exists()
    # WAL is a property of the file, so a plain sqlite3 connection sees it too.
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_postgresql_url_uses_psycopg3():
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@h/db", "unsupported store 'mysql'"),
        ("not a url", "not a database URL"),
        ("postgresql://u:hunter2@127.0.0.1:1/db", "cannot open store postgresql+psycopg://u:***@127.0.0.1:1/db"),
    ],
)
def test_open_failures_are_store_errors_without_passwords(url, message):
    with pytest.raises(StoreError) as info:
        Store.open(url)
    assert message in str(info.value)
    assert "hunter2" not in str(info.value)


# Known-answer vectors: RFC 2617 §3.5 for MD5 HA1; FIPS 180-4 examples for SHA-256 and
# SHA-512/256 (which is not a truncated SHA-512: it has its own initial values).
def test_ha1_known_answers():
    assert ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life") == "939e7578ed9e3c518a452acee763bce9"
    assert digest_hex("SHA-256", "abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert digest_hex("SHA-512-256", "abc") == "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
    assert ha1("SHA-256", "u", "r", "p") == digest_hex("SHA-256", "u:r:p")
    assert set(ha1_all("u", "r", "p")) == {"MD5", "SHA-256", "SHA-512-256"}


def test_ha1_rejects_unknown_algorithm():
    with pytest.raises(ValueError, match="unknown digest algorithm 'SHA-1'"):
        ha1("SHA-1", "u", "r", "p")


def test_alembic_runs_without_a_store_connection(tmp_path):
    """The migration environment also works as plain Alembic (its own engine from a URL)."""
    from alembic import command

    url = f"sqlite:///{tmp_path / 'plain.db'}"
    config = alembic_config()
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "head")
    with Store.open(url) as store, store.engine.connect() as conn:
        assert "devices" in inspect(conn).get_table_names()
    command.downgrade(config, "base")
    with Store.open(url) as store:  # and back up again on open
        assert store.sip_credentials() == []


def test_alembic_offline_mode_writes_postgresql_sql(capsys):
    from alembic import command

    config = alembic_config()
    config.set_main_option("sqlalchemy.url", "postgresql://dba@db.example/callrouter")
    command.upgrade(config, "head", sql=True)
    sql = capsys.readouterr().out
    assert "CREATE TABLE organizations" in sql and "JSONB" in sql
    assert "CONSTRAINT ck_numbers_number_state CHECK" in sql


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_require_service_skips_locally_and_fails_in_ci(monkeypatch):
    from tests.conftest import require_service

    port = _closed_port()
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=rf"Nothing is not reachable at 127.0.0.1:{port}"):
        require_service("Nothing", "127.0.0.1", port)
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI is set, so a missing service is a failure"):
        require_service("Nothing", "127.0.0.1", port)


def test_require_service_passes_for_a_listening_port():
    import socket

    from tests.conftest import require_service

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        require_service("Listener", "127.0.0.1", server.getsockname()[1])


def test_redis_url_fixture_gives_an_empty_database(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
        client.set("callrouter-test", "1")
    finally:
        client.close()
