"""The routing directory: an immutable, indexed snapshot of who and what can be called.

Built once from DirectoryData (the feed reads it from the store) and never changed: a change
in the store builds a new Directory that replaces the old one in a single assignment, so a
call being routed never sees half a change and routing never touches SQL.

The records themselves are the feed's; the indexes here only point at them, which keeps a
directory of a million numbers to the size of its records plus one dict entry each.
Inconsistent data (a number of an unknown location, two owners of one extension) does not
stop a build: the broken entry is left out and described in `problems`, so one bad row
cannot take every call down with it.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

from .dialplan import DialPlan, UnknownCountry, dial_plan
from .records import (
    AutoAttendantRecord,
    DeviceRecord,
    DirectoryData,
    LocationRecord,
    NumberRecord,
    OrganizationRecord,
    PersonRecord,
    TrunkRecord,
)

Callee = Union[PersonRecord, AutoAttendantRecord]


class Directory:
    """Read-only indexes; the attributes are public for the resolver and must not be changed."""

    __slots__ = (
        "organizations", "locations", "people", "devices", "numbers", "auto_attendants",
        "trunks", "usernames", "extensions", "prefixes", "owner_of_number", "trunk_by_org_name",
        "trunk_by_name", "trunks_by_id", "trunk_by_source", "trunk_by_host", "location_trunk", "trunk_country",
        "plans", "trunk_plan", "main_numbers", "prefix_lengths", "problems", "memo",
    )

    def __init__(self) -> None:
        self.organizations: dict[str, OrganizationRecord] = {}
        self.locations: dict[str, LocationRecord] = {}
        self.people: dict[str, PersonRecord] = {}
        self.devices: dict[str, DeviceRecord] = {}         # lower-cased SIP username
        self.numbers: dict[str, NumberRecord] = {}         # E.164
        self.auto_attendants: dict[str, AutoAttendantRecord] = {}
        self.trunks: tuple[TrunkRecord, ...] = ()
        self.usernames: dict[str, tuple[str, ...]] = {}    # person id -> SIP usernames
        self.extensions: dict[str, dict[str, Callee]] = {}  # location id -> extension -> callee
        self.prefixes: dict[str, dict[str, str]] = {}      # org id -> routing prefix -> location id
        self.prefix_lengths: dict[str, tuple[int, ...]] = {}  # org id -> prefix lengths, longest first
        # Numbers whose owner is known from the person or auto attendant side only.
        self.owner_of_number: dict[str, Callee] = {}
        self.trunk_by_org_name: dict[tuple[str, str], TrunkRecord] = {}
        self.trunk_by_name: dict[str, TrunkRecord] = {}
        self.trunks_by_id: dict[str, TrunkRecord] = {}
        self.trunk_by_source: dict[tuple[str, int], TrunkRecord] = {}
        self.trunk_by_host: dict[str, TrunkRecord] = {}
        self.location_trunk: dict[str, TrunkRecord] = {}
        self.trunk_country: dict[str, str] = {}            # trunk id -> country of its numbers
        self.trunk_plan: dict[str, DialPlan] = {}          # trunk id -> that country's plan
        self.plans: dict[str, DialPlan] = {}               # location id -> its country's plan
        self.main_numbers: dict[str, str] = {}             # E.164 -> location id
        self.problems: tuple[str, ...] = ()
        # What the resolver derives per caller on first use (routing.resolve owns the
        # contents). Filling it does not change what the directory says, only how fast.
        self.memo: dict[Any, Any] = {}

    # -- building ------------------------------------------------------------------------------
    @classmethod
    def build(cls, data: DirectoryData,
              resolve_host: Callable[[str], Iterable[str]] | None = None) -> Directory:
        """Index `data`. `resolve_host` (name -> addresses) lets a trunk configured by DNS
        name be recognised by the address its requests come from; it is called here, while
        building (off the event loop), never while routing."""
        d = cls()
        problems: list[str] = []
        d.organizations = {o.id: o for o in data.organizations}

        for loc in data.locations:
            if loc.org_id not in d.organizations:
                problems.append(f"location {loc.id}: unknown organisation {loc.org_id}")
                continue
            try:
                plan = dial_plan(loc.country)
            except UnknownCountry as exc:
                problems.append(f"location {loc.id}: {exc}")
                continue
            d.locations[loc.id] = loc
            d.plans[loc.id] = plan
            d.extensions[loc.id] = {}

        d.people = {}
        for person in data.people:
            if person.location_id not in d.locations:
                problems.append(f"person {person.id}: unknown location {person.location_id}")
                continue
            d.people[person.id] = person
            if person.extension:
                d._add_extension(person.location_id, person.extension, person, problems)
            if person.phone_number:
                d.owner_of_number[person.phone_number] = person

        for aa in data.auto_attendants:
            if aa.location_id not in d.locations:
                problems.append(f"auto attendant {aa.id}: unknown location {aa.location_id}")
                continue
            d.auto_attendants[aa.id] = aa
            if aa.extension:
                d._add_extension(aa.location_id, aa.extension, aa, problems)
            if aa.phone_number:
                d.owner_of_number[aa.phone_number] = aa

        usernames: dict[str, list[str]] = {}
        for device in data.devices:
            key = device.sip_username.lower()
            d.devices[key] = device
            if device.person_id is not None:
                usernames.setdefault(device.person_id, []).append(device.sip_username)
        d.usernames = {pid: tuple(names) for pid, names in usernames.items()}

        # The hot loop of a build: a million numbers. A dict comprehension first, then the
        # rare broken rows are taken out again, is about three times faster than checking each.
        d.numbers = {n.e164: n for n in data.numbers}
        known = d.locations
        broken = [n for n in d.numbers.values() if n.location_id not in known]
        for n in broken:
            problems.append(f"number {n.e164}: unknown location {n.location_id}")
            del d.numbers[n.e164]

        for loc in d.locations.values():
            if loc.main_number:
                d.main_numbers[loc.main_number] = loc.id
        for n in d.numbers.values():
            if n.is_main and n.e164 not in d.main_numbers:
                d.main_numbers[n.e164] = n.location_id

        for loc in d.locations.values():
            if loc.routing_prefix:
                table = d.prefixes.setdefault(loc.org_id, {})
                if loc.routing_prefix in table:
                    problems.append(f"location {loc.id}: routing prefix {loc.routing_prefix} is already "
                                    f"location {table[loc.routing_prefix]}'s")
                    continue
                table[loc.routing_prefix] = loc.id
        d.prefix_lengths = {org: tuple(sorted({len(p) for p in table}, reverse=True))
                            for org, table in d.prefixes.items()}

        d._index_trunks(data.trunks, problems, resolve_host)
        d.problems = tuple(problems)
        return d

    def _add_extension(self, location_id: str, extension: str, callee: Callee, problems: list[str]) -> None:
        table = self.extensions[location_id]
        other = table.get(extension)
        if other is not None:
            problems.append(f"extension {extension} in location {location_id}: held by both "
                            f"{other.id} and {callee.id}; keeping {other.id}")
            return
        table[extension] = callee

    def _index_trunks(self, trunks: Iterable[TrunkRecord], problems: list[str],
                      resolve_host: Callable[[str], Iterable[str]] | None) -> None:
        kept = []
        hosts: dict[str, list[TrunkRecord]] = {}
        for trunk in trunks:
            if trunk.org_id not in self.organizations:
                problems.append(f"trunk {trunk.name}: unknown organisation {trunk.org_id}")
                continue
            kept.append(trunk)
            self.trunk_by_org_name[(trunk.org_id, trunk.name)] = trunk
            self.trunk_by_name.setdefault(trunk.name, trunk)
            self.trunks_by_id[trunk.id] = trunk
            for host in self._addresses(trunk, problems, resolve_host):
                source = (host, trunk.port)
                if source in self.trunk_by_source:
                    problems.append(f"trunk {trunk.name}: {host}:{trunk.port} is already trunk "
                                    f"{self.trunk_by_source[source].name}; calls from there are that one's")
                else:
                    self.trunk_by_source[source] = trunk
                hosts.setdefault(host, []).append(trunk)
        self.trunks = tuple(kept)
        # A peer's requests often come from another port than the one we send to (TCP always
        # does): the host alone identifies the trunk, unless two trunks share that host.
        self.trunk_by_host = {host: ts[0] for host, ts in hosts.items() if len(ts) == 1}

        for loc in self.locations.values():
            if not loc.trunk_name:
                continue
            trunk = self.trunk_by_org_name.get((loc.org_id, loc.trunk_name))
            if trunk is None:
                problems.append(f"location {loc.id}: unknown trunk {loc.trunk_name!r}")
                continue
            self.location_trunk[loc.id] = trunk
            self.trunk_country.setdefault(trunk.id, loc.country.upper())
        for trunk in kept:
            if trunk.location_id in self.locations:
                self.trunk_country[trunk.id] = self.locations[trunk.location_id].country.upper()
            elif trunk.id not in self.trunk_country:
                self.trunk_country[trunk.id] = self.organizations[trunk.org_id].country.upper()
            try:
                self.trunk_plan[trunk.id] = dial_plan(self.trunk_country[trunk.id])
            except UnknownCountry as exc:
                problems.append(f"trunk {trunk.name}: {exc}; only E.164 numbers from it are understood")

    @staticmethod
    def _addresses(trunk: TrunkRecord, problems: list[str],
                   resolve_host: Callable[[str], Iterable[str]] | None) -> list[str]:
        found = [trunk.host]
        if resolve_host is None:
            return found
        try:
            ipaddress.ip_address(trunk.host)
            return found
        except ValueError:
            pass
        try:
            found.extend(a for a in resolve_host(trunk.host) if a != trunk.host)
        except OSError as exc:
            problems.append(f"trunk {trunk.name}: cannot resolve {trunk.host} ({exc}); "
                            "calls from it are recognised only by that name")
        return list(dict.fromkeys(found))

    # -- lookups -------------------------------------------------------------------------------
    def device(self, sip_username: str) -> DeviceRecord | None:
        return self.devices.get(sip_username.lower())

    def person(self, person_id: str) -> PersonRecord | None:
        return self.people.get(person_id)

    def location(self, location_id: str) -> LocationRecord | None:
        return self.locations.get(location_id)

    def organization(self, org_id: str) -> OrganizationRecord | None:
        return self.organizations.get(org_id)

    def auto_attendant(self, aa_id: str) -> AutoAttendantRecord | None:
        return self.auto_attendants.get(aa_id)

    def number(self, e164: str) -> NumberRecord | None:
        return self.numbers.get(e164)

    def trunk(self, name: str, org_id: str | None = None) -> TrunkRecord | None:
        if org_id is not None:
            return self.trunk_by_org_name.get((org_id, name))
        return self.trunk_by_name.get(name)

    def trunk_for_location(self, location_id: str) -> TrunkRecord | None:
        return self.location_trunk.get(location_id)

    def trunk_for_source(self, host: str, port: int) -> TrunkRecord | None:
        """The trunk a request from (host, port) came from; trunks are matched by the host
        they were configured with, so a trunk given by DNS name is matched by that name only."""
        trunk = self.trunk_by_source.get((host, port))
        if trunk is None:
            trunk = self.trunk_by_host.get(host)
        return trunk

    def sip_usernames(self, person_id: str) -> tuple[str, ...]:
        return self.usernames.get(person_id, ())

    def effective_esa(self, e164_or_person: str | PersonRecord) -> Mapping | None:
        """The emergency address that applies: the number's own, else its location's.

        Takes an E.164 number, a PersonRecord, or a person id (their direct number's ESA if it
        has one, else their location's). None when neither is known.
        """
        if isinstance(e164_or_person, PersonRecord):
            person: PersonRecord | None = e164_or_person
        elif e164_or_person.startswith("+"):
            number = self.numbers.get(e164_or_person)
            if number is None:
                return None
            if number.emergency_address:
                return number.emergency_address
            loc = self.locations.get(number.location_id)
            return loc.emergency_address if loc is not None else None
        else:
            person = self.people.get(e164_or_person)
        if person is None:
            return None
        if person.phone_number:
            number = self.numbers.get(person.phone_number)
            if number is not None and number.emergency_address:
                return number.emergency_address
        loc = self.locations.get(person.location_id)
        return loc.emergency_address if loc is not None else None

    def __repr__(self) -> str:
        return (f"<Directory {len(self.locations)} locations, {len(self.people)} people, "
                f"{len(self.numbers)} numbers, {len(self.trunks)} trunks, {len(self.problems)} problems>")
