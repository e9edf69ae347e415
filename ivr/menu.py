"""The auto-attendant menu engine: one caller's walk through the phone menus, sans-IO.

Modelled on Webex Calling's auto attendant. A ``MenuSession`` takes events (``start``,
``digit``, ``prompt_finished``, ``timer``, ``transfer_failed``), each with the current time in
seconds (any monotonic clock), and returns the actions for its shell to carry out: ``Play``,
``StopPlayback``, ``Transfer`` and ``Hangup``. It sets at most one timer at a time, exposed as
``next_deadline()``; the shell calls ``timer(now)`` once that time has come (early or repeated
calls are harmless).

Contract with the shell:
- ``prompt_finished`` is reported only for the ``Play`` currently in effect, after it played to
  the end. After ``StopPlayback`` or a newer ``Play`` the older playback is forgotten.
- ``Transfer`` is the end of the menu unless the shell reports ``transfer_failed`` (nobody
  answered, busy, unreachable); the session then follows the attendant's fallback.
- ``Hangup`` ends the session; every later event returns no actions.

Why digits are not acted on at once when an extension could start with them: with direct
extension dialing, "1" could be the key for sales or the first digit of extension 1234, so the
engine waits for the next digit, "#", or the inter-digit timeout. A key that can only mean one
thing (no extension begins with it) acts at once, and so does a complete extension that no
longer extension extends.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Protocol

from ivr.names import NameEntry, NameIndex
from ivr.schedule import MenuKind

__all__ = [
    "AttendantConfig", "DialingScope", "DirectorySnapshot", "Greeting", "GreetingKind", "Hangup",
    "KeyAction", "Menu", "MenuAction", "MenuConfigError", "MenuDirectory", "MenuOutput", "MenuSession",
    "Play", "PromptKind", "PromptRef", "StopPlayback", "TargetKind", "Transfer",
]

KEYS = "0123456789*#"
KEY_ORDER = "1234567890*#"  # the order a default greeting lists them in


class MenuConfigError(ValueError):
    """An attendant definition the engine cannot run; the message names the menu and key."""


class MenuAction(StrEnum):
    TRANSFER_WITHOUT_PROMPT = "TRANSFER_WITHOUT_PROMPT"
    TRANSFER_WITH_PROMPT = "TRANSFER_WITH_PROMPT"
    TRANSFER_TO_OPERATOR = "TRANSFER_TO_OPERATOR"
    NAME_DIALING = "NAME_DIALING"
    EXTENSION_DIALING = "EXTENSION_DIALING"
    REPEAT_MENU = "REPEAT_MENU"
    EXIT = "EXIT"
    GO_TO_MENU = "GO_TO_MENU"
    RETURN_TO_PREVIOUS_MENU = "RETURN_TO_PREVIOUS_MENU"
    PLAY_ANNOUNCEMENT = "PLAY_ANNOUNCEMENT"


TRANSFERS = frozenset({MenuAction.TRANSFER_WITHOUT_PROMPT, MenuAction.TRANSFER_WITH_PROMPT,
                       MenuAction.TRANSFER_TO_OPERATOR})
# What may end a menu when the caller stays silent or keeps pressing wrong keys.
FINAL_ACTIONS = TRANSFERS | {MenuAction.EXIT}
# What happens when a transfer is not answered: back to the menu, elsewhere, or goodbye.
FALLBACK_ACTIONS = TRANSFERS | {MenuAction.EXIT, MenuAction.REPEAT_MENU}
_NEEDS_VALUE = TRANSFERS | {MenuAction.GO_TO_MENU, MenuAction.PLAY_ANNOUNCEMENT}
_TARGET = re.compile(r"^\+?[0-9]{2,15}$")


class GreetingKind(StrEnum):
    DEFAULT = "DEFAULT"
    CUSTOM = "CUSTOM"  # an uploaded announcement
    TEXT = "TEXT"  # spoken by text-to-speech


class DialingScope(StrEnum):
    LOCATION = "LOCATION"
    ENTERPRISE = "ENTERPRISE"


class TargetKind(StrEnum):
    EXTENSION = "EXTENSION"
    NUMBER = "NUMBER"
    PERSON = "PERSON"
    OPERATOR = "OPERATOR"


class PromptKind(StrEnum):
    PROMPT = "PROMPT"  # one of the default set in prompts/ (manifest id)
    ANNOUNCEMENT = "ANNOUNCEMENT"  # an uploaded announcement, by id
    TEXT = "TEXT"  # text for text-to-speech


# Ids in prompts/manifest.json that the engine plays (a test keeps the two in step).
class PromptId(StrEnum):
    GREETING_BUSINESS_HOURS = "greeting_business_hours"
    GREETING_AFTER_HOURS = "greeting_after_hours"
    EXTENSION_ANY_TIME = "extension_any_time"
    INVALID_OPTION = "invalid_option"
    TRANSFER_HOLD = "transfer_hold"
    EXTENSION_INVALID = "extension_invalid"
    NO_ONE_AVAILABLE = "no_one_available"
    GOODBYE = "goodbye"
    ENTER_EXTENSION = "enter_extension"
    NAME_ENTER = "name_enter"
    NAME_NOT_FOUND = "name_not_found"
    NAME_CONFIRM = "name_confirm"
    NAME_NO_MORE = "name_no_more"
    FOR = "for"
    PRESS = "press"


def key_prompt_id(key: str) -> str:
    return {"*": "star", "#": "pound"}.get(key, f"digit_{key}")


@dataclass(frozen=True, slots=True)
class PromptRef:
    kind: PromptKind
    value: str

    @classmethod
    def prompt(cls, prompt_id: str) -> PromptRef:
        return cls(PromptKind.PROMPT, str(prompt_id))


# --- actions out ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Play:
    prompts: tuple[PromptRef, ...]
    barge_in: bool  # a digit pressed meanwhile stops it (the engine then sends StopPlayback)


@dataclass(frozen=True, slots=True)
class StopPlayback:
    pass


@dataclass(frozen=True, slots=True)
class Transfer:
    target_kind: TargetKind
    target: str  # an extension, a number, a person id, or the operator's extension/number
    with_prompt: bool  # the caller has just heard "please hold while your call is transferred"


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: str  # EXIT, NO_INPUT, INVALID_INPUT, TRANSFER_FAILED


MenuOutput = Play | StopPlayback | Transfer | Hangup


# --- configuration -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class KeyAction:
    action: MenuAction
    value: str | None = None  # transfer target, submenu id or announcement id
    description: str = ""  # "sales": a DEFAULT greeting says "for sales, press 1"

    def target_kind(self) -> TargetKind:
        """Operator transfers are OPERATOR; '+…' and anything longer than 6 digits is a NUMBER."""
        if self.action is MenuAction.TRANSFER_TO_OPERATOR:
            return TargetKind.OPERATOR
        value = self.value or ""
        return TargetKind.NUMBER if value.startswith("+") or len(value) > 6 else TargetKind.EXTENSION


@dataclass(frozen=True, slots=True)
class Greeting:
    kind: GreetingKind = GreetingKind.DEFAULT
    value: str | None = None  # announcement id (CUSTOM) or the text (TEXT)


@dataclass(frozen=True, slots=True)
class Menu:
    greeting: Greeting = Greeting()
    keys: Mapping[str, KeyAction] = field(default_factory=dict)
    extension_dialing: bool = True  # callers may dial an extension directly from this menu

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))


@dataclass(frozen=True, slots=True)
class AttendantConfig:
    menus: Mapping[str, Menu]
    business_hours_menu: str = MenuKind.BUSINESS_HOURS.value
    after_hours_menu: str = MenuKind.AFTER_HOURS.value
    extension_dialing_scope: DialingScope = DialingScope.LOCATION
    name_dialing_scope: DialingScope = DialingScope.LOCATION
    no_input_timeout: float = 10.0
    no_input_repeats: int = 2
    no_input_final: KeyAction = KeyAction(MenuAction.EXIT)
    invalid_limit: int = 3
    invalid_final: KeyAction = KeyAction(MenuAction.EXIT)
    inter_digit_timeout: float = 3.0
    max_extension_digits: int = 10
    transfer_fallback: KeyAction = KeyAction(MenuAction.REPEAT_MENU)

    def __post_init__(self) -> None:
        object.__setattr__(self, "menus", MappingProxyType(dict(self.menus)))
        for top in (self.business_hours_menu, self.after_hours_menu):
            if top not in self.menus:
                raise MenuConfigError(f"menu {top!r} is not defined (menus: {', '.join(self.menus) or 'none'})")
        if not 1 <= self.no_input_timeout <= 60:
            raise MenuConfigError(f"noInputTimeout must be 1 to 60 seconds, got {self.no_input_timeout}")
        if not 0 <= self.no_input_repeats <= 3:
            raise MenuConfigError(f"noInputRepeats must be 0 to 3, got {self.no_input_repeats}")
        if not 1 <= self.invalid_limit <= 10:
            raise MenuConfigError(f"invalidLimit must be 1 to 10, got {self.invalid_limit}")
        if not 1 <= self.inter_digit_timeout <= 10:
            raise MenuConfigError(f"interDigitTimeout must be 1 to 10 seconds, got {self.inter_digit_timeout}")
        if not 2 <= self.max_extension_digits <= 15:
            raise MenuConfigError(f"maxExtensionDigits must be 2 to 15, got {self.max_extension_digits}")
        self._check_action("noInputFinal", self.no_input_final, FINAL_ACTIONS)
        self._check_action("invalidFinal", self.invalid_final, FINAL_ACTIONS)
        self._check_action("transferFallback", self.transfer_fallback, FALLBACK_ACTIONS)
        for menu_id, menu in self.menus.items():
            if menu.greeting.kind is not GreetingKind.DEFAULT and not menu.greeting.value:
                raise MenuConfigError(f"menu {menu_id!r}: a {menu.greeting.kind} greeting needs a value")
            for key, action in menu.keys.items():
                if len(key) != 1 or key not in KEYS:
                    raise MenuConfigError(f"menu {menu_id!r}: key {key!r} must be one of 0-9, * or #")
                self._check_action(f"menu {menu_id!r} key {key!r}", action, frozenset(MenuAction))

    def _check_action(self, where: str, key: KeyAction, allowed: frozenset[MenuAction]) -> None:
        if key.action not in allowed:
            raise MenuConfigError(f"{where}: {key.action} is not allowed here "
                                  f"(one of {', '.join(sorted(allowed))})")
        if key.action in _NEEDS_VALUE and not key.value:
            raise MenuConfigError(f"{where}: {key.action} needs a value")
        if key.action in TRANSFERS and not _TARGET.match(key.value or ""):
            raise MenuConfigError(f"{where}: transfer target must be an extension or a +E.164 number, "
                                  f"got {key.value!r}")
        if key.action is MenuAction.GO_TO_MENU and key.value not in self.menus:
            raise MenuConfigError(f"{where}: GO_TO_MENU names menu {key.value!r}, which is not defined")

    def top_menu(self, kind: MenuKind | str) -> str:
        return self.business_hours_menu if MenuKind(kind) is MenuKind.BUSINESS_HOURS else self.after_hours_menu


# --- the directory the engine asks about extensions and names ------------------------------

class MenuDirectory(Protocol):
    """Who can be reached from this attendant; ``scope`` is the attendant's dialing scope."""

    def extension_exists(self, extension: str, scope: DialingScope) -> bool: ...

    def longer_extension_exists(self, prefix: str, scope: DialingScope) -> bool:
        """True when some extension is longer than ``prefix`` and starts with it."""
        ...

    def names(self, digits: str, scope: DialingScope) -> Sequence[NameEntry]:
        """People whose last + first name spelled on the keypad starts with ``digits``, in name order."""
        ...


