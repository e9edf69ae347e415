from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from sqlalchemy import inspect, select, text

from provisioning.digest import ha1
from provisioning.orgfile import ApplySummary, OrgFileError, apply_org, load_org
from provisioning.store import Device, Location, Number, NumberState, Organization, Person, PstnType, Store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "example-org.yaml"

BASE = textwrap.dedent("""\
    organization:
      name: Initech
      country: US
      subscription: PAID
      businessAccount: false
    locations:
      - name: Austin
        country: US
        timeZone: America/Chicago
        address:
          address1: 1 Main St
          city: Austin
          state: TX
          postalCode: "78701"
          country: US
        pstn:
          type: LOCAL_GATEWAY
          trunk: austin-gw
        mainNumber: +1 512 555 0100
        numbers:
          - +1 512 555 0100
          - +1 512 555 0101
          - +1 512 555 0102
      - name: Oslo
        country: NO
        timeZone: Europe/Oslo
        address:
          address1: Karl Johans gate 1
          city: Oslo
          postalCode: 0154
          country: NO
        numbers:
          - 21 00 00 00
    people:
      - email: Peter@Initech.example
        firstName: Peter
        lastName: Gibbons
        location: Austin
        extension: 1001
        phoneNumber: +15125550101
        devices:
          - sipUsername: peter
            password: peter-pass-1
      - email: milton@initech.example
        firstName: Milton
        lastName: Waddams
        location: Austin
        extension: 0042
        devices:
          - sipUsername: milton
            password: stapler-42
          - sipUsername: milton-soft
            password: stapler-43
      - email: ingrid@initech.example
        firstName: Ingrid
        lastName: Berg
        location: Oslo
        extension: "2001"
        phoneNumber: "+47 21 00 00 00"
""")


@pytest.fixture
def store(store_url):
    with Store.open(store_url) as opened:
        yield opened


def write(tmp_path: Path, content: str, name: str = "org.yaml") -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


def line_of(content: str, needle: str) -> int:
    return next(i for i, line in enumerate(content.splitlines(), 1) if needle in line)


def test_example_org_applies_and_reapplies_unchanged(store):
    # 27 entities; the location is updated once more when the auto attendant takes its main number.
    assert apply_org(store, EXAMPLE) == ApplySummary(created=27, updated=1, unchanged=0)
    assert apply_org(store, EXAMPLE) == ApplySummary(created=0, updated=0, unchanged=27)
    by_user = {c.username: c for c in store.sip_credentials()}
    # The README names exactly these two credentials.
    for user, password, extension in (("alice", "alice-secret-1001", "1001"), ("bob", "bob-secret-1002", "1002")):
        cred = by_user[user]
        assert cred.extension == extension and cred.location == "Austin" and cred.realm == "acme-corp"
        assert cred.ha1["SHA-256"] == ha1("SHA-256", user, "acme-corp", password)
        assert cred.ha1["MD5"] == ha1("MD5", user, "acme-corp", password)
        assert cred.ha1["SHA-512-256"] == ha1("SHA-512-256", user, "acme-corp", password)


def test_applied_rows_hold_normalised_values(store, tmp_path):
    apply_org(store, write(tmp_path, BASE))
    with store.session() as s:
        org = s.scalars(select(Organization)).one()
        assert (org.name, org.sip_realm, org.business_account) == ("Initech", "initech", False)
        austin = s.scalars(select(Location).where(Location.name == "Austin")).one()
        assert austin.pstn_type is PstnType.LOCAL_GATEWAY and austin.pstn_trunk == "austin-gw"
        assert austin.main_number == "+15125550100"
        assert austin.emergency_address == austin.address == {
            "address1": "1 Main St", "city": "Austin", "state": "TX", "postalCode": "78701", "country": "US"}
        oslo = s.scalars(select(Location).where(Location.name == "Oslo")).one()
        # Unquoted YAML: "NO" stays Norway (not false), 0154 keeps its leading zero.
        assert oslo.country == "NO" and oslo.address["postalCode"] == "0154" and oslo.pstn_type is None
        peter = s.scalars(select(Person).where(Person.email == "peter@initech.example")).one()
        assert (peter.extension, peter.phone_number) == ("1001", "+15125550101")
        milton = s.scalars(select(Person).where(Person.email == "milton@initech.example")).one()
        assert milton.extension == "0042" and milton.phone_number is None  # not octal 34
        numbers = {n.e164: n for n in s.scalars(select(Number))}
        assert set(numbers) == {"+15125550100", "+15125550101", "+15125550102", "+4721000000"}
        assert numbers["+15125550100"].is_main and not numbers["+15125550101"].is_main
        assert numbers["+15125550101"].owner_id == peter.id and numbers["+15125550102"].owner_id is None
        assert all(n.state is NumberState.ACTIVE for n in numbers.values())
        assert len(s.scalars(select(Device)).all()) == 3


