"""Routing benchmark: resolve() calls per second over a directory of 1,000,000 numbers and
100,000 people, and the memory that directory takes.

Run from the project root with the project's interpreter:

    .venv/bin/python bench/routing.py [--seconds 3] [--numbers 1000000] [--people 100000]

The directory is 100 organisations of 10 locations each (US, GB, AU and DE in turn, each
with a routing prefix, outside-dial digit 9 in half of them, a trunk, a main number on an
auto attendant), 100 people per location with an extension, a direct number and one or two
phones, and the rest of the numbers unassigned, inactive or being ported in. The calls are
a fixed mix (extensions, routing prefix + extension, national and international numbers
with and without the outside digit, the organisation's own numbers, inbound DIDs from
trunks in E.164 and national form, main numbers, rejects, emergency calls), each checked
for the route it must get before anything is timed.

Memory is the growth of the process's resident set from before the records are made to
after the directory is built (records plus indexes: everything the snapshot holds), and
separately the growth the build alone adds. Rates are the best 100 ms window (the machine
is shared; the median is saved too). Figures go to bench/results/routing.json and, as one
line, to the last line of stdout. Exits non-zero when a route is wrong or a target missed
(at least 200,000 calls/s, under 1 GB).
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from routing.callers import DeviceCaller, TrunkCaller  # noqa: E402
from routing.directory import Directory  # noqa: E402
from routing.records import (  # noqa: E402
    AutoAttendantRecord,
    DeviceRecord,
    DirectoryData,
    LocationRecord,
    NumberRecord,
    OrganizationRecord,
    PersonRecord,
    TrunkRecord,
)
from routing.resolve import resolve  # noqa: E402
from routing.route import Emergency, Reject, RingPerson, RunAutoAttendant, ToTrunk  # noqa: E402

TARGET_RATE = 200_000
TARGET_BYTES = 1 << 30
LOCATIONS_PER_ORG = 10
COUNTRIES = {  # country: (calling code, national prefix, NSN length, emergency, example national number abroad)
    "US": ("1", "", 10, "911", "6175550123"),
    "GB": ("44", "0", 10, "999", "1614960000"),
    "AU": ("61", "0", 9, "000", "396001234"),
    "DE": ("49", "0", 10, "112", "8912345678"),
}
INTL_PREFIX = {"US": "011", "GB": "00", "AU": "0011", "DE": "00"}


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def nsn_for(country: str, loc_index: int, j: int) -> str:
    length = COUNTRIES[country][2]
    # Area digit 2-9 then the location and the number within it: unique per location.
    head = f"{2 + loc_index % 8}{loc_index:05d}"
    return (head + f"{j:06d}"[-(length - len(head)):])


def make_data(n_numbers: int, n_people: int) -> tuple[DirectoryData, dict]:
    n_locations = max(LOCATIONS_PER_ORG, n_people // 100)
    people_per_loc = n_people // n_locations
    numbers_per_loc = n_numbers // n_locations
    orgs, locations, people, devices, numbers, aas, trunks = [], [], [], [], [], [], []
    facts = {"locations": []}
    countries = list(COUNTRIES)
    for k in range(n_locations):
        o = k // LOCATIONS_PER_ORG
        org_id = f"org-{o}"
        if k % LOCATIONS_PER_ORG == 0:
            orgs.append(OrganizationRecord(org_id, f"Org {o}", "US", f"org{o}.example"))
        country = countries[(k // LOCATIONS_PER_ORG) % len(countries)]  # one country per org
        cc, natp, length, emergency, _ = COUNTRIES[country]
        loc_id = str(uuid.UUID(int=k + 1))
        aa_id = str(uuid.UUID(int=10**9 + k))
        trunk_name = f"pstn-{k}"
        main = "+" + cc + nsn_for(country, k, 0)
        outside = "9" if k % 2 == 0 else None
        locations.append(LocationRecord(
            loc_id, org_id, f"Site {k}", country, "UTC", f"8{k % LOCATIONS_PER_ORG}", outside, main,
            ("AUTO_ATTENDANT", aa_id), {"country": country, "city": f"City {k}"}, f"ops{k}@example.com",
            "LOCAL_GATEWAY", trunk_name))
        aas.append(AutoAttendantRecord(aa_id, loc_id, f"Main menu {k}", "1999"))
        trunks.append(TrunkRecord(f"trunk-{k}", org_id, trunk_name, f"10.{k // 256}.{k % 256}.1", 5060, "UDP"))
        numbers.append(NumberRecord(main, loc_id, "ACTIVE", None, None, True))
        loc_people = []
        for i in range(people_per_loc):
            pid = str(uuid.uuid4())
            e164 = "+" + cc + nsn_for(country, k, i + 1)
            person = PersonRecord(pid, org_id, loc_id, f"{pid}@example.com", "First", f"Last{i}",
                                  str(1000 + i), e164)
            people.append(person)
            loc_people.append(person)
            devices.append(DeviceRecord(f"u{k}x{i}", pid))
            if i % 2 == 0:
                devices.append(DeviceRecord(f"u{k}x{i}soft", pid))
            numbers.append(NumberRecord(e164, loc_id, "ACTIVE", pid, "PERSON"))
        spare = []
        for j in range(people_per_loc + 1, numbers_per_loc):
            e164 = "+" + cc + nsn_for(country, k, j)
            state = ("INACTIVE", "PORT_PENDING", "ACTIVE", "ACTIVE")[j % 4]
            numbers.append(NumberRecord(e164, loc_id, state))
            spare.append((e164, state))
        facts["locations"].append({"id": loc_id, "org": org_id, "country": country, "outside": outside,
                                   "trunk": trunk_name, "main": main, "people": loc_people,
                                   "spare": spare[:50], "k": k})
    return DirectoryData(orgs, locations, people, devices, numbers, aas, trunks), facts


def national(country: str, e164: str) -> str:
    cc, natp, *_ = COUNTRIES[country]
    return natp + e164[1 + len(cc):]


def make_calls(facts: dict, count: int, seed: int = 7) -> list[tuple[str, object, type, object]]:
    """(dialled, caller, expected route type, expected key) in a fixed mix."""
    rng = random.Random(seed)
    locs = facts["locations"]
    calls = []
    for n in range(count):
        loc = rng.choice(locs)
        me = rng.choice(loc["people"])
        caller = DeviceCaller(f"u{loc['k']}x{int(me.last_name[4:])}")
        country = loc["country"]
        outside = loc["outside"] or ""
        roll = rng.random()
        if roll < 0.35:
            other = rng.choice(loc["people"])
            calls.append((other.extension, caller, RingPerson, other.id))
        elif roll < 0.45:
            sibling = locs[(loc["k"] // LOCATIONS_PER_ORG) * LOCATIONS_PER_ORG + rng.randrange(LOCATIONS_PER_ORG)]
            other = rng.choice(sibling["people"])
            calls.append((f"8{sibling['k'] % LOCATIONS_PER_ORG}{other.extension}", caller, RingPerson, other.id))
        elif roll < 0.62:
            far = COUNTRIES[country][4][:-3] + f"{rng.randrange(1000):03d}"
            dialled = outside + COUNTRIES[country][1] + far
            calls.append((dialled, caller, ToTrunk, loc["trunk"]))
        elif roll < 0.67:
            abroad = rng.choice([c for c in COUNTRIES if c != country])
            acc, _, _, _, far = COUNTRIES[abroad]
            dialled = outside + INTL_PREFIX[country] + acc + far
            calls.append((dialled, caller, ToTrunk, loc["trunk"]))
        elif roll < 0.72:
            other = rng.choice(loc["people"])
            dialled = outside + national(country, other.phone_number)
            calls.append((dialled, caller, RingPerson, other.id))
        elif roll < 0.84:
            other = rng.choice(loc["people"])
            did = other.phone_number if rng.random() < 0.5 else national(country, other.phone_number)
            calls.append((did, TrunkCaller(loc["trunk"], "+12025550123"), RingPerson, other.id))
        elif roll < 0.89:
            calls.append((loc["main"], TrunkCaller(loc["trunk"], "02079460000"), RunAutoAttendant, None))
        elif roll < 0.98:
            e164, state = rng.choice(loc["spare"])
            status = {"ACTIVE": 404, "INACTIVE": 404, "PORT_PENDING": 404}[state]
            calls.append((e164, TrunkCaller(loc["trunk"], None), Reject, status))
        else:
            calls.append((outside + COUNTRIES[country][3], caller, Emergency, loc["id"]))
    return calls


def check(calls, directory, now) -> list[str]:
    wrong = []
    for dialled, caller, kind, key in calls:
        route = resolve(dialled, caller, directory, now)
        ok = type(route) is kind and (
            (kind is RingPerson and route.person_id == key)
            or (kind is ToTrunk and route.trunk.name == key)
            or (kind is Reject and route.status == key)
            or (kind is Emergency and route.location_id == key)
            or kind is RunAutoAttendant)
        if not ok:
            wrong.append(f"{dialled!r} from {caller}: expected {kind.__name__} {key}, got {route}")
    return wrong


def rates(calls, directory, now, seconds: float, window: float = 0.1) -> tuple[float, float]:
    window_rates = []
    end = time.perf_counter() + seconds
    n = len(calls)
    i = 0
    batch = 1000
    while True:
        done = 0
        start = time.perf_counter()
        while True:
            for dialled, caller, _k, _v in calls[i:i + batch]:
                resolve(dialled, caller, directory, now)
            done += len(calls[i:i + batch])
            i = (i + batch) % n
            t = time.perf_counter()
            if t - start >= window:
                break
        window_rates.append(done / (t - start))
        if t >= end:
            break
    window_rates.sort()
    return window_rates[-1], window_rates[len(window_rates) // 2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--numbers", type=int, default=1_000_000)
    ap.add_argument("--people", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=100_000, help="distinct calls in the mix")
    args = ap.parse_args()

    gc.collect()
    before = rss_bytes()
    t0 = time.perf_counter()
    data, facts = make_data(args.numbers, args.people)
    made = time.perf_counter()
    gc.collect()
    with_records = rss_bytes()
    directory = Directory.build(data)
    built = time.perf_counter()
    gc.collect()
    after = rss_bytes()
    del data  # the directory holds what it needs
    gc.collect()
    snapshot_bytes = after - before
    index_bytes = after - with_records

    if directory.problems:
        print(f"routing: FAILED: directory problems: {directory.problems[:3]}")
        return 1
    now = datetime.now(UTC)
    calls = make_calls(facts, args.calls)
    wrong = check(calls, directory, now)
    if wrong:
        for line in wrong[:5]:
            print(line)
        print(f"routing: FAILED: {len(wrong)} of {len(calls)} calls routed wrongly")
        return 1
    gc.freeze()  # the directory is long-lived: keep the collector from walking it while timing
    best, median = rates(calls, directory, now, args.seconds)

    result = {
        "benchmark": "routing",
        "numbers": len(directory.numbers), "people": len(directory.people),
        "devices": len(directory.devices), "locations": len(directory.locations),
        "calls_in_mix": len(calls),
        "resolve_per_s": round(best), "resolve_median_per_s": round(median),
        "snapshot_bytes": snapshot_bytes, "build_index_bytes": index_bytes,
        "make_records_s": round(made - t0, 3), "build_s": round(built - made, 3),
        "target_resolve_per_s": TARGET_RATE, "target_snapshot_bytes": TARGET_BYTES,
        "python": platform.python_version(), "machine": platform.machine(),
    }
    out = ROOT / "bench" / "results" / "routing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    met = best >= TARGET_RATE and snapshot_bytes < TARGET_BYTES
    print(f"build {built - made:.2f} s (records made in {made - t0:.2f} s); indexes alone "
          f"{index_bytes / 2**20:,.0f} MiB; median window {median:,.0f} resolve/s")
    print(f"routing: {best:,.0f} resolve/s (target {TARGET_RATE:,}), snapshot "
          f"{snapshot_bytes / 2**20:,.0f} MiB for {len(directory.numbers):,} numbers and "
          f"{len(directory.people):,} people (target < 1024 MiB){'' if met else ' — TARGET MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
