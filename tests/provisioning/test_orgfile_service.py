"""The organisation file through the service layer: audit entries and change events for what it
creates or changes (none for what it leaves as is), trunks with digest-only credentials, routing
prefixes and outside-dial digits."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from provisioning.digest import ha1_all
from provisioning.events import EventBus
from provisioning.orgfile import OrgFileError, apply_org
from provisioning.service import Services
from provisioning.store import Location, Store
from provisioning.tables_access import AuditEvent, Trunk

ORG = """\
organization: {name: Initech, country: US, subscription: PAID}
trunks:
  - name: austin-gw
    host: gw.initech.example
    transport: TCP
    register: true
    username: initech
    password: gw-secret
locations:
  - name: Austin
    country: US
    timeZone: America/Chicago
    address: {address1: 1 Main St, city: Austin, state: TX, postalCode: "78701", country: US}
    pstn: {type: LOCAL_GATEWAY, trunk: austin-gw}
    routingPrefix: "8"
    outsideDialDigit: "9"
    numbers: [+15125550100]
people:
  - email: peter@initech.example
    firstName: Peter
    lastName: Gibbons
    location: Austin
    extension: "1001"
    phoneNumber: +15125550100
    devices: [{sipUsername: peter, password: peter-secret}]
"""


@pytest.fixture
def store(store_url):
    with Store.open(store_url) as opened:
        yield opened


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "org.yaml"
    path.write_text(text)
    return path


def test_apply_audits_and_publishes_what_changed(store, tmp_path):
    bus = EventBus()
    batches: list = []
    bus.subscribe(batches.append)
    services = Services(store, events=bus)
    summary = apply_org(store, _write(tmp_path, ORG), services)
    assert summary.created == 6  # organisation, trunk, location, person, number, device
    (events,) = batches
    assert sorted((e.entity, e.action) for e in events) == sorted(
        [("organization", "created"), ("trunk", "created"), ("location", "created"), ("person", "created"),
         ("number", "created"), ("device", "created")])
    number = next(e for e in events if e.entity == "number")
    assert number.entity_id == "+15125550100" and number.data["ownerId"] is not None
    with store.session() as s:
        trail = s.scalars(select(AuditEvent)).all()
        assert {a.actor_name for a in trail} == {"system:orgfile"} and len(trail) == 6
        assert all(a.org_id for a in trail)
        trunk = s.scalars(select(Trunk)).one()
        assert (trunk.transport, trunk.register, trunk.username, trunk.realm) == ("TCP", True, "initech",
                                                                                  "gw.initech.example")
        assert trunk.ha1 == ha1_all("initech", "gw.initech.example", "gw-secret")
        austin = s.scalars(select(Location)).one()
        assert (austin.routing_prefix, austin.outside_dial_digit) == ("8", "9")

    # Unchanged: nothing audited, nothing published. One change: exactly that one.
    assert apply_org(store, _write(tmp_path, ORG), services).unchanged == 6
    assert len(batches) == 1
    apply_org(store, _write(tmp_path, ORG.replace('routingPrefix: "8"', 'routingPrefix: "7"')), services)
    (changed,) = batches[1]
    assert (changed.entity, changed.action, changed.data["routingPrefix"]) == ("location", "updated", "7")
    with store.session() as s:
        entry = s.scalars(select(AuditEvent).where(AuditEvent.action == "location.updated")).one()
        assert (entry.before["routingPrefix"], entry.after["routingPrefix"]) == ("8", "7")


def test_changed_trunk_password_is_a_rehash_not_a_stored_secret(store, tmp_path, store_url):
    apply_org(store, _write(tmp_path, ORG))
    apply_org(store, _write(tmp_path, ORG.replace("gw-secret", "gw-secret-2")))
    with store.session() as s:
        assert s.scalars(select(Trunk.ha1)).one() == ha1_all("initech", "gw.initech.example", "gw-secret-2")
    with store.engine.connect() as conn:
        dump = "\n".join(str(row) for table in ("trunks", "audit_events")
                         for row in conn.exec_driver_sql(f"SELECT * FROM {table}"))
    assert "gw-secret" not in dump


@pytest.mark.parametrize(("old", "new", "key", "reason"), [
    ("    password: gw-secret\n", "    password: gw-secret\n  - {name: austin-gw, host: h.example}\n", "trunks[1].name",
     "listed twice"),
    ("    password: gw-secret\n", "", "trunks[0].password", "needs a username and password"),
    ('routingPrefix: "8"', 'routingPrefix: "8x"', "locations[0].routingPrefix", "pattern"),
    ('outsideDialDigit: "9"', 'outsideDialDigit: "99"', "locations[0].outsideDialDigit", "pattern"),
])
def test_trunk_and_dialling_mistakes_name_the_line(tmp_path, store, old, new, key, reason):
    path = _write(tmp_path, ORG.replace(old, new))
    with pytest.raises(OrgFileError) as caught:
        apply_org(store, path)
    assert caught.value.key == key and reason in caught.value.reason and caught.value.line is not None
    with store.session() as s:
        assert s.scalars(select(AuditEvent)).all() == []
