"""The declarative organisation file: one YAML document describing an organisation.

``apply_org`` makes the store match the file, idempotently and in one transaction. Entities
are matched by their natural keys (organisation by name, location by name within the
organisation, person by e-mail, device by SIP username, number by E.164). Entities in the
store that the file does not mention are left alone: the file adds and updates, it never
deletes, so numbers or people created through the API survive a re-apply.

Passwords are turned into HA1 digests on the way in and never stored.

Applying goes through the service layer like the API: one unit of work whose every created or
changed entity gets an audit entry (actor ``system:orgfile``) and a change event (its data is
the entity's audit snapshot), delivered after the commit.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from provisioning.audit import snapshot
from provisioning.digest import ha1_all
from provisioning.models import NO_CALLING_PLAN
from provisioning.orgfile_ivr import AttendantEntry, ScheduleEntry, apply_ivr, check_ivr
from provisioning.service import Services, UnitOfWork, system_actor
from provisioning.store import (
    Device,
    Location,
    Number,
    NumberState,
    Organization,
    Person,
    PstnType,
    Store,
    Subscription,
    new_id,
)
from provisioning.tables_access import Trunk
from provisioning.yamlsource import Loc, SourceError, YamlDocument, format_loc, load_yaml, source_errors

__all__ = ["ApplySummary", "NO_CALLING_PLAN", "OrgFile", "OrgFileError", "apply_org", "load_org"]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Conservative SIP user part: no ':' (it would make H(user:realm:password) ambiguous) and
# nothing that needs escaping in a URI.
_SIP_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_REALM = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
_EXTENSION = re.compile(r"^[0-9]{2,6}$")


class OrgFileError(SourceError):
    """The organisation file is invalid or conflicts with what the store holds."""


def _country(value: str) -> str:
    code = value.upper()
    if len(code) != 2 or code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"must be an ISO 3166 alpha-2 country code, got {value!r}")
    return code


class _Spec(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        str_strip_whitespace=True,
        # Data handed in as a dict (not a file) may carry extensions as ints.
        coerce_numbers_to_str=True,
        frozen=True,
    )


class AddressSpec(_Spec):
    address1: str = Field(min_length=1, max_length=200)
    address2: str | None = Field(default=None, max_length=200)
    city: str = Field(min_length=1, max_length=100)
    state: str | None = Field(default=None, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)
    country: str

    _country = field_validator("country")(_country)

    def as_json(self) -> dict[str, str]:
        return self.model_dump(by_alias=True, exclude_none=True)


class PstnSpec(_Spec):
    type: PstnType
    trunk: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("trunk")
    @classmethod
    def _trunk(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("type")
        if kind == PstnType.CALLING_PLAN and value is not None:
            raise ValueError("a calling plan location has no trunk of its own")
        return value


class TrunkSpec(_Spec):
    name: str = Field(min_length=1, max_length=200)
    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]-]+$")
    port: int = Field(default=5060, ge=1, le=65535)
    transport: Literal["UDP", "TCP", "TLS"] = "UDP"
    registers: bool = Field(default=False, alias="register")
    username: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[^:\s]+$")
    password: str | None = Field(default=None, min_length=1, max_length=200)
    realm: str | None = Field(default=None, min_length=1, max_length=253)

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("username") is None:
            raise ValueError("a password needs a username")
        return value

    def digest_realm(self) -> str | None:
        return (self.realm or self.host) if self.username else None


class LocationSpec(_Spec):
    name: str = Field(min_length=1, max_length=200)
    country: str
    time_zone: str
    address: AddressSpec
    emergency_address: AddressSpec | None = None
    pstn: PstnSpec | None = None
    routing_prefix: str | None = Field(default=None, pattern=r"^[0-9]{1,8}$")
    outside_dial_digit: str | None = Field(default=None, pattern=r"^[0-9]$")
    main_number: str | None = None
    numbers: list[str] = Field(default_factory=list)

    _country = field_validator("country")(_country)

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. America/Chicago)") from None
        return value


class DeviceSpec(_Spec):
    sip_username: str
    password: str = Field(min_length=1, max_length=200)

    @field_validator("sip_username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not _SIP_USERNAME.match(value):
            raise ValueError("must be 1-64 letters, digits or . _ + - (starting with a letter or digit)")
        return value


class PersonSpec(_Spec):
    email: str = Field(max_length=254)
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    location: str
    extension: str | None = None
    phone_number: str | None = None
    devices: list[DeviceSpec] = Field(default_factory=list)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.match(value):
            raise ValueError(f"not an e-mail address: {value!r}")
        return value.lower()

    @field_validator("extension")
    @classmethod
    def _extension(cls, value: str | None) -> str | None:
        if value is not None and not _EXTENSION.match(value):
            raise ValueError(f"must be 2 to 6 digits, got {value!r}")
        return value


class OrganizationSpec(_Spec):
    name: str = Field(min_length=1, max_length=200)
    country: str
    subscription: Subscription
    business_account: bool = False
    sip_realm: str | None = None

    _country = field_validator("country")(_country)

    @field_validator("sip_realm")
    @classmethod
    def _realm(cls, value: str | None) -> str | None:
        if value is not None and not _REALM.match(value):
            raise ValueError("must be lowercase letters, digits, '.' and '-' (like a domain name)")
        return value

    def realm(self) -> str:
        return self.sip_realm or re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


class OrgFile(_Spec):
    organization: OrganizationSpec
    trunks: list[TrunkSpec] = Field(default_factory=list)
    locations: list[LocationSpec] = Field(default_factory=list)
    people: list[PersonSpec] = Field(default_factory=list)
    schedules: list[ScheduleEntry] = Field(default_factory=list)
    auto_attendants: list[AttendantEntry] = Field(default_factory=list)


@dataclass(frozen=True)
class ApplySummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def __str__(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


@dataclass
class _LocationPlan:
    loc: Loc
    spec: LocationSpec
    numbers: dict[str, Loc]  # E.164 -> where the file lists it
    main_number: str | None


@dataclass
class _PersonPlan:
    loc: Loc
    spec: PersonSpec
    phone_number: str | None


@dataclass
class _Plan:
    doc: YamlDocument
    spec: OrgFile
    locations: list[_LocationPlan] = field(default_factory=list)
    people: list[_PersonPlan] = field(default_factory=list)

    def error(self, loc: Loc, reason: str) -> OrgFileError:
        return OrgFileError(self.doc.source, self.doc.line_for(loc), format_loc(loc), reason)


def _load(path_or_data: str | Path | dict[str, Any]) -> YamlDocument:
    if isinstance(path_or_data, dict):
        return YamlDocument(data=path_or_data, source="<data>")
    return load_yaml(path_or_data, OrgFileError, scalars_as_text=True)


def _parse_number(text: str, country: str) -> str:
    """E.164 for a number written in the location's national or international format."""
    try:
        parsed = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {text!r} ({exc._msg})") from None
    if not phonenumbers.is_valid_number_for_region(parsed, country):
        raise ValueError(f"{text!r} is not a valid number in {country}")
    if phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.TOLL_FREE:
        raise ValueError(f"{text!r} is toll-free; toll-free numbers cannot be added or ported in")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def load_org(path_or_data: str | Path | dict[str, Any]) -> OrgFile:
    """Read and fully validate an organisation file (or the same structure as a dict)."""
    return _check(_load(path_or_data)).spec


