"""carrier.calling_plan_trunk: calling-plan locations, which have no trunk of their own, send
their outside and emergency calls to the provider's interconnect."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callrouter.calls import with_calling_plan_trunk
from callrouter.settings import ConfigError, load_settings
from routing.callers import DeviceCaller
from routing.directory import Directory
from routing.records import (DeviceRecord, DirectoryData, LocationRecord, OrganizationRecord, PersonRecord,
                             TrunkRecord)
from routing.resolve import resolve
from routing.route import Emergency, Reject, ToTrunk

NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)


def data() -> DirectoryData:
    return DirectoryData(
        organizations=[OrganizationRecord("o", "Acme", "US", "acme")],
        locations=[LocationRecord("plan", "o", "Austin", "US", "America/Chicago", main_number="+15125550100",
                                  pstn_type="CALLING_PLAN", emergency_address={"country": "US"}),
                   LocationRecord("gw", "o", "Dallas", "US", "America/Chicago", pstn_type="LOCAL_GATEWAY",
                                  trunk_name="dallas-gw")],
        people=[PersonRecord("p1", "o", "plan", "a@x", "Ann", "A", "1001"),
                PersonRecord("p2", "o", "gw", "b@x", "Ben", "B", "2001")],
        devices=[DeviceRecord("ann", "p1"), DeviceRecord("ben", "p2")],
        trunks=[TrunkRecord("t1", "o", "dallas-gw", "10.0.0.9", 5060)],
    )


def test_calling_plan_calls_leave_through_the_providers_interconnect():
    directory = Directory.build(with_calling_plan_trunk(data(), "10.9.9.9:5070"))
    route = resolve("5125550199", DeviceCaller("ann"), directory, NOW)
    assert isinstance(route, ToTrunk) and (route.trunk.host, route.trunk.port) == ("10.9.9.9", 5070)
    emergency = resolve("911", DeviceCaller("ann"), directory, NOW)
    assert isinstance(emergency, Emergency) and emergency.trunk.port == 5070
    # A location with a trunk of its own keeps it.
    assert resolve("2145550199", DeviceCaller("ben"), directory, NOW).trunk.name == "dallas-gw"


def test_without_an_interconnect_calling_plan_calls_are_refused():
    route = resolve("5125550199", DeviceCaller("ann"), Directory.build(with_calling_plan_trunk(data(), None)), NOW)
    assert isinstance(route, Reject) and route.status == 503


@pytest.mark.parametrize("value", ["no-port", "host:0", ":5060", "bad host!:5060"])
def test_a_bad_interconnect_address_stops_start_up(tmp_path, value):
    path = tmp_path / "c.yaml"
    path.write_text(f"carrier:\n  calling_plan_trunk: '{value}'\n")
    with pytest.raises(ConfigError, match="carrier.calling_plan_trunk"):
        load_settings(path)