def test_changed_password_updates_only_that_device(store, tmp_path):
    apply_org(store, write(tmp_path, BASE))
    before = {c.username: c.ha1 for c in store.sip_credentials()}
    summary = apply_org(store, write(tmp_path, BASE.replace("stapler-43", "stapler-44")))
    assert summary == ApplySummary(created=0, updated=1, unchanged=12)
    after = {c.username: c.ha1 for c in store.sip_credentials()}
    assert after["milton-soft"]["SHA-256"] == ha1("SHA-256", "milton-soft", "initech", "stapler-44")
    assert after["milton"] == before["milton"] and after["peter"] == before["peter"]


def test_new_realm_rehashes_every_device(store, tmp_path):
    apply_org(store, write(tmp_path, BASE))
    changed = BASE.replace("  businessAccount: false\n", "  businessAccount: false\n  sipRealm: initech.example\n")
    assert apply_org(store, write(tmp_path, changed)) == ApplySummary(created=0, updated=4, unchanged=9)
    for cred in store.sip_credentials():
        assert cred.realm == "initech.example"
        assert cred.ha1["MD5"] != ha1("MD5", cred.username, "initech", "peter-pass-1")
    peter = next(c for c in store.sip_credentials() if c.username == "peter")
    assert peter.ha1["MD5"] == ha1("MD5", "peter", "initech.example", "peter-pass-1")


def test_swapping_extensions_and_moving_main_number(store, tmp_path):
    apply_org(store, write(tmp_path, BASE))
    swapped = (BASE.replace("extension: 1001", "extension: X").replace("extension: 0042", "extension: 1001")
               .replace("extension: X", "extension: 0042")
               .replace("mainNumber: +1 512 555 0100", "mainNumber: +1 512 555 0102"))
    # Two people, the location, and the two numbers whose main flag moved.
    assert apply_org(store, write(tmp_path, swapped)) == ApplySummary(created=0, updated=5, unchanged=8)
    with store.session() as s:
        ext = {p.email: p.extension for p in s.scalars(select(Person))}
        assert ext["peter@initech.example"] == "0042" and ext["milton@initech.example"] == "1001"
        mains = {n.e164 for n in s.scalars(select(Number).where(Number.is_main.is_(True)))}
        assert mains == {"+15125550102"}


def test_entities_missing_from_the_file_are_left_alone(store, tmp_path):
    apply_org(store, write(tmp_path, BASE))
    milton = BASE[BASE.index("  - email: milton@"):BASE.index("  - email: ingrid@")]
    smaller = BASE.replace(milton, "").replace("      - +1 512 555 0102\n", "")
    assert "0102" not in smaller
    assert apply_org(store, write(tmp_path, smaller)) == ApplySummary(created=0, updated=0, unchanged=9)
    with store.session() as s:
        assert s.scalars(select(Person).where(Person.email == "milton@initech.example")).one().extension == "0042"
        assert s.get(Number, "+15125550102") is not None
        assert {d.sip_username for d in s.scalars(select(Device))} == {"peter", "milton", "milton-soft"}


def test_number_assigned_outside_the_file_keeps_its_owner(store, tmp_path):
    apply_org(store, write(tmp_path, BASE))
    with store.session() as s:
        austin = s.scalars(select(Location).where(Location.name == "Austin")).one()
        outsider = Person(org_id=austin.org_id, location_id=austin.id, email="bob@initech.example",
                          first_name="Bob", last_name="Slydell", phone_number="+15125550102")
        s.add(outsider)
        s.flush()
        s.get(Number, "+15125550102").owner_id = outsider.id
    assert apply_org(store, write(tmp_path, BASE)).updated == 0
    with store.session() as s:
        assert s.get(Number, "+15125550102").owner.email == "bob@initech.example"


def test_dict_input_accepts_numbers_as_ints(store):
    data = yaml.safe_load(BASE.replace("extension: 0042", "extension: 42"))
    # Plain YAML loading mangles what our loader keeps as text; fix those by hand.
    oslo = data["locations"][1]
    oslo["country"] = oslo["address"]["country"] = "NO"
    oslo["address"]["postalCode"] = "0154"
    assert isinstance(data["people"][0]["extension"], int)
    assert apply_org(store, data).created == 13
    assert {c.extension for c in store.sip_credentials()} == {"1001", "42"}