def _check(doc: YamlDocument) -> _Plan:
    if not isinstance(doc.data, dict):
        raise OrgFileError(doc.source, doc.line_for(()), "", "the organisation file must be a mapping")
    try:
        spec = OrgFile.model_validate(doc.data)
    except ValidationError as exc:
        raise source_errors(exc, doc, OrgFileError)[0] from None
    plan = _Plan(doc=doc, spec=spec)
    if not spec.organization.realm():
        raise plan.error(("organization", "name"), "cannot derive a SIP realm from this name; set sipRealm")

    trunk_names: set[str] = set()
    for i, trunk in enumerate(spec.trunks):
        if trunk.name in trunk_names:
            raise plan.error(("trunks", i, "name"), f"trunk {trunk.name!r} is listed twice")
        if trunk.registers and trunk.password is None:
            raise plan.error(("trunks", i, "password"), "a registering trunk needs a username and password")
        trunk_names.add(trunk.name)

    seen_names: set[str] = set()
    seen_prefixes: set[str] = set()
    seen_numbers: dict[str, Loc] = {}
    for i, location in enumerate(spec.locations):
        loc: Loc = ("locations", i)
        if location.name in seen_names:
            raise plan.error(loc + ("name",), f"location {location.name!r} is listed twice")
        seen_names.add(location.name)
        if location.routing_prefix is not None:
            if location.routing_prefix in seen_prefixes:
                raise plan.error(loc + ("routingPrefix",), f"routing prefix {location.routing_prefix} is listed twice")
            seen_prefixes.add(location.routing_prefix)
        if location.pstn and location.pstn.type == PstnType.CALLING_PLAN and location.country in NO_CALLING_PLAN:
            raise plan.error(
                loc + ("pstn", "type"), f"the calling plan is not sold in {NO_CALLING_PLAN[location.country]}"
            )
        if location.pstn and location.pstn.type != PstnType.CALLING_PLAN and location.pstn.trunk is None:
            raise plan.error(loc + ("pstn",), f"a {location.pstn.type.value} connection needs a trunk")
        numbers: dict[str, Loc] = {}
        for j, text in enumerate(location.numbers):
            number_loc = loc + ("numbers", j)
            try:
                e164 = _parse_number(text, location.country)
            except ValueError as exc:
                raise plan.error(number_loc, str(exc)) from None
            if e164 in seen_numbers:
                raise plan.error(number_loc, f"{e164} is already listed at line {plan.doc.line_for(seen_numbers[e164])}")
            seen_numbers[e164] = number_loc
            numbers[e164] = number_loc
        main = None
        if location.main_number is not None:
            try:
                main = _parse_number(location.main_number, location.country)
            except ValueError as exc:
                raise plan.error(loc + ("mainNumber",), str(exc)) from None
            if main not in numbers:
                raise plan.error(loc + ("mainNumber",), f"{main} is not one of this location's numbers")
        plan.locations.append(_LocationPlan(loc, location, numbers, main))

    by_name = {p.spec.name: p for p in plan.locations}
    emails: set[str] = set()
    usernames: dict[str, Loc] = {}
    extensions: dict[tuple[str, str], Loc] = {}
    owners: dict[str, Loc] = {}
    for i, person in enumerate(spec.people):
        loc = ("people", i)
        if person.email in emails:
            raise plan.error(loc + ("email",), f"{person.email} is listed twice")
        emails.add(person.email)
        home = by_name.get(person.location)
        if home is None:
            raise plan.error(loc + ("location",), f"no location named {person.location!r} in this file")
        if person.extension is not None:
            key = (home.spec.name, person.extension)
            if key in extensions:
                line = plan.doc.line_for(extensions[key])
                raise plan.error(
                    loc + ("extension",), f"extension {person.extension} is already used at {home.spec.name} (line {line})"
                )
            extensions[key] = loc + ("extension",)
        number = None
        if person.phone_number is not None:
            try:
                number = _parse_number(person.phone_number, home.spec.country)
            except ValueError as exc:
                raise plan.error(loc + ("phoneNumber",), str(exc)) from None
            if number not in home.numbers:
                raise plan.error(loc + ("phoneNumber",), f"{number} is not one of {home.spec.name}'s numbers")
            if number in owners:
                raise plan.error(
                    loc + ("phoneNumber",), f"{number} is already given to the person at line {plan.doc.line_for(owners[number])}"
                )
            owners[number] = loc
        for j, device in enumerate(person.devices):
            device_loc = loc + ("devices", j, "sipUsername")
            if device.sip_username in usernames:
                line = plan.doc.line_for(usernames[device.sip_username])
                raise plan.error(device_loc, f"SIP username {device.sip_username!r} is already used at line {line}")
            usernames[device.sip_username] = device_loc
        plan.people.append(_PersonPlan(loc, person, number))
    check_ivr(plan)
    return plan


