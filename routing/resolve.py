"""Where a call goes: resolve(dialled, caller, directory, now) -> Route.

From one of our phones, in this order (the first that applies wins):
  1. the country's emergency numbers, also behind the outside-dial digit (911, 9911): always
     allowed, whatever else the person may or may not have;
  2. an extension of the caller's own location;
  3. a routing prefix plus an extension of another location of the organisation;
  4. a number in E.164 (+...), international (00/011/0011... per country) or national form,
     optionally behind the outside-dial digit. A number the organisation owns stays inside
     (its owner, or the location's main-number destination; ported-in-progress, inactive and
     unassigned numbers are refused with the reason); anything else leaves through the caller
     location's PSTN trunk.
From a trunk: the dialled number (E.164, with or without "+", or national in the trunk's
country) reaches its owner or its location's main-number destination.

Pure and cheap: dict lookups and string slicing, no phonenumbers parsing on the way (the
per-country facts are in DialPlan); `now` is accepted for time-dependent rules to come.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .callers import DeviceCaller, TrunkCaller
from .dialplan import SEPARATORS, DialPlan, lengths_for, region_of, regions_for, split_country_code
from .directory import Callee, Directory
from .records import AutoAttendantRecord, LocationRecord, NumberRecord, PersonRecord, TrunkRecord
from .route import CallerId, Emergency, Reject, RingPerson, Route, RunAutoAttendant, ToTrunk

# Rejections that carry no detail are shared: one object each instead of one per call.
UNKNOWN_DEVICE = Reject(403, "device not provisioned")
NO_PERSON = Reject(403, "device not assigned to a person")
UNKNOWN_TRUNK = Reject(403, "call from an unknown trunk")
UNKNOWN_CALLER = Reject(403, "caller not identified")
NOTHING_DIALLED = Reject(484, "address incomplete: nothing dialled")
INCOMPLETE = Reject(484, "address incomplete")
NO_PSTN = Reject(503, "no PSTN connection")
PORTING = Reject(404, "number is being ported")
NOT_ACTIVATED = Reject(404, "number not yet activated")
NOT_ASSIGNED = Reject(404, "number not assigned")
NOT_OURS = Reject(404, "number not in service here")
NO_MAIN_DESTINATION = Reject(404, "main number has no destination")
NOT_A_NUMBER = Reject(404, "not a number or an extension")
AA_DISABLED = Reject(480, "auto attendant is disabled")
NO_DEVICE = Reject(480, "no phone assigned to the person")


def resolve(dialled: str, caller: DeviceCaller | TrunkCaller, directory: Directory, now: datetime) -> Route:
    digits = dialled if dialled.isdigit() else dialled.translate(SEPARATORS)
    if isinstance(caller, DeviceCaller):
        return _from_device(digits, caller, directory)
    if isinstance(caller, TrunkCaller):
        return _from_trunk(digits, caller, directory)
    return UNKNOWN_CALLER


# -- calls from our phones ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CallerContext:
    """Everything about one phone's owner that routing their calls needs, gathered on the
    first call (a directory is never changed, so it stays true): one dict lookup per call
    instead of six in a million-entry directory, where each lookup is a cache miss."""
    person: PersonRecord
    location: LocationRecord
    plan: DialPlan
    extensions: dict[str, Callee]   # the caller's own location's
    prefixes: dict[str, str]        # the organisation's routing prefixes -> location id
    prefix_lengths: tuple[int, ...]
    outside: str                    # the outside-dial digit, "" when there is none
    trunk: TrunkRecord | None
    name: str
    local_id: CallerId              # shown to a callee in the caller's location
    remote_id: CallerId             # shown to a callee in another location
    outbound_id: CallerId           # shown on the PSTN


def _caller_context(d: Directory, sip_username: str) -> CallerContext | Reject:
    device = d.devices.get(sip_username) or d.devices.get(sip_username.lower())
    if device is None:
        return UNKNOWN_DEVICE
    person = d.people.get(device.person_id) if device.person_id is not None else None
    if person is None:
        return NO_PERSON
    loc = d.locations[person.location_id]
    name = _display_name(person)
    ext = person.extension
    if ext:
        local = CallerId(ext, name)
        remote = CallerId(loc.routing_prefix + ext if loc.routing_prefix else person.phone_number or ext, name)
    else:
        local = remote = CallerId(person.phone_number, name)
    own = d.numbers.get(person.phone_number) if person.phone_number else None
    shown = person.phone_number if own is not None and own.state == "ACTIVE" else loc.main_number
    ctx = CallerContext(
        person=person, location=loc, plan=d.plans[loc.id], extensions=d.extensions[loc.id],
        prefixes=d.prefixes.get(loc.org_id, {}), prefix_lengths=d.prefix_lengths.get(loc.org_id, ()),
        outside=loc.outside_dial_digit or "", trunk=d.location_trunk.get(loc.id), name=name,
        local_id=local, remote_id=remote, outbound_id=CallerId(shown, name))
    d.memo[sip_username] = ctx
    return ctx


def _from_device(digits: str, caller: DeviceCaller, d: Directory) -> Route:
    ctx = d.memo.get(caller.sip_username)
    if ctx is None:
        ctx = _caller_context(d, caller.sip_username)
        if type(ctx) is Reject:
            return ctx
    if not digits:
        return NOTHING_DIALLED
    plan = ctx.plan
    outside = ctx.outside
    if len(digits) <= plan.emergency_max_length + len(outside):
        if plan.is_emergency(digits):
            return _emergency(digits, digits, ctx, d)
        if outside and digits.startswith(outside) and plan.is_emergency(digits[len(outside):]):
            return _emergency(digits, digits[len(outside):], ctx, d)

    if digits[0] == "+":
        target = _international(digits[1:])
    elif not digits.isdigit():
        return NOT_A_NUMBER
    else:
        callee = ctx.extensions.get(digits)
        if callee is not None:
            return _to_callee(callee, ctx.local_id, digits, d)
        for size in ctx.prefix_lengths:
            location_id = ctx.prefixes.get(digits[:size])
            if location_id is not None:
                callee = d.extensions[location_id].get(digits[size:])
                if callee is not None:
                    return _to_callee(callee, _shown_inside(ctx, location_id), digits, d)
        if outside and len(digits) > len(outside) and digits.startswith(outside):
            target = _national(digits[len(outside):], plan)
            if type(target) is Reject:
                # The digit may also begin a number dialled without it (outside digit 0
                # and a national number, say): the explicit reading wins when it is valid.
                plain = _national(digits, plan)
                if type(plain) is not Reject:
                    target = plain
        else:
            target = _national(digits, plan)
    if type(target) is Reject:
        return target
    e164, cc, nsn = target

    org_id = ctx.location.org_id
    number = d.numbers.get(e164)
    if number is not None:
        if d.locations[number.location_id].org_id == org_id:
            return _owned(number, e164, _shown_inside(ctx, number.location_id), digits, d)
    else:
        owner = d.owner_of_number.get(e164)
        if owner is not None and d.locations[owner.location_id].org_id == org_id:
            return _to_callee(owner, _shown_inside(ctx, owner.location_id), digits, d)
        main_of = d.main_numbers.get(e164)
        if main_of is not None and d.locations[main_of].org_id == org_id:
            return _main_destination(d.locations[main_of], _shown_inside(ctx, main_of), digits, d)

    if ctx.trunk is None:
        return NO_PSTN
    if cc != plan.country_code:
        international, country = True, region_of(cc, nsn)
    elif len(regions_for(cc)) > 1:
        country = region_of(cc, nsn)
        international = country != plan.country
    else:
        international, country = False, plan.country
    return ToTrunk(ctx.trunk, e164, ctx.outbound_id, international, digits, country)


def _shown_inside(ctx: CallerContext, callee_location: str) -> CallerId:
    """Shown to a callee inside the organisation: what they would dial to call back."""
    return ctx.local_id if callee_location == ctx.location.id else ctx.remote_id


def _emergency(dialled: str, service: str, ctx: CallerContext, d: Directory) -> Emergency:
    person, loc = ctx.person, ctx.location
    own = d.numbers.get(person.phone_number) if person.phone_number else None
    # Only a number that rings here can call back: a number still being ported rings at the
    # old carrier, so the location's main number is given instead.
    callback = person.phone_number if own is not None and own.state == "ACTIVE" else loc.main_number
    esa = own.emergency_address if own is not None and own.emergency_address else loc.emergency_address
    return Emergency(ctx.trunk, dialled, service, callback, esa, loc.id, loc.contact_email,
                     ctx.name, person.id)


# -- calls from trunks -------------------------------------------------------------------------
def _from_trunk(digits: str, caller: TrunkCaller, d: Directory) -> Route:
    trunk = d.trunks_by_id.get(caller.trunk_id) if caller.trunk_id else d.trunk_by_name.get(caller.trunk_name)
    if trunk is None:
        return UNKNOWN_TRUNK
    if not digits:
        return NOTHING_DIALLED
    plan = d.trunk_plan.get(trunk.id)
    number = None
    e164 = None
    for candidate in _inbound_forms(digits, plan):
        number = d.numbers.get(candidate)
        if number is not None or candidate in d.main_numbers or candidate in d.owner_of_number:
            e164 = candidate
            break
    if e164 is None:
        return NOT_OURS
    caller_id = CallerId(_caller_number(caller.from_number, plan), None)
    if number is not None:
        if d.locations[number.location_id].org_id != trunk.org_id:
            return NOT_OURS
        return _owned(number, e164, caller_id, digits, d)
    owner = d.owner_of_number.get(e164)
    if owner is not None:
        if d.locations[owner.location_id].org_id != trunk.org_id:
            return NOT_OURS
        return _to_callee(owner, caller_id, digits, d)
    loc = d.locations[d.main_numbers[e164]]
    if loc.org_id != trunk.org_id:
        return NOT_OURS
    return _main_destination(loc, caller_id, digits, d)


def _inbound_forms(digits: str, plan: DialPlan | None) -> list[str]:
    """The E.164 numbers a carrier may mean: "+4420...", "4420..." (E.164 without its plus,
    as many carriers send it), or a national form of the trunk's country."""
    if digits[0] == "+":
        return [digits]
    if not digits.isdigit():
        return []
    if plan is None:
        return ["+" + digits]
    national = _national(digits, plan)
    if type(national) is Reject:
        return ["+" + digits]
    return [national[0], "+" + digits]  # a carrier in the country speaks its national forms