class DirectorySnapshot:
    """An immutable MenuDirectory over plain lists, for one attendant (its location and the org)."""

    def __init__(self, location_extensions: Iterable[str], enterprise_extensions: Iterable[str],
                 location_people: Iterable[NameEntry], enterprise_people: Iterable[NameEntry]) -> None:
        location = sorted(set(location_extensions))
        self._extensions = {DialingScope.LOCATION: location,
                            DialingScope.ENTERPRISE: sorted(set(enterprise_extensions) | set(location))}
        self._names = {DialingScope.LOCATION: NameIndex(location_people),
                       DialingScope.ENTERPRISE: NameIndex(enterprise_people)}

    def extension_exists(self, extension: str, scope: DialingScope) -> bool:
        ordered = self._extensions[scope]
        i = bisect.bisect_left(ordered, extension)
        return i < len(ordered) and ordered[i] == extension

    def longer_extension_exists(self, prefix: str, scope: DialingScope) -> bool:
        ordered = self._extensions[scope]
        i = bisect.bisect_right(ordered, prefix)  # skips an exact match, lands on the next bigger
        return i < len(ordered) and ordered[i].startswith(prefix)

    def names(self, digits: str, scope: DialingScope) -> Sequence[NameEntry]:
        return self._names[scope].match(digits)