def apply_org(store: Store, path_or_data: str | Path | dict[str, Any],
              services: Services | None = None) -> ApplySummary:
    """Make the store hold what the file describes, in one transaction; count what changed.

    ``services`` brings the event bus (and mailer) the changes are published on; without it
    they are audited and published on a bus of their own.
    """
    plan = _check(_load(path_or_data))
    services = services if services is not None and services.store is store else Services(store)
    try:
        with services.unit_of_work(system_actor("orgfile")) as uow:
            return _Applier(uow, plan).run()
    except IntegrityError as exc:
        # Only reachable when another writer changed the same rows between our checks and
        # the commit; nothing was stored.
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise OrgFileError(plan.doc.source, None, "", f"the store rejected the change, nothing applied: {reason}") from None


class _Applier:
    """Reconciles one checked plan with the store inside one session.

    Existing rows are fetched in a few bulk queries (not one per entity), so applying a file
    with thousands of people stays a matter of seconds on SQLite.
    """

    def __init__(self, uow: UnitOfWork, plan: _Plan) -> None:
        self.uow = uow
        self.session: Session = uow.session
        self.plan = plan
        self.created = self.updated = self.unchanged = 0
        # (entity, row, before) of every created or changed entity, audited once all is flushed.
        self.changes: list[tuple[str, Any, dict | None, dict]] = []

    def _count(self, created: bool, changed: bool, entity: str = "", row: Any = None,
               before: dict | None = None, **extra: Any) -> None:
        if created:
            self.created += 1
        elif changed:
            self.updated += 1
        else:
            self.unchanged += 1
        if (created or changed) and row is not None:
            self.changes.append((entity, row, None if created else before, extra))

    def _publish(self) -> None:
        for entity, row, before, extra in self.changes:
            after = {**snapshot(row), **extra}
            key = row.e164 if entity == "number" else row.id
            self.uow.change(entity, key, "updated" if before is not None else "created", before, after)

    @staticmethod
    def _set(obj: Any, **values: Any) -> bool:
        changed = False
        for name, value in values.items():
            if getattr(obj, name) != value:
                setattr(obj, name, value)
                changed = True
        return changed

    def _fetch(self, model: Any, column: Any, values: Iterable[Any]) -> dict[Any, Any]:
        """Rows whose ``column`` is in ``values``, keyed by it; chunked for SQLite's bind limit."""
        values = list(dict.fromkeys(values))
        out = {}
        for start in range(0, len(values), 500):
            for row in self.session.scalars(select(model).where(column.in_(values[start : start + 500]))):
                out[getattr(row, column.key)] = row
        return out

    def run(self) -> ApplySummary:
        org = self._organization()
        self.session.flush()
        self.uow.org_id = org.id
        self._trunks(org)
        locations = self._locations(org)
        self.session.flush()
        people = self._people(org, locations)
        self.session.flush()
        self._numbers(org, locations, people)
        self._devices(org, people)
        self.session.flush()
        self._publish()
        created, updated, unchanged = apply_ivr(self.uow, self.plan, org, locations)
        self.created, self.updated, self.unchanged = (
            self.created + created, self.updated + updated, self.unchanged + unchanged)
        return ApplySummary(self.created, self.updated, self.unchanged)

    def _trunks(self, org: Organization) -> None:
        specs = self.plan.spec.trunks
        if not specs:
            return
        existing = {row.name: row for row in self.session.scalars(select(Trunk).where(Trunk.org_id == org.id))}
        for spec in specs:
            row = existing.get(spec.name)
            created = row is None
            before = None if row is None else snapshot(row)
            if row is None:
                row = Trunk(id=new_id(), org_id=org.id, name=spec.name)
                self.session.add(row)
            realm = spec.digest_realm()
            digests = ha1_all(spec.username, realm, spec.password) if spec.username and spec.password else None
            changed = self._set(row, host=spec.host, port=spec.port, transport=spec.transport,
                                register=spec.registers, username=spec.username, realm=realm, ha1=digests)
            self._count(created, changed, "trunk", row, before)

    def _organization(self) -> Organization:
        spec = self.plan.spec.organization
        realm = spec.realm()
        org = self.session.scalar(select(Organization).where(Organization.name == spec.name))
        holder = self.session.scalar(select(Organization).where(Organization.sip_realm == realm))
        if holder is not None and holder is not org:
            field_name = "sipRealm" if spec.sip_realm else "name"
            raise self.plan.error(
                ("organization", field_name), f"SIP realm {realm!r} is already used by organisation {holder.name!r}"
            )
        created = org is None
        before = None if org is None else snapshot(org)
        if org is None:
            org = Organization(id=new_id(), name=spec.name)
            self.session.add(org)
        changed = self._set(
            org,
            country=spec.country,
            subscription=spec.subscription,
            business_account=spec.business_account,
            sip_realm=realm,
        )
        self._count(created, changed, "organization", org, before)
        return org

    def _locations(self, org: Organization) -> dict[str, Location]:
        existing = {row.name: row for row in self.session.scalars(select(Location).where(Location.org_id == org.id))}
        out = {}
        for plan in self.plan.locations:
            spec = plan.spec
            row = existing.get(spec.name)
            new_type = spec.pstn.type if spec.pstn else None
            if (
                row is not None
                and new_type == PstnType.CALLING_PLAN
                and row.pstn_type not in (None, PstnType.CALLING_PLAN)
            ):
                raise self.plan.error(
                    plan.loc + ("pstn", "type"),
                    f"{spec.name} already has a {row.pstn_type.value} connection and cannot switch to the calling plan",
                )
            created = row is None
            before = None if row is None else snapshot(row)
            if row is None:
                row = Location(id=new_id(), org_id=org.id, name=spec.name)
                self.session.add(row)
            address = spec.address.as_json()
            changed = self._set(
                row,
                country=spec.country,
                time_zone=spec.time_zone,
                address=address,
                emergency_address=spec.emergency_address.as_json() if spec.emergency_address else address,
                pstn_type=new_type,
                pstn_trunk=spec.pstn.trunk if spec.pstn else None,
                main_number=plan.main_number,
                routing_prefix=spec.routing_prefix,
                outside_dial_digit=spec.outside_dial_digit,
            )
            self._count(created, changed, "location", row, before)
            out[spec.name] = row
        return out

    def _people(self, org: Organization, locations: dict[str, Location]) -> dict[str, Person]:
        plans = self.plan.people
        rows = self._fetch(Person, Person.email, (p.spec.email for p in plans))
        file_emails = {p.spec.email for p in plans}
        by_extension = {
            (row.location_id, row.extension): row
            for row in self.session.scalars(
                select(Person).where(Person.location_id.in_([loc.id for loc in locations.values()]))
            )
        }
        by_number = self._fetch(Person, Person.phone_number, (p.phone_number for p in plans if p.phone_number))
        for plan in plans:
            spec = plan.spec
            row = rows.get(spec.email)
            if row is not None and row.org_id != org.id:
                raise self.plan.error(
                    plan.loc + ("email",), f"{spec.email} belongs to organisation {row.organization.name!r}"
                )
            location = locations[spec.location]
            # Extensions and numbers held by people this file does not mention are theirs.
            holder = by_extension.get((location.id, spec.extension)) if spec.extension else None
            if holder is not None and holder.email not in file_emails:
                raise self.plan.error(
                    plan.loc + ("extension",),
                    f"extension {spec.extension} at {location.name} belongs to {holder.email}, who is not in this file",
                )
            holder = by_number.get(plan.phone_number) if plan.phone_number else None
            if holder is not None and holder.email not in file_emails:
                raise self.plan.error(
                    plan.loc + ("phoneNumber",), f"{plan.phone_number} belongs to {holder.email}, who is not in this file"
                )

        # Extensions and numbers may be swapped between people in one file; clear the ones
        # that change first so the unique constraints never see two holders at once.
        moved: set[str] = set()
        befores = {email: snapshot(row) for email, row in rows.items()}
        for plan in plans:
            row = rows.get(plan.spec.email)
            wanted = (locations[plan.spec.location].id, plan.spec.extension, plan.phone_number)
            if row is not None and (row.location_id, row.extension, row.phone_number) != wanted:
                row.extension = row.phone_number = None
                moved.add(plan.spec.email)
        if moved:
            self.session.flush()

        out = {}
        for plan in plans:
            spec = plan.spec
            row = rows.get(spec.email)
            created = row is None
            if row is None:
                row = Person(id=new_id(), org_id=org.id, email=spec.email)
                self.session.add(row)
            changed = self._set(
                row,
                location_id=locations[spec.location].id,
                first_name=spec.first_name,
                last_name=spec.last_name,
                extension=spec.extension,
                phone_number=plan.phone_number,
            )
            self._count(created, changed or spec.email in moved, "person", row, befores.get(spec.email))
            out[spec.email] = row
        return out

    def _numbers(self, org: Organization, locations: dict[str, Location], people: dict[str, Person]) -> None:
        file_people = {row.id for row in people.values()}
        owner_of = {p.phone_number: people[p.spec.email].id for p in self.plan.people if p.phone_number}
        rows = self._fetch(Number, Number.e164, (e164 for plan in self.plan.locations for e164 in plan.numbers))
        org_of_location = dict(self.session.execute(select(Location.id, Location.org_id)).all())
        for plan in self.plan.locations:
            location = locations[plan.spec.name]
            for e164, loc in plan.numbers.items():
                row = rows.get(e164)
                if row is not None and org_of_location.get(row.location_id) != org.id:
                    raise self.plan.error(loc, f"{e164} belongs to organisation {row.location.organization.name!r}")
                created = row is None
                before = None if row is None else snapshot(row)
                if row is None:
                    # New numbers in a declarative file are in service; numbers already in
                    # the store keep their state (a pending port is the lifecycle's business).
                    row = Number(e164=e164, state=NumberState.ACTIVE, location_id=location.id)
                    self.session.add(row)
                owner = owner_of.get(e164)
                if owner is None and row.owner_id is not None and row.owner_id not in file_people:
                    owner = row.owner_id  # assigned outside this file: not ours to take away
                changed = self._set(row, location_id=location.id, owner_id=owner, is_main=e164 == plan.main_number)
                self._count(created, changed, "number", row, before)
            # A main number declared elsewhere demotes one the store still flags as main.
            stale = select(Number).where(
                Number.location_id == location.id, Number.is_main.is_(True), Number.e164.not_in(list(plan.numbers))
            )
            for row in self.session.scalars(stale):
                before = snapshot(row)
                row.is_main = False
                self.updated += 1
                self.changes.append(("number", row, before, {}))

    def _devices(self, org: Organization, people: dict[str, Person]) -> None:
        realm = self.plan.spec.organization.realm()
        usernames = (device.sip_username for plan in self.plan.people for device in plan.spec.devices)
        rows = self._fetch(Device, Device.sip_username, usernames)
        org_of_person = {row.id: row.org_id for row in people.values()}
        for plan in self.plan.people:
            person = people[plan.spec.email]
            for j, spec in enumerate(plan.spec.devices):
                row = rows.get(spec.sip_username)
                if row is not None and org_of_person.get(row.person_id, row.person.org_id) != org.id:
                    raise self.plan.error(
                        plan.loc + ("devices", j, "sipUsername"),
                        f"SIP username {spec.sip_username!r} belongs to organisation {row.person.organization.name!r}",
                    )
                created = row is None
                before = None if row is None else snapshot(row)
                if row is None:
                    row = Device(id=new_id(), sip_username=spec.sip_username)
                    self.session.add(row)
                digests = ha1_all(spec.sip_username, realm, spec.password)
                changed = self._set(row, person_id=person.id)
                rehashed = not created and row.ha1() != digests
                if created or rehashed:
                    row.set_ha1(digests)
                    changed = True
                self._count(created, changed, "device", row, before, passwordChanged=rehashed)