def _caller_number(raw: str | None, plan: DialPlan | None) -> str | None:
    """A trunk caller's number in E.164 where it can be read as one, else as sent."""
    if not raw:
        return None
    digits = raw.translate(SEPARATORS)
    if digits.startswith("+"):
        return digits
    if not digits.isdigit():
        return None  # "anonymous", "restricted": no number to show
    national = _national(digits, plan) if plan is not None else None
    if national is not None and type(national) is not Reject:
        return national[0]
    full = _international(digits)
    return full[0] if type(full) is not Reject else digits


# -- numbers the organisation owns ------------------------------------------------------------
def _owned(number: NumberRecord, e164: str, caller_id: CallerId, dialled: str, d: Directory) -> Route:
    state = number.state
    if state != "ACTIVE":
        return PORTING if state == "PORT_PENDING" else NOT_ACTIVATED
    main_of = d.main_numbers.get(e164)
    if main_of is not None:
        # A main number is for its destination; an owner recorded on it as well only
        # matters while no destination is set.
        route = _main_destination(d.locations[main_of], caller_id, dialled, d)
        if route is not NO_MAIN_DESTINATION or number.owner_id is None:
            return route
    if number.owner_id is not None:
        if number.owner_type == "AUTO_ATTENDANT":
            callee = d.auto_attendants.get(number.owner_id)
        else:
            callee = d.people.get(number.owner_id)
        if callee is not None:
            return _to_callee(callee, caller_id, dialled, d)
    callee = d.owner_of_number.get(e164)
    if callee is not None:
        return _to_callee(callee, caller_id, dialled, d)
    return NOT_ASSIGNED