def test_load_org_validates_without_a_store(tmp_path):
    org = load_org(write(tmp_path, BASE))
    assert org.organization.realm() == "initech"
    assert [p.email for p in org.people][0] == "peter@initech.example"


BAD_CASES = [
    # (replace this, with this, expected key path, reason fragment, text that starts the expected line)
    ("  name: Initech\n", "  nmae: Initech\n", "organization.nmae", "unknown key", "  nmae"),
    ("  subscription: PAID\n", "", "organization.subscription", "required", "organization:"),
    ("subscription: PAID", "subscription: GOLD", "organization.subscription", "must be one of 'TRIAL' or 'PAID'", "  subscription: GOLD"),
    ("  businessAccount: false", "  businessAccount: maybe", "organization.businessAccount", "must be true or false", "  businessAccount"),
    ("  country: US\n  subscription", "  country: XX\n  subscription", "organization.country", "ISO 3166 alpha-2", "  country: XX"),
    ("  businessAccount: false\n", "  businessAccount: false\n  sipRealm: Bad_Realm\n", "organization.sipRealm", "like a domain name", "  sipRealm"),
    ("timeZone: Europe/Oslo", "timeZone: Europe/Springfield", "locations[1].timeZone", "unknown IANA time zone", "    timeZone: Europe/Spr"),
    ("      - +1 512 555 0102", "      - +44 20 7946 0000", "locations[0].numbers[2]", "not a valid number in US", "      - +44"),
    ("      - +1 512 555 0102", "      - +1 800 555 0100", "locations[0].numbers[2]", "toll-free", "      - +1 800"),
    ("      - +1 512 555 0102", "      - banana", "locations[0].numbers[2]", "not a phone number", "      - banana"),
    ("      - +1 512 555 0102", "      - (512) 555-0100", "locations[0].numbers[2]", "+15125550100 is already listed at line 21", "      - (512)"),
    ("mainNumber: +1 512 555 0100", "mainNumber: +1 512 555 0199", "locations[0].mainNumber", "not one of this location's numbers", "    mainNumber"),
    ("      trunk: austin-gw\n", "", "locations[0].pstn", "a LOCAL_GATEWAY connection needs a trunk", "    pstn:"),
    ("      type: LOCAL_GATEWAY", "      type: CALLING_PLAN", "locations[0].pstn.trunk", "no trunk of its own", "      trunk:"),
    ("  - name: Oslo", "  - name: Austin", "locations[1].name", "listed twice", "  - name: Austin\n    country: NO"),
    ("      city: Oslo\n", "", "locations[1].address.city", "required", "    address:\n      address1: Karl"),
    ("extension: 1001", "extension: 1", "people[0].extension", "must be 2 to 6 digits, got '1'", "    extension: 1\n"),
    ("extension: 0042", "extension: 1001", "people[1].extension", "extension 1001 is already used at Austin (line 39)", "    extension: 1001\n    devices:\n      - sipUsername: milton"),
    ("phoneNumber: +15125550101", "phoneNumber: +15125550199", "people[0].phoneNumber", "not one of Austin's numbers", "    phoneNumber"),
    ("location: Oslo", "location: Bergen", "people[2].location", "no location named 'Bergen'", "    location: Bergen"),
    ("email: milton@initech.example", "email: PETER@initech.example", "people[1].email", "listed twice", "  - email: PETER"),
    ("email: milton@initech.example", "email: milton-at-initech", "people[1].email", "not an e-mail address", "  - email: milton-at"),
    ("sipUsername: milton-soft", "sipUsername: peter", "people[1].devices[1].sipUsername", "already used at line 42", "      - sipUsername: peter\n        password: stapler-43"),
    ("sipUsername: milton\n", "sipUsername: 'mil:ton'\n", "people[1].devices[0].sipUsername", "must be 1-64 letters", "      - sipUsername: 'mil"),
    ("        password: stapler-42\n", "", "people[1].devices[0].password", "required", "      - sipUsername: milton\n"),
    ("    firstName: Ingrid\n", "    firstName: Ingrid\n    nickname: Inga\n", "people[2].nickname", "unknown key", "    nickname"),
    ("    lastName: Berg\n", "    lastName: [Berg]\n", "people[2].lastName", "must be text, got list", "    lastName: [Berg]"),
]


def line_starting(content: str, start: str) -> int:
    """1-based line of the first line that begins with ``start`` (which may span lines)."""
    index = content.index(start) if content.startswith(start) else content.index("\n" + start) + 1
    return content[:index].count("\n") + 1


