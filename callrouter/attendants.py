"""Wiring for auto attendants: what the IVR's call side needs from the store and the directory.

Attendants are read from the store (as the API documents them) whenever the store changes,
off the event loop, and swapped in whole like the routing directory; the menu directory each
attendant's name and extension dialing searches is derived from the routing directory.
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import select

from ivr.attendant import Attendant, build_attendant
from ivr.menu import DialingScope, DirectorySnapshot, GreetingKind, PromptKind, PromptRef, TargetKind, Transfer
from ivr.names import NameEntry
from ivr.prompts import PromptLibrary, read_wav, speak
from provisioning.attendants import attendant_document, schedule_document
from provisioning.store import Location, Store
from provisioning.tables_ivr import AnnouncementAudio, AutoAttendant, Schedule
from routing.directory import Directory
from routing.records import PersonRecord
from routing.route import CallerId, RingPerson

log = logging.getLogger("callrouter.attendants")


def load_attendants(store: Store) -> dict[str, Attendant]:
    """Every attendant of the store, ready to run; one that cannot be built is logged and left out."""
    out: dict[str, Attendant] = {}
    with store.session() as session:
        zones = dict(session.execute(select(Location.id, Location.time_zone)).all())
        schedules = {row.id: schedule_document(row) for row in session.scalars(select(Schedule))}
        for row in session.scalars(select(AutoAttendant)):
            try:
                document = attendant_document(session, row)
                out[row.id] = build_attendant(document, zones[row.location_id], schedules)
            except Exception as exc:  # a bad row must not take the other attendants down
                log.error("auto attendant %s (%s) cannot run: %s", row.name, row.id, exc)
    for attendant in out.values():
        _prewarm_speech(attendant)
    return out


def _prewarm_speech(attendant: Attendant) -> None:
    """Synthesize an attendant's spoken texts now (in the loader's thread), not during a call."""
    for menu in attendant.config.menus.values():
        texts = [a.description for a in menu.keys.values() if a.description]
        if menu.greeting.kind is GreetingKind.TEXT and menu.greeting.value:
            texts.append(menu.greeting.value)
        for text in texts:
            try:
                speak(text, attendant.language)
            except Exception as exc:
                log.warning("text-to-speech failed for %r: %s", text, exc)


class AttendantSupport:
    """The lookups ivr.calls.AttendantCalls is built with."""

    def __init__(self, store: Store, directory: Callable[[], Directory], prompts: PromptLibrary):
        self.store = store
        self.directory = directory
        self.prompts = prompts
        self.attendants: dict[str, Attendant] = {}
        self._menus: dict[tuple[int, str], DirectorySnapshot] = {}
        self._announcements: dict[str, np.ndarray] = {}

    def reload(self) -> None:
        """Runs in a worker thread after a store change."""
        self.attendants = load_attendants(self.store)
        self._menus = {}
        self._announcements = {}

    def attendant(self, attendant_id: str) -> Attendant | None:
        return self.attendants.get(attendant_id)

    # -- who an attendant can reach ----------------------------------------------------------------
    def menu_directory(self, attendant: Attendant) -> DirectorySnapshot:
        d = self.directory()
        key = (id(d), attendant.id)
        snapshot = self._menus.get(key)
        if snapshot is None:
            location = d.location(attendant.location_id)
            org_id = location.org_id if location else None
            org_locations = [lid for lid, loc in d.locations.items() if loc.org_id == org_id]
            local_ext = list(d.extensions.get(attendant.location_id, {}))
            all_ext = [ext for lid in org_locations for ext in d.extensions.get(lid, {})]
            people = [p for p in d.people.values() if p.org_id == org_id]
            snapshot = DirectorySnapshot(
                local_ext, all_ext,
                [_name(p) for p in people if p.location_id == attendant.location_id],
                [_name(p) for p in people])
            self._menus[key] = snapshot
        return snapshot

    def transfer_route(self, attendant: Attendant, call: Any, out: Transfer) -> RingPerson | None:
        d = self.directory()
        person: PersonRecord | None = None
        kind, target = out.target_kind, out.target
        if kind is TargetKind.PERSON:
            person = d.person(target)
        elif kind in (TargetKind.EXTENSION, TargetKind.OPERATOR) and not target.startswith("+") and len(target) <= 6:
            scope = attendant.config.extension_dialing_scope
            location = d.location(attendant.location_id)
            candidates = [attendant.location_id]
            if scope is DialingScope.ENTERPRISE and location is not None:
                candidates += [lid for lid, loc in d.locations.items()
                               if loc.org_id == location.org_id and lid != attendant.location_id]
            for lid in candidates:
                callee = d.extensions.get(lid, {}).get(target)
                if isinstance(callee, PersonRecord):
                    person = callee
                    break
        else:
            number = d.number(target)
            if number is not None and number.state == "ACTIVE" and number.owner_type == "PERSON":
                person = d.person(number.owner_id)
        if person is None:
            return None
        usernames = d.sip_usernames(person.id)
        if not usernames:
            return None
        caller = call.caller.get("number") or call.invite.from_.uri.user
        shown = CallerId(caller, call.invite.from_.display.strip('"') if call.invite.from_.display else None)
        name = f"{person.first_name} {person.last_name}".strip() or person.email
        return RingPerson(person.id, name, usernames, shown, target, person.location_id)

    # -- audio -----------------------------------------------------------------------------------------
    def clip(self, ref: PromptRef, language: str) -> tuple[str, np.ndarray] | None:
        if ref.kind is PromptKind.PROMPT:
            if ref.value not in self.prompts:
                return None
            return f"prompt:{ref.value}", self.prompts.pcm(ref.value)
        if ref.kind is PromptKind.ANNOUNCEMENT:
            pcm = self._announcements.get(ref.value)
            if pcm is None:
                with self.store.session() as session:
                    wav = session.scalar(select(AnnouncementAudio.wav).where(
                        AnnouncementAudio.announcement_id == ref.value))
                if wav is None:
                    return None
                pcm = self._announcements[ref.value] = read_wav(wav)
            return f"announcement:{ref.value}", pcm
        if ref.kind is PromptKind.TEXT:
            digest = hashlib.sha256(f"{language}\0{ref.value}".encode()).hexdigest()[:16]
            return f"text:{digest}", speak(ref.value, language)
        return None


def _name(person: PersonRecord) -> NameEntry:
    return NameEntry(person.id, person.first_name, person.last_name)