def _main_destination(loc: LocationRecord, caller_id: CallerId, dialled: str, d: Directory) -> Route:
    target = loc.main_destination
    if target is None:
        return NO_MAIN_DESTINATION
    kind, target_id = target
    callee = d.auto_attendants.get(target_id) if kind == "AUTO_ATTENDANT" else d.people.get(target_id)
    if callee is None:
        return NO_MAIN_DESTINATION
    return _to_callee(callee, caller_id, dialled, d)


def _to_callee(callee: PersonRecord | AutoAttendantRecord, caller_id: CallerId, dialled: str,
               d: Directory) -> Route:
    if type(callee) is PersonRecord:
        usernames = d.usernames.get(callee.id)
        if not usernames:
            return NO_DEVICE
        return RingPerson(callee.id, _display_name(callee), usernames, caller_id, dialled, callee.location_id)
    if not callee.enabled:
        return AA_DISABLED
    return RunAutoAttendant(callee.id, callee.location_id, callee.name, caller_id, dialled)


def _display_name(person: PersonRecord) -> str:
    return f"{person.first_name} {person.last_name}".strip() or person.email


# -- reading dialled digits as E.164 ----------------------------------------------------------
Target = tuple[str, str, str]  # (E.164, country code, national significant number)


def _national(digits: str, plan: DialPlan) -> Target | Reject:
    """A number dialled the way people dial in `plan`'s country (digits only, no "+")."""
    match = plan.international_prefix.match(digits)
    if match is not None and match.end() < len(digits):
        return _international(digits[match.end():])
    cc = plan.country_code
    prefix = plan.national_prefix
    if prefix and digits.startswith(prefix):
        nsn = digits[len(prefix):]
        if len(nsn) in plan.lengths:
            return "+" + cc + nsn, cc, nsn
    if (plan.prefix_optional or not prefix) and len(digits) in plan.lengths:
        return "+" + cc + digits, cc, digits
    needed = plan.min_length + (len(prefix) if prefix and not plan.prefix_optional else 0)
    if len(digits) < needed or match is not None:
        return INCOMPLETE
    if prefix and not plan.prefix_optional and not digits.startswith(prefix):
        return Reject(404, f"not a number in {plan.country}: national numbers begin with {prefix}")
    return Reject(404, f"not a number in {plan.country}: wrong number of digits")


def _international(rest: str) -> Target | Reject:
    """The part of an international number after "+" or the international prefix."""
    if not rest.isdigit():
        return Reject(404, "not a valid number") if rest else INCOMPLETE
    split = split_country_code(rest)
    if split is None:
        return INCOMPLETE if len(rest) < 3 else Reject(404, f"no country has the calling code of +{rest[:3]}")
    cc, nsn = split
    lengths = lengths_for(cc)
    if len(nsn) in lengths:
        return "+" + rest, cc, nsn
    if len(nsn) < min(lengths):
        return INCOMPLETE
    return Reject(404, f"not a valid number: too many digits for +{cc}")