@pytest.mark.parametrize(("old", "new", "key", "reason", "marker"), BAD_CASES, ids=[c[2] + ":" + c[3][:20] for c in BAD_CASES])
def test_validation_errors_name_file_line_and_field(tmp_path, old, new, key, reason, marker):
    assert old in BASE
    content = BASE.replace(old, new, 1)
    path = write(tmp_path, content)
    with pytest.raises(OrgFileError) as info:
        load_org(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line_starting(content, marker)}: {key}: "), message
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("organization: [unclosed\n", ":2: YAML syntax error"),
        ("- just\n- a list\n", ":1: the organisation file must be a mapping"),
        ("organization:\n  name: A\n  name: B\n", ":3: organization.name: duplicate key (first given on line 2)"),
    ],
)
def test_file_level_errors(tmp_path, content, expected):
    path = write(tmp_path, content)
    with pytest.raises(OrgFileError) as info:
        load_org(path)
    assert str(info.value).startswith(f"{path}{expected}"), str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(OrgFileError, match=r"absent\.yaml:1: cannot read file"):
        load_org(tmp_path / "absent.yaml")


def test_calling_plan_not_sold_in_the_philippines(tmp_path):
    content = BASE.replace("  - name: Oslo\n    country: NO\n    timeZone: Europe/Oslo\n",
                           "  - name: Oslo\n    country: PH\n    timeZone: Asia/Manila\n    pstn: {type: CALLING_PLAN}\n")
    assert content != BASE
    with pytest.raises(OrgFileError) as info:
        load_org(write(tmp_path, content))
    assert str(info.value).startswith(f"{tmp_path / 'org.yaml'}:{line_of(content, 'CALLING_PLAN')}: locations[1].pstn.type: ")
    assert "not sold in the Philippines" in str(info.value)


def test_location_with_a_gateway_cannot_switch_to_the_calling_plan(store, tmp_path):
    apply_org(store, write(tmp_path, BASE))
    content = BASE.replace("      type: LOCAL_GATEWAY\n      trunk: austin-gw\n", "      type: CALLING_PLAN\n")
    assert content != BASE
    with pytest.raises(OrgFileError) as info:
        apply_org(store, write(tmp_path, content))
    assert f":{line_of(content, 'CALLING_PLAN')}: locations[0].pstn.type: " in str(info.value)
    assert "cannot switch to the calling plan" in str(info.value)


def other_org(store: Store, tmp_path: Path) -> None:
    """Another organisation whose names, numbers and usernames differ from BASE's."""
    other = BASE
    for old, new in [
        ("name: Initech", "name: Chotchkies"), ("Peter@Initech.example", "joanna@chotchkies.example"),
        ("initech.example", "chotchkies.example"), ("+1 512 555 01", "+1 737 555 01"),
        ("+15125550101", "+17375550101"), ("21 00 00 00", "21 00 00 01"), ("sipUsername: peter", "sipUsername: joanna"),
        ("sipUsername: milton", "sipUsername: stan"),
    ]:
        assert old in other
        other = other.replace(old, new)
    apply_org(store, write(tmp_path, other, "other.yaml"))


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        ("      - +1 512 555 0102\n", "      - +1 512 555 0102\n      - +1 737 555 0100\n", "locations[0].numbers[3]",
         "+17375550100 belongs to organisation 'Chotchkies'"),
        ("email: Peter@Initech.example", "email: joanna@chotchkies.example", "people[0].email",
         "joanna@chotchkies.example belongs to organisation 'Chotchkies'"),
        ("sipUsername: peter", "sipUsername: joanna", "people[0].devices[0].sipUsername",
         "SIP username 'joanna' belongs to organisation 'Chotchkies'"),
        ("  businessAccount: false\n", "  businessAccount: false\n  sipRealm: chotchkies\n", "organization.sipRealm",
         "SIP realm 'chotchkies' is already used by organisation 'Chotchkies'"),
    ],
)
def test_conflicts_with_another_organisation_store_nothing(store, tmp_path, old, new, key, reason):
    other_org(store, tmp_path)
    with store.session() as s:
        before = [s.scalar(text(f"SELECT COUNT(*) FROM {table}")) for table in ("locations", "people", "numbers", "devices")]
    content = BASE.replace(old, new, 1)
    assert content != BASE
    path = write(tmp_path, content)
    with pytest.raises(OrgFileError) as info:
        apply_org(store, path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line_of(content, new.strip().splitlines()[-1])}: {key}: "), message
    assert reason in message, message
    with store.session() as s:
        assert s.scalars(select(Organization.name)).all() == ["Chotchkies"]
        assert [s.scalar(text(f"SELECT COUNT(*) FROM {table}")) for table in ("locations", "people", "numbers", "devices")] == before