# --- the session ---------------------------------------------------------------------------

class Mode(Enum):
    MENU = "MENU"
    EXTENSION_ENTRY = "EXTENSION_ENTRY"
    NAME_ENTRY = "NAME_ENTRY"
    NAME_CONFIRM = "NAME_CONFIRM"
    TRANSFERRING = "TRANSFERRING"
    ENDED = "ENDED"


_NO_INPUT, _INTER_DIGIT = "NO_INPUT", "INTER_DIGIT"
_MAX_NAME_DIGITS = 20
_MAX_MENU_DEPTH = 16

Outputs = list[MenuOutput]
Continuation = Callable[[float], Outputs]


class MenuSession:
    """One caller in one auto attendant. Not thread-safe; one per call."""

    def __init__(self, config: AttendantConfig, directory: MenuDirectory,
                 top: MenuKind | str = MenuKind.BUSINESS_HOURS) -> None:
        self.config = config
        self.directory = directory
        self.top_kind = MenuKind(top)
        self.menu_id = config.top_menu(self.top_kind)
        self.mode = Mode.MENU
        self.invalid_count = 0
        self.no_input_count = 0
        self._stack: list[str] = []
        self._buffer = ""
        self._matches: Sequence[NameEntry] = ()
        self._match_index = 0
        self._started = False
        self._playing = False
        self._barge_in = False
        self._then: Continuation | None = None
        self._deadline: float | None = None
        self._deadline_kind: str | None = None
        self._fallback_used = False

    # events ---------------------------------------------------------------------------

    def start(self, now: float) -> Outputs:
        if self._started:
            raise RuntimeError("MenuSession.start called twice")
        self._started = True
        return self._present(now)

    def digit(self, key: str, now: float) -> Outputs:
        # A-D (RFC 4733 events 12-15) have no meaning here and no key on ordinary phones.
        if key not in KEYS or len(key) != 1 or not self._started:
            return []
        if self.mode in (Mode.TRANSFERRING, Mode.ENDED):
            return []
        out: Outputs = []
        if self._playing:
            if not self._barge_in:
                return []
            out.append(StopPlayback())
            self._playing, self._then = False, None
        self._clear_deadline()
        self.no_input_count = 0
        handler = {
            Mode.MENU: self._menu_digit,
            Mode.EXTENSION_ENTRY: self._entry_digit,
            Mode.NAME_ENTRY: self._entry_digit,
            Mode.NAME_CONFIRM: self._confirm_digit,
        }[self.mode]
        out.extend(handler(key, now))
        return out

    def prompt_finished(self, now: float) -> Outputs:
        if not self._playing or self.mode is Mode.ENDED:
            return []
        then = self._then
        self._playing, self._then = False, None
        return then(now) if then else []

    def timer(self, now: float) -> Outputs:
        if self._deadline is None or now < self._deadline or self.mode is Mode.ENDED:
            return []
        kind = self._deadline_kind
        self._clear_deadline()
        if kind == _INTER_DIGIT:
            return self._finish_entry(now)
        return self._no_input(now)

    def transfer_failed(self, now: float) -> Outputs:
        if self.mode is not Mode.TRANSFERRING:
            return []
        fallback = self.config.transfer_fallback
        sorry = PromptRef.prompt(PromptId.NO_ONE_AVAILABLE)
        if self._fallback_used or fallback.action is MenuAction.EXIT:
            return self._goodbye("TRANSFER_FAILED", now, lead=(sorry,))
        if fallback.action is MenuAction.REPEAT_MENU:
            self.mode = Mode.MENU
            return self._play((sorry,), False, self._present)
        self._fallback_used = True
        return self._play((sorry,), False,
                          lambda t: self._transfer(fallback.target_kind(), fallback.value or "", False, t))

    def next_deadline(self) -> float | None:
        return self._deadline

    @property
    def ended(self) -> bool:
        return self.mode is Mode.ENDED

    @property
    def menu(self) -> Menu:
        return self.config.menus[self.menu_id]

    # prompts and timers ---------------------------------------------------------------

    def _play(self, prompts: tuple[PromptRef, ...], barge_in: bool, then: Continuation) -> Outputs:
        self._clear_deadline()
        self._playing, self._barge_in, self._then = True, barge_in, then
        return [Play(prompts, barge_in)]

    def _arm(self, kind: str, now: float) -> None:
        delay = self.config.inter_digit_timeout if kind == _INTER_DIGIT else self.config.no_input_timeout
        self._deadline, self._deadline_kind = now + delay, kind

    def _clear_deadline(self) -> None:
        self._deadline = self._deadline_kind = None

    def _await_input(self, now: float) -> Outputs:
        self._arm(_NO_INPUT, now)
        return []

    def _present(self, now: float) -> Outputs:
        """(Re)play what the current mode asks the caller, then wait for input."""
        self._buffer = ""
        if self.mode is Mode.MENU:
            prompts = self._menu_prompts()
        elif self.mode is Mode.EXTENSION_ENTRY:
            prompts = (PromptRef.prompt(PromptId.ENTER_EXTENSION),)
        elif self.mode is Mode.NAME_ENTRY:
            prompts = (PromptRef.prompt(PromptId.NAME_ENTER),)
        else:
            entry = self._matches[self._match_index]
            prompts = (PromptRef(PromptKind.TEXT, entry.spoken), PromptRef.prompt(PromptId.NAME_CONFIRM))
        return self._play(prompts, True, self._await_input)

    def _menu_prompts(self) -> tuple[PromptRef, ...]:
        menu = self.menu
        if menu.greeting.kind is GreetingKind.CUSTOM:
            return (PromptRef(PromptKind.ANNOUNCEMENT, menu.greeting.value or ""),)
        if menu.greeting.kind is GreetingKind.TEXT:
            return (PromptRef(PromptKind.TEXT, menu.greeting.value or ""),)
        prompts: list[PromptRef] = []
        if self.menu_id == self.config.top_menu(self.top_kind) and not self._stack:
            prompts.append(PromptRef.prompt(PromptId.GREETING_BUSINESS_HOURS if self.top_kind is MenuKind.BUSINESS_HOURS
                                             else PromptId.GREETING_AFTER_HOURS))
        for key in KEY_ORDER:
            action = menu.keys.get(key)
            if action and action.description:
                prompts += [PromptRef.prompt(PromptId.FOR), PromptRef(PromptKind.TEXT, action.description),
                            PromptRef.prompt(PromptId.PRESS), PromptRef.prompt(key_prompt_id(key))]
        if menu.extension_dialing:
            prompts.append(PromptRef.prompt(PromptId.EXTENSION_ANY_TIME))
        return tuple(prompts)

    def _no_input(self, now: float) -> Outputs:
        if self.no_input_count < self.config.no_input_repeats:
            self.no_input_count += 1
            return self._present(now)
        return self._final(self.config.no_input_final, "NO_INPUT", now)

    def _invalid(self, message: PromptId, now: float) -> Outputs:
        self._buffer = ""
        self.invalid_count += 1
        if self.invalid_count >= self.config.invalid_limit:
            final = self.config.invalid_final
            return self._play((PromptRef.prompt(message),), False, lambda t: self._final(final, "INVALID_INPUT", t))
        # Barge-in: a caller who already knows the right key need not hear the message out.
        return self._play((PromptRef.prompt(message),), True, self._present)

    def _final(self, action: KeyAction, reason: str, now: float) -> Outputs:
        if action.action is MenuAction.EXIT:
            return self._goodbye(reason, now)
        return self._transfer(action.target_kind(), action.value or "",
                              action.action is MenuAction.TRANSFER_WITH_PROMPT, now)

    def _goodbye(self, reason: str, now: float, lead: tuple[PromptRef, ...] = ()) -> Outputs:
        return self._play(lead + (PromptRef.prompt(PromptId.GOODBYE),), False, lambda t: self._end(reason))

    def _end(self, reason: str) -> Outputs:
        self.mode = Mode.ENDED
        self._clear_deadline()
        return [Hangup(reason)]

    def _transfer(self, kind: TargetKind, target: str, with_prompt: bool, now: float) -> Outputs:
        self._buffer = ""
        if with_prompt:
            return self._play((PromptRef.prompt(PromptId.TRANSFER_HOLD),), False,
                              lambda t: self._connect(Transfer(kind, target, True)))
        return self._connect(Transfer(kind, target, False))

    def _connect(self, transfer: Transfer) -> Outputs:
        self.mode = Mode.TRANSFERRING
        self._clear_deadline()
        return [transfer]

    # digits per mode ------------------------------------------------------------------

    def _menu_digit(self, key: str, now: float) -> Outputs:
        menu = self.menu
        if self._buffer:  # direct extension dialing under way
            if key == "#":
                return self._finish_entry(now)
            if key == "*":
                return self._present(now)
            self._buffer += key
            return self._after_extension_digit(now)
        if key.isdigit() and menu.extension_dialing and self._extension_may_start(key):
            self._buffer = key
            if key not in menu.keys:
                return self._after_extension_digit(now)
            self._arm(_INTER_DIGIT, now)  # the key or an extension: wait for more
            return []
        if key in menu.keys:
            return self._act(menu.keys[key], now)
        return self._invalid(PromptId.INVALID_OPTION, now)

    def _entry_digit(self, key: str, now: float) -> Outputs:
        if key == "*":  # give up entering: back to the menu
            self.mode = Mode.MENU
            return self._present(now)
        if key == "#":
            return self._finish_entry(now)
        self._buffer += key
        if self.mode is Mode.EXTENSION_ENTRY:
            return self._after_extension_digit(now)
        if len(self._buffer) >= _MAX_NAME_DIGITS:
            return self._finish_entry(now)
        self._arm(_INTER_DIGIT, now)
        return []

    def _confirm_digit(self, key: str, now: float) -> Outputs:
        entry = self._matches[self._match_index]
        if key == "1":
            return self._transfer(TargetKind.PERSON, entry.person_id, True, now)
        if key == "2":
            if self._match_index + 1 < len(self._matches):
                self._match_index += 1
                return self._present(now)
            self.mode = Mode.NAME_ENTRY
            return self._play((PromptRef.prompt(PromptId.NAME_NO_MORE),), True, self._present)
        if key == "*":
            self.mode = Mode.NAME_ENTRY
            return self._present(now)
        return self._invalid(PromptId.INVALID_OPTION, now)

    def _extension_may_start(self, digits: str) -> bool:
        scope = self.config.extension_dialing_scope
        return (self.directory.extension_exists(digits, scope)
                or self.directory.longer_extension_exists(digits, scope))

    def _after_extension_digit(self, now: float) -> Outputs:
        scope = self.config.extension_dialing_scope
        digits = self._buffer
        if (self.directory.extension_exists(digits, scope)
                and not self.directory.longer_extension_exists(digits, scope)):
            return self._transfer(TargetKind.EXTENSION, digits, True, now)
        if len(digits) >= self.config.max_extension_digits:
            return self._finish_entry(now)
        self._arm(_INTER_DIGIT, now)
        return []

    def _finish_entry(self, now: float) -> Outputs:
        """'#' or the inter-digit timeout: act on what was collected."""
        digits, self._buffer = self._buffer, ""
        if self.mode is Mode.NAME_ENTRY:
            matches = self.directory.names(digits, self.config.name_dialing_scope) if digits else ()
            if not matches:
                return self._invalid(PromptId.NAME_NOT_FOUND, now)
            self.mode, self._matches, self._match_index = Mode.NAME_CONFIRM, tuple(matches), 0
            return self._present(now)
        menu_key = self.menu.keys.get(digits) if self.mode is Mode.MENU and len(digits) == 1 else None
        if menu_key is not None:
            return self._act(menu_key, now)
        if digits and self.directory.extension_exists(digits, self.config.extension_dialing_scope):
            return self._transfer(TargetKind.EXTENSION, digits, True, now)
        return self._invalid(PromptId.EXTENSION_INVALID, now)

    def _act(self, key: KeyAction, now: float) -> Outputs:
        action = key.action
        if action in TRANSFERS:
            return self._transfer(key.target_kind(), key.value or "", action is MenuAction.TRANSFER_WITH_PROMPT, now)
        if action is MenuAction.EXIT:
            return self._goodbye("EXIT", now)
        if action is MenuAction.NAME_DIALING:
            self.mode = Mode.NAME_ENTRY
        elif action is MenuAction.EXTENSION_DIALING:
            self.mode = Mode.EXTENSION_ENTRY
        elif action is MenuAction.GO_TO_MENU:
            self._stack = (self._stack + [self.menu_id])[-_MAX_MENU_DEPTH:]
            self.menu_id = key.value or self.menu_id
        elif action is MenuAction.RETURN_TO_PREVIOUS_MENU:
            if self._stack:  # at the top there is nothing to return to: the menu is repeated
                self.menu_id = self._stack.pop()
        elif action is MenuAction.PLAY_ANNOUNCEMENT:
            return self._play((PromptRef(PromptKind.ANNOUNCEMENT, key.value or ""),), True, self._present)
        return self._present(now)
