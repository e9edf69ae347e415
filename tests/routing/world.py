"""A small hand-built directory that exercises every dialling habit: one organisation with
locations in the US, GB, AU and DE (each dialling its own way), and a second organisation
that shares nothing with the first.

Acme:
  AUS  Austin, US   prefix 8, outside digit 9, trunk gw-aus (UDP), main number -> auto attendant
  LON  London, GB   prefix 7, outside digit 9, trunk ccp-lon (TCP), main number -> Liam
  SYD  Sydney, AU   prefix 6, outside digit 0, trunk cp-syd, main number with no destination
  BER  Berlin, DE   no prefix, no outside digit, no trunk, main number -> auto attendant
Globex: one London location with its own trunk and a person whose extension is also 1001.
"""
from __future__ import annotations

from datetime import UTC, datetime

from routing.records import (
    AutoAttendantRecord,
    DeviceRecord,
    DirectoryData,
    LocationRecord,
    NumberRecord,
    OrganizationRecord,
    PersonRecord,
    TrunkRecord,
)

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

ESA_AUS = {"address1": "100 Congress Ave", "city": "Austin", "state": "TX", "postalCode": "78701", "country": "US"}
ESA_CAROL_HOME = {"address1": "7 Elm St", "city": "Round Rock", "state": "TX", "postalCode": "78664", "country": "US"}
ESA_LON = {"address1": "1 Poultry", "city": "London", "postalCode": "EC2R 8EJ", "country": "GB"}
ESA_SYD = {"address1": "1 Martin Pl", "city": "Sydney", "state": "NSW", "postalCode": "2000", "country": "AU"}
ESA_BER = {"address1": "Unter den Linden 1", "city": "Berlin", "postalCode": "10117", "country": "DE"}

TRUNK_AUS = TrunkRecord("t-aus", "acme", "gw-aus", "192.0.2.10", 5060, "UDP")
TRUNK_LON = TrunkRecord("t-lon", "acme", "ccp-lon", "192.0.2.20", 5070, "TCP", True, "acme-lon", "carrier.example",
                        {"MD5": "0" * 32})
TRUNK_SYD = TrunkRecord("t-syd", "acme", "cp-syd", "sbc.carrier.example", 5060, "TLS")
TRUNK_GLOBEX = TrunkRecord("t-gx", "globex", "pstn", "198.51.100.5", 5060, "UDP")


def location(id, org, name, country, prefix, outside, main, dest, esa, trunk, email=None):
    return LocationRecord(id=id, org_id=org, name=name, country=country, time_zone="UTC",
                          routing_prefix=prefix, outside_dial_digit=outside, main_number=main,
                          main_destination=dest, emergency_address=esa, contact_email=email,
                          pstn_type="LOCAL_GATEWAY" if trunk else None, trunk_name=trunk)


def person(id, loc, first, last, ext, number, org="acme"):
    return PersonRecord(id, org, loc, f"{first.lower()}@{org}.example", first, last, ext, number)


def acme() -> DirectoryData:
    orgs = [OrganizationRecord("acme", "Acme", "US", "acme.example"),
            OrganizationRecord("globex", "Globex", "GB", "globex.example")]
    locations = [
        location("AUS", "acme", "Austin", "US", "8", "9", "+15125550100", ("AUTO_ATTENDANT", "aa-aus"), ESA_AUS,
                 "gw-aus", "ops@acme.example"),
        location("LON", "acme", "London", "GB", "7", "9", "+442079460100", ("PERSON", "p-liam"), ESA_LON, "ccp-lon"),
        location("SYD", "acme", "Sydney", "AU", "6", "0", "+61290000100", None, ESA_SYD, "cp-syd"),
        location("BER", "acme", "Berlin", "DE", None, None, "+493012345600", ("AUTO_ATTENDANT", "aa-ber"), ESA_BER,
                 None),
        location("GLX", "globex", "Globex London", "GB", None, "9", "+442079460200", ("PERSON", "p-greta"), ESA_LON,
                 "pstn"),
    ]
    people = [
        person("p-alice", "AUS", "Alice", "Anderson", "1001", "+15125550101"),
        person("p-bob", "AUS", "Bob", "Brown", "1002", None),
        person("p-carol", "AUS", "Carol", "Chen", "1003", "+15125550103"),   # remote worker: own ESA
        person("p-dave", "AUS", "Dave", "Diaz", "1004", "+15125550104"),     # number still being ported
        person("p-erin", "AUS", "Erin", "Evans", "1005", "+15125550105"),    # no phone
        person("p-liam", "LON", "Liam", "Lewis", "2001", "+442079460101"),
        person("p-sophie", "SYD", "Sophie", "Smith", "1001", "+61290000101"),
        person("p-bernd", "BER", "Bernd", "Bauer", "3001", "+493012345601"),
        person("p-greta", "GLX", "Greta", "Green", "1001", "+442079460201", org="globex"),
    ]
    devices = [DeviceRecord("alice-desk", "p-alice"), DeviceRecord("alice-soft", "p-alice"),
               DeviceRecord("bob", "p-bob"), DeviceRecord("carol", "p-carol"), DeviceRecord("dave", "p-dave"),
               DeviceRecord("liam", "p-liam"), DeviceRecord("sophie", "p-sophie"),
               DeviceRecord("bernd", "p-bernd"), DeviceRecord("greta", "p-greta"),
               DeviceRecord("lobby", None)]
    numbers = [
        NumberRecord("+15125550100", "AUS", "ACTIVE", None, None, True),
        NumberRecord("+15125550101", "AUS", "ACTIVE", "p-alice", "PERSON"),
        NumberRecord("+15125550103", "AUS", "ACTIVE", "p-carol", "PERSON", emergency_address=ESA_CAROL_HOME),
        NumberRecord("+15125550104", "AUS", "PORT_PENDING", "p-dave", "PERSON"),
        NumberRecord("+15125550105", "AUS", "ACTIVE", "p-erin", "PERSON"),
        NumberRecord("+15125550106", "AUS", "INACTIVE"),
        NumberRecord("+15125550107", "AUS", "ACTIVE"),
        NumberRecord("+15125550108", "AUS", "PORT_PENDING"),
        NumberRecord("+15125550109", "AUS", "ACTIVE", "aa-sales", "AUTO_ATTENDANT"),
        NumberRecord("+442079460100", "LON", "ACTIVE", None, None, True),
        NumberRecord("+442079460101", "LON", "ACTIVE", "p-liam", "PERSON"),
        NumberRecord("+61290000100", "SYD", "ACTIVE", None, None, True),
        NumberRecord("+61290000101", "SYD", "ACTIVE", "p-sophie", "PERSON"),
        NumberRecord("+493012345600", "BER", "ACTIVE", None, None, True),
        NumberRecord("+493012345601", "BER", "ACTIVE", "p-bernd", "PERSON"),
        NumberRecord("+442079460200", "GLX", "ACTIVE", None, None, True),
        NumberRecord("+442079460201", "GLX", "ACTIVE", "p-greta", "PERSON"),
    ]
    auto_attendants = [
        AutoAttendantRecord("aa-aus", "AUS", "Austin main menu", "1000", "+15125550100"),
        AutoAttendantRecord("aa-sales", "AUS", "Sales menu", "1009", "+15125550109"),
        AutoAttendantRecord("aa-ber", "BER", "Berlin Hauptmenü", "3000", "+493012345600"),
    ]
    return DirectoryData(orgs, locations, people, devices, numbers, auto_attendants,
                         [TRUNK_AUS, TRUNK_LON, TRUNK_SYD, TRUNK_GLOBEX])