def test_error_late_in_apply_keeps_earlier_changes_out(store, tmp_path):
    apply_org(store, write(tmp_path, BASE))
    with store.session() as s:
        austin = s.scalars(select(Location).where(Location.name == "Austin")).one()
        s.add(Person(org_id=austin.org_id, location_id=austin.id, email="bob@initech.example",
                     first_name="Bob", last_name="Porter", extension="1999"))
    # The renames and the new location come before the conflicting extension is found.
    content = (BASE.replace("firstName: Peter", "firstName: Pete").replace("city: Austin", "city: Round Rock")
               .replace("people:\n", "  - name: Dallas\n    country: US\n    timeZone: America/Chicago\n"
                        "    address: {address1: 1 Elm St, city: Dallas, state: TX, postalCode: '75201', country: US}\n"
                        "people:\n")
               .replace("extension: 0042", "extension: 1999"))
    path = write(tmp_path, content)
    with pytest.raises(OrgFileError) as info:
        apply_org(store, path)
    assert f":{line_of(content, 'extension: 1999')}: people[1].extension: " in str(info.value)
    assert "belongs to bob@initech.example, who is not in this file" in str(info.value)
    with store.session() as s:
        assert s.scalars(select(Location.name).order_by(Location.name)).all() == ["Austin", "Oslo"]
        assert s.scalars(select(Person.first_name).where(Person.email == "peter@initech.example")).one() == "Peter"
        austin = s.scalars(select(Location).where(Location.name == "Austin")).one()
        assert austin.address["city"] == "Austin"


def test_passwords_never_reach_the_database(store, store_url, tmp_path):
    passwords = ["alice-secret-1001", "bob-secret-1002", "carlos-desk-7Hq2", "dana-secret-2001"]
    apply_org(store, EXAMPLE)
    apply_org(store, EXAMPLE)
    if store_url.startswith("sqlite"):
        store.close()  # checkpoint the WAL so every byte written is on disk
        db = Path(store_url.removeprefix("sqlite:///"))
        blobs = [p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name)]
        assert blobs and any(b"alice" in blob for blob in blobs)  # the scan does see the data
        for password in passwords:
            assert all(password.encode() not in blob for blob in blobs), password
    else:
        with store.engine.connect() as conn:
            dump = "\n".join(
                row[0]
                for table in inspect(conn).get_table_names()
                for row in conn.execute(text(f'SELECT row_to_json(t)::text FROM "{table}" t'))
            )
        assert "alice" in dump
        for password in passwords:
            assert password not in dump
    with Store.open(store_url) as reopened:
        columns = {c["name"] for c in inspect(reopened.engine).get_columns("devices")}
    assert not any("pass" in column for column in columns)


def test_example_is_valid_and_names_alice_and_bob():
    org = load_org(EXAMPLE)
    assert (org.organization.name, org.organization.country, org.organization.subscription) == ("Acme Corp", "US", "PAID")
    assert [loc.name for loc in org.locations] == ["Austin", "London"]
    people = {p.devices[0].sip_username: p for p in org.people}
    assert 4 <= len(org.people) <= 6
    assert people["sam"].extension == "1010"  # the main menu's sales key
    assert (people["alice"].extension, people["alice"].devices[0].password) == ("1001", "alice-secret-1001")
    assert (people["bob"].extension, people["bob"].devices[0].password) == ("1002", "bob-secret-1002")


def test_every_org_file_field_is_documented():
    from provisioning.orgfile import AddressSpec, DeviceSpec, LocationSpec, OrganizationSpec, PersonSpec, PstnSpec

    docs = (ROOT / "docs" / "configuration.md").read_text()
    for model in (AddressSpec, DeviceSpec, LocationSpec, OrganizationSpec, PersonSpec, PstnSpec):
        for name, info in model.model_fields.items():
            alias = info.alias or name
            assert f"`{alias}`" in docs or f"`{alias}[]`" in docs, f"{model.__name__}.{alias} missing from the docs"


def test_instances_applying_at_the_same_time_do_not_collide(store_url):
    """Several instances starting together each apply the organisation file at start."""
    from concurrent.futures import ThreadPoolExecutor

    stores = [Store.open(store_url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(len(stores)) as pool:
            summaries = list(pool.map(lambda s: apply_org(s, EXAMPLE), stores))
    finally:
        for s in stores:
            s.close()
    assert sorted(s.created for s in summaries) == [0, 0, 0, 27]
    assert sorted(s.updated for s in summaries) == [0, 0, 0, 1]
