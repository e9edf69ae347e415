"""An auto attendant as provisioning stores it, turned into what the IVR runs.

The provisioning API's documents (``GET /v1/autoAttendants/{id}`` and the ``autoAttendant``
change events carry the same JSON; schedules likewise) become an ``Attendant``: the menu
engine's ``AttendantConfig`` plus the ``Schedule`` that picks the business-hours or after-hours
menu. The wiring builds one per attendant when a change event arrives and hands it to each
call's ``MenuSession``; nothing here touches the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ivr.menu import (
    AttendantConfig,
    DialingScope,
    Greeting,
    GreetingKind,
    KeyAction,
    Menu,
    MenuAction,
    MenuDirectory,
    MenuSession,
)
from ivr.schedule import Schedule, schedule_from_documents

__all__ = ["AFTER_HOURS_MENU", "BUSINESS_HOURS_MENU", "Attendant", "attendant_config", "build_attendant"]

# Top menus get ids a submenu id (letters, digits, - and _) can never take.
BUSINESS_HOURS_MENU = "@businessHours"
AFTER_HOURS_MENU = "@afterHours"


def _action(document: Mapping[str, Any] | None, default: MenuAction) -> KeyAction:
    if not document:
        return KeyAction(default)
    return KeyAction(MenuAction(document["action"]), document.get("value"), document.get("description") or "")


def _menu(document: Mapping[str, Any]) -> Menu:
    kind = GreetingKind(document.get("greeting", "DEFAULT"))
    value = {GreetingKind.CUSTOM: document.get("announcementId"),
             GreetingKind.TEXT: document.get("greetingText")}.get(kind)
    keys = {k["key"]: _action(k, MenuAction.EXIT) for k in document.get("keyConfigurations", ())}
    return Menu(Greeting(kind, value), keys, bool(document.get("extensionEnabled", True)))


def attendant_config(document: Mapping[str, Any]) -> AttendantConfig:
    """The engine's configuration from an auto attendant document (raises MenuConfigError)."""
    menus = {BUSINESS_HOURS_MENU: _menu(document["businessHoursMenu"]),
             AFTER_HOURS_MENU: _menu(document["afterHoursMenu"])}
    for submenu in document.get("submenus", ()):
        menus[submenu["id"]] = _menu(submenu)
    no_input = document.get("noInput") or {}
    invalid = document.get("invalidInput") or {}
    return AttendantConfig(
        menus=menus,
        business_hours_menu=BUSINESS_HOURS_MENU,
        after_hours_menu=AFTER_HOURS_MENU,
        extension_dialing_scope=DialingScope(document.get("extensionDialing", "LOCATION")),
        name_dialing_scope=DialingScope(document.get("nameDialing", "LOCATION")),
        no_input_timeout=float(no_input.get("timeoutSeconds", 10)),
        no_input_repeats=int(no_input.get("repeats", 2)),
        no_input_final=_action(no_input.get("finalAction"), MenuAction.EXIT),
        invalid_limit=int(invalid.get("limit", 3)),
        invalid_final=_action(invalid.get("finalAction"), MenuAction.EXIT),
        inter_digit_timeout=float(document.get("interDigitTimeoutSeconds", 3)),
        transfer_fallback=_action(document.get("transferFallback"), MenuAction.REPEAT_MENU),
    )


@dataclass(frozen=True, slots=True)
class Attendant:
    id: str
    name: str
    location_id: str
    enabled: bool
    language: str
    config: AttendantConfig
    schedule: Schedule

    def session(self, directory: MenuDirectory, now_utc: datetime) -> MenuSession:
        """A caller's menu session, starting in the menu the schedule picks at ``now_utc``."""
        return MenuSession(self.config, directory, self.schedule.which_menu(now_utc))


def build_attendant(document: Mapping[str, Any], time_zone: str,
                    schedules: Mapping[str, Mapping[str, Any]]) -> Attendant:
    """``schedules``: schedule documents by id (at least the two the attendant names).

    A schedule the attendant names but ``schedules`` lacks is a KeyError: the caller's
    snapshot is out of step, which must not silently become "always open".
    """
    business_id, holiday_id = document.get("businessScheduleId"), document.get("holidayScheduleId")
    business = schedules[business_id] if business_id else None
    holidays = schedules[holiday_id] if holiday_id else None
    schedule = schedule_from_documents(time_zone, business.get("hours") if business else None,
                                       holidays.get("holidays", ()) if holidays else ())
    return Attendant(document["id"], document["name"], document["locationId"], bool(document.get("enabled", True)),
                     document.get("language", "en"), attendant_config(document), schedule)
