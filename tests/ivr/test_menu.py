"""The auto-attendant menu engine (ivr.menu) driven with a fake clock, and name matching (ivr.names)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr.menu import (
    AttendantConfig,
    DialingScope,
    DirectorySnapshot,
    Greeting,
    GreetingKind,
    Hangup,
    KeyAction,
    Menu,
    MenuAction,
    MenuConfigError,
    MenuSession,
    Mode,
    Play,
    PromptKind,
    PromptRef,
    StopPlayback,
    TargetKind,
    Transfer,
)
from ivr.names import NameEntry, NameIndex, keypad_digits
from ivr.schedule import MenuKind

A = MenuAction


def P(prompt_id: str) -> PromptRef:
    return PromptRef.prompt(prompt_id)


def T(text: str) -> PromptRef:
    return PromptRef(PromptKind.TEXT, text)


PEOPLE = [
    NameEntry("p-john", "John", "Smith"),
    NameEntry("p-anna", "Anna", "Smith"),
    NameEntry("p-zed", "Zed", "Smithers"),
    NameEntry("p-jo", "Jörg", "Müller"),
]
REMOTE = [NameEntry("p-remote", "Sam", "Smirnov")]
DIRECTORY = DirectorySnapshot(
    location_extensions=["2001", "2002", "300", "3001", "4100"],
    enterprise_extensions=["8123", "2001"],
    location_people=PEOPLE,
    enterprise_people=PEOPLE + REMOTE,
)

BUSINESS = Menu(keys={
    "1": KeyAction(A.TRANSFER_WITH_PROMPT, "+15551230001", "sales"),
    "2": KeyAction(A.TRANSFER_WITHOUT_PROMPT, "2002", "support"),
    "3": KeyAction(A.GO_TO_MENU, "billing", "billing"),
    "5": KeyAction(A.PLAY_ANNOUNCEMENT, "ann-hours"),
    "6": KeyAction(A.EXTENSION_DIALING),
    "7": KeyAction(A.NAME_DIALING, description="the company directory"),
    "0": KeyAction(A.TRANSFER_TO_OPERATOR, "4100"),
    "9": KeyAction(A.EXIT),
    "*": KeyAction(A.REPEAT_MENU),
    "#": KeyAction(A.RETURN_TO_PREVIOUS_MENU),
})
BILLING = Menu(greeting=Greeting(GreetingKind.TEXT, "Billing. Press 1 for invoices, star to go back."), keys={
    "1": KeyAction(A.TRANSFER_WITHOUT_PROMPT, "+15551230002"),
    "4": KeyAction(A.GO_TO_MENU, "deep"),
    "*": KeyAction(A.RETURN_TO_PREVIOUS_MENU),
}, extension_dialing=False)
DEEP = Menu(greeting=Greeting(GreetingKind.CUSTOM, "ann-deep"), keys={"*": KeyAction(A.RETURN_TO_PREVIOUS_MENU)})
AFTER = Menu(keys={"1": KeyAction(A.TRANSFER_WITHOUT_PROMPT, "+15551239999", "the answering service")},
             extension_dialing=False)
CONFIG = AttendantConfig(menus={"BUSINESS_HOURS": BUSINESS, "AFTER_HOURS": AFTER, "billing": BILLING, "deep": DEEP})

HOLD = Play((P("transfer_hold"),), False)
GOODBYE = Play((P("goodbye"),), False)


class Call:
    """A caller on a fake clock: every event goes through here and its outputs are kept."""

    def __init__(self, config: AttendantConfig = CONFIG, top: MenuKind = MenuKind.BUSINESS_HOURS,
                 directory=DIRECTORY) -> None:
        self.session = MenuSession(config, directory, top)
        self.now = 1000.0

    def start(self) -> list:
        return self.session.start(self.now)

    def press(self, key: str, after: float = 0.2) -> list:
        self.now += after
        return self.session.digit(key, self.now)

    def keys(self, keys: str, gap: float = 0.2) -> list:
        out = []
        for key in keys:
            out += self.press(key, gap)
        return out

    def finished(self, after: float = 2.0) -> list:
        self.now += after
        return self.session.prompt_finished(self.now)

    def wait(self, seconds: float) -> list:
        """Let time pass, firing the session's timer whenever its deadline comes."""
        end, out = self.now + seconds, []
        while (deadline := self.session.next_deadline()) is not None and deadline <= end:
            self.now = deadline
            out += self.session.timer(self.now)
        self.now = end
        return out


def test_start_plays_the_default_business_greeting_listing_described_keys() -> None:
    call = Call()
    assert call.start() == [Play((
        P("greeting_business_hours"),
        P("for"), T("sales"), P("press"), P("digit_1"),
        P("for"), T("support"), P("press"), P("digit_2"),
        P("for"), T("billing"), P("press"), P("digit_3"),
        P("for"), T("the company directory"), P("press"), P("digit_7"),
        P("extension_any_time"),
    ), True)]
    assert call.session.next_deadline() is None  # no timer while the greeting plays
    assert call.finished(after=9.0) == []
    assert call.session.next_deadline() == pytest.approx(call.now + 10.0)


def test_after_hours_menu_has_its_own_greeting_and_keys() -> None:
    call = Call(top=MenuKind.AFTER_HOURS)
    assert call.start() == [Play((P("greeting_after_hours"), P("for"), T("the answering service"),
                                  P("press"), P("digit_1")), True)]
    assert call.press("1") == [StopPlayback(), Transfer(TargetKind.NUMBER, "+15551239999", False)]


def test_key_that_can_only_mean_one_thing_acts_at_once_with_barge_in() -> None:
    call = Call()
    call.start()
    # No extension starts with 1: sales is chosen at the key press, the greeting is cut off.
    assert call.press("1") == [StopPlayback(), HOLD]
    assert call.press("5") == []  # digits during the hold prompt are ignored
    assert call.finished() == [Transfer(TargetKind.NUMBER, "+15551230001", True)]
    assert call.session.mode is Mode.TRANSFERRING
    assert call.press("2") == [] and call.wait(60) == []


def test_transfer_without_prompt_and_to_operator() -> None:
    call = Call()
    call.start()
    call.finished()
    assert call.press("0") == [Transfer(TargetKind.OPERATOR, "4100", False)]
    # Key 2 is ambiguous (extension 2001 and 2002 start with 2), so it waits for the
    # inter-digit timeout before acting as the support key.
    call = Call()
    call.start()
    assert call.press("2") == [StopPlayback()]
    assert call.session.next_deadline() == pytest.approx(call.now + 3.0)
    assert call.wait(2.9) == []
    assert call.wait(0.2) == [Transfer(TargetKind.EXTENSION, "2002", False)]


def test_direct_extension_dialing_transfers_once_the_extension_is_unambiguous() -> None:
    call = Call()
    call.start()
    assert call.keys("200") == [StopPlayback()]
    assert call.press("1") == [HOLD]  # 2001 exists and nothing longer starts with it: no wait
    assert call.finished() == [Transfer(TargetKind.EXTENSION, "2001", True)]


def test_extension_that_prefixes_another_needs_pound_or_the_timeout() -> None:
    for finish in ("#", None):
        call = Call()
        call.start()
        call.finished()
        assert call.keys("300") == []
        if finish:
            assert call.press(finish) == [HOLD]
        else:
            assert call.wait(3.0) == [HOLD]
        assert call.finished() == [Transfer(TargetKind.EXTENSION, "300", True)]


def test_unknown_extension_is_answered_counted_and_the_menu_replayed() -> None:
    call = Call()
    call.start()
    call.finished()
    assert call.keys("20") == []
    assert call.press("9") == []
    assert call.press("#") == [Play((P("extension_invalid"),), True)]
    assert call.session.invalid_count == 1
    replay = call.finished()
    assert len(replay) == 1 and replay[0].prompts[0] == P("greeting_business_hours")


def test_star_cancels_a_direct_extension_entry() -> None:
    call = Call()
    call.start()
    call.finished()
    call.keys("20")
    out = call.press("*")
    assert out[0].prompts[0] == P("greeting_business_hours")
    assert call.session.invalid_count == 0


def test_no_input_repeats_the_menu_then_takes_the_final_action() -> None:
    call = Call()
    greeting = call.start()
    assert call.finished() == []
    assert call.wait(9.9) == []
    assert call.wait(0.1) == greeting  # first repeat
    call.finished()
    assert call.wait(10) == greeting  # second repeat (default 2)
    call.finished()
    assert call.wait(10) == [GOODBYE]
    assert call.finished() == [Hangup("NO_INPUT")]
    assert call.session.ended
    assert call.press("1") == [] and call.finished() == [] and call.session.next_deadline() is None


def test_no_input_final_transfer_with_no_repeats_and_a_custom_timeout() -> None:
    config = replace(CONFIG, no_input_timeout=5, no_input_repeats=0,
                     no_input_final=KeyAction(A.TRANSFER_TO_OPERATOR, "4100"))
    call = Call(config)
    call.start()
    call.finished()
    assert call.wait(4.9) == []
    assert call.wait(0.1) == [Transfer(TargetKind.OPERATOR, "4100", False)]


def test_a_key_press_resets_the_no_input_count() -> None:
    call = Call(replace(CONFIG, no_input_repeats=1))
    call.start()
    call.finished()
    call.wait(10)  # one repeat used
    assert call.session.no_input_count == 1
    call.press("*")  # REPEAT_MENU
    assert call.session.no_input_count == 0


def test_invalid_keys_are_answered_then_the_final_action_follows() -> None:
    call = Call(replace(CONFIG, invalid_limit=3))
    call.start()
    call.finished()
    invalid = Play((P("invalid_option"),), True)
    # Key 4 is unmapped but starts extension 4100: taken as an extension, ended by the timeout.
    assert call.press("4") == []
    assert call.wait(3.0) == [Play((P("extension_invalid"),), True)]
    assert call.session.invalid_count == 1
    call.finished()
    # Key 8 is unmapped and starts no extension: answered at once.
    assert call.press("8") == [StopPlayback(), invalid]
    assert call.session.invalid_count == 2
    replay = call.finished()
    assert replay[0].prompts[0] == P("greeting_business_hours")
    assert call.press("8") == [StopPlayback(), Play((P("invalid_option"),), False)]  # third: no barge-in
    assert call.session.invalid_count == 3
    assert call.press("1") == []
    assert call.finished() == [GOODBYE]
    assert call.finished() == [Hangup("INVALID_INPUT")]


def test_submenu_and_back() -> None:
    call = Call()
    call.start()
    assert call.press("3") == [StopPlayback()]  # 3 also starts extension 300: wait for the timeout
    assert call.wait(3.0) == [Play((T("Billing. Press 1 for invoices, star to go back."),), True)]
    assert call.session.menu_id == "billing"
    # Extension dialing is off in billing: a digit is only ever a key, so 2 is invalid at once.
    assert call.press("2") == [StopPlayback(), Play((P("invalid_option"),), True)]
    assert call.press("4") == [StopPlayback(), Play((PromptRef(PromptKind.ANNOUNCEMENT, "ann-deep"),), True)]
    out = call.press("*")
    assert out[1].prompts[0].value.startswith("Billing.") and call.session.menu_id == "billing"
    out = call.press("*")
    assert call.session.menu_id == "BUSINESS_HOURS" and out[1].prompts[0] == P("greeting_business_hours")
    # At the top there is nothing to go back to: the menu is played again.
    out = call.press("#")
    assert call.session.menu_id == "BUSINESS_HOURS" and out[1].prompts[0] == P("greeting_business_hours")
    assert call.press("1", after=0.1) == [StopPlayback(), HOLD]


def test_repeat_menu_and_play_announcement() -> None:
    call = Call()
    greeting = call.start()
    call.finished()
    assert call.press("*") == greeting
    assert call.press("5") == [StopPlayback(), Play((PromptRef(PromptKind.ANNOUNCEMENT, "ann-hours"),), True)]
    assert call.finished() == greeting  # back to the menu after the announcement


def test_exit_says_goodbye_and_hangs_up() -> None:
    call = Call()
    call.start()
    assert call.press("9") == [StopPlayback(), GOODBYE]
    assert call.press("1") == []  # goodbye cannot be interrupted
    assert call.finished() == [Hangup("EXIT")]


def test_extension_dialing_key_with_pound_timeout_and_cancel() -> None:
    call = Call()
    call.start()
    assert call.press("6") == [StopPlayback(), Play((P("enter_extension"),), True)]
    assert call.keys("30") == [StopPlayback()]
    assert call.press("0") == []
    assert call.press("#") == [HOLD]
    assert call.finished() == [Transfer(TargetKind.EXTENSION, "300", True)]

    call = Call()
    call.start()
    call.press("6")
    call.finished()
    assert call.session.next_deadline() == pytest.approx(call.now + 10)
    call.keys("41")
    assert call.wait(3.0) == [Play((P("extension_invalid"),), True)]
    assert call.finished() == [Play((P("enter_extension"),), True)]  # asked again
    assert call.press("*")[1].prompts[0] == P("greeting_business_hours")  # star goes back to the menu


def test_name_dialing_by_last_then_first_name_with_confirmation() -> None:
    call = Call()
    call.start()
    assert call.press("7") == [StopPlayback(), Play((P("name_enter"),), True)]
    call.finished()
    call.keys(keypad_digits("Smith"))
    # Anna Smith, John Smith, Zed Smithers: sorted by last name then first name.
    assert call.press("#") == [Play((T("Anna Smith"), P("name_confirm")), True)]
    assert call.press("2") == [StopPlayback(), Play((T("John Smith"), P("name_confirm")), True)]
    assert call.press("2") == [StopPlayback(), Play((T("Zed Smithers"), P("name_confirm")), True)]
    assert call.press("2") == [StopPlayback(), Play((P("name_no_more"),), True)]
    assert call.finished() == [Play((P("name_enter"),), True)]
    # Last name then first name narrows to one; the inter-digit timeout ends the entry.
    call.keys(keypad_digits("SmithJ"))
    assert call.wait(3.0) == [Play((T("John Smith"), P("name_confirm")), True)]
    call.finished()
    assert call.press("1") == [HOLD]
    assert call.finished() == [Transfer(TargetKind.PERSON, "p-john", True)]


def test_name_dialing_not_found_invalid_confirm_key_and_enterprise_scope() -> None:
    call = Call()
    call.start()
    call.press("7")
    call.keys(keypad_digits("Smir"))  # Sam Smirnov is in another location
    assert call.press("#") == [Play((P("name_not_found"),), True)]
    assert call.session.invalid_count == 1
    assert call.finished() == [Play((P("name_enter"),), True)]
    call.keys(keypad_digits("Mull") + "#")
    assert call.session.mode is Mode.NAME_CONFIRM
    assert call.press("5") == [StopPlayback(), Play((P("invalid_option"),), True)]
    assert call.finished() == [Play((T("Jörg Müller"), P("name_confirm")), True)]
    assert call.press("*") == [StopPlayback(), Play((P("name_enter"),), True)]

    enterprise = Call(replace(CONFIG, name_dialing_scope=DialingScope.ENTERPRISE))
    enterprise.start()
    enterprise.press("7")
    assert enterprise.keys(keypad_digits("Smir") + "#")[-1] == Play((T("Sam Smirnov"), P("name_confirm")), True)
    assert enterprise.press("1") == [StopPlayback(), HOLD]
    assert enterprise.finished() == [Transfer(TargetKind.PERSON, "p-remote", True)]


def test_extension_dialing_scope() -> None:
    for scope, reachable in ((DialingScope.LOCATION, False), (DialingScope.ENTERPRISE, True)):
        call = Call(replace(CONFIG, extension_dialing_scope=scope))
        call.start()
        call.finished()
        out = call.keys("8123")
        if reachable:
            assert out == [HOLD]
        else:
            # 8 is no key and starts no extension in the location: invalid at once.
            assert out[0] == Play((P("invalid_option"),), True)


@pytest.mark.parametrize(("fallback", "expected"), [
    (KeyAction(A.REPEAT_MENU), "menu"),
    (KeyAction(A.EXIT), "goodbye"),
    (KeyAction(A.TRANSFER_WITHOUT_PROMPT, "+15557770000"), "transfer"),
])
def test_unanswered_transfer_comes_back_to_the_fallback(fallback, expected) -> None:
    call = Call(replace(CONFIG, transfer_fallback=fallback))
    call.start()
    call.press("1")
    call.finished()
    assert call.session.transfer_failed(call.now) != []
    sorry = P("no_one_available")
    # (re-run from scratch to see the exact outputs)
    call = Call(replace(CONFIG, transfer_fallback=fallback))
    call.start()
    call.press("1")
    call.finished()
    if expected == "menu":
        assert call.session.transfer_failed(call.now) == [Play((sorry,), False)]
        assert call.finished()[0].prompts[0] == P("greeting_business_hours")
        assert call.session.mode is Mode.MENU
        assert call.press("0") == [StopPlayback(), Transfer(TargetKind.OPERATOR, "4100", False)]
    elif expected == "goodbye":
        assert call.session.transfer_failed(call.now) == [Play((sorry, P("goodbye")), False)]
        assert call.finished() == [Hangup("TRANSFER_FAILED")]
    else:
        assert call.session.transfer_failed(call.now) == [Play((sorry,), False)]
        assert call.finished() == [Transfer(TargetKind.NUMBER, "+15557770000", False)]
        # The fallback itself unanswered: no loop, the call ends.
        assert call.session.transfer_failed(call.now) == [Play((sorry, P("goodbye")), False)]
        assert call.finished() == [Hangup("TRANSFER_FAILED")]


def test_stray_events_are_harmless() -> None:
    call = Call()
    assert call.press("1") == []  # before start
    call.start()
    assert call.session.timer(call.now) == []  # no deadline yet
    assert call.session.transfer_failed(call.now) == []  # not transferring
    call.finished()
    assert call.session.timer(call.now + 5) == []  # early
    assert call.finished() == []  # nothing playing
    assert call.press("A") == [] and call.press("x") == []
    with pytest.raises(RuntimeError):
        call.start()


def test_custom_greeting_plays_the_announcement() -> None:
    config = replace(CONFIG, menus={**CONFIG.menus, "BUSINESS_HOURS": replace(BUSINESS, greeting=Greeting(GreetingKind.CUSTOM, "ann-1"))})
    assert Call(config).start() == [Play((PromptRef(PromptKind.ANNOUNCEMENT, "ann-1"),), True)]


@pytest.mark.parametrize(("change", "message"), [
    (dict(menus={"AFTER_HOURS": AFTER}), "menu 'BUSINESS_HOURS' is not defined"),
    (dict(no_input_timeout=0.5), "noInputTimeout must be 1 to 60"),
    (dict(no_input_timeout=61), "noInputTimeout must be 1 to 60"),
    (dict(no_input_repeats=4), "noInputRepeats must be 0 to 3"),
    (dict(invalid_limit=0), "invalidLimit"),
    (dict(no_input_final=KeyAction(A.REPEAT_MENU)), "noInputFinal: REPEAT_MENU is not allowed"),
    (dict(transfer_fallback=KeyAction(A.NAME_DIALING)), "transferFallback: NAME_DIALING is not allowed"),
    (dict(invalid_final=KeyAction(A.TRANSFER_WITH_PROMPT)), "invalidFinal: TRANSFER_WITH_PROMPT needs a value"),
    (dict(menus={**CONFIG.menus, "x": Menu(keys={"A": KeyAction(A.EXIT)})}), "key 'A' must be one of"),
    (dict(menus={**CONFIG.menus, "x": Menu(keys={"1": KeyAction(A.GO_TO_MENU, "nowhere")})}), "'nowhere', which is not defined"),
    (dict(menus={**CONFIG.menus, "x": Menu(keys={"1": KeyAction(A.TRANSFER_WITH_PROMPT, "sales")})}), "transfer target must be"),
    (dict(menus={**CONFIG.menus, "x": Menu(keys={"1": KeyAction(A.PLAY_ANNOUNCEMENT)})}), "PLAY_ANNOUNCEMENT needs a value"),
    (dict(menus={**CONFIG.menus, "x": Menu(greeting=Greeting(GreetingKind.TEXT))}), "a TEXT greeting needs a value"),
])
def test_bad_configuration_is_refused_with_the_place_and_rule(change, message) -> None:
    with pytest.raises(MenuConfigError, match=message):
        replace(CONFIG, **change)


def test_keypad_spelling_and_name_order() -> None:
    assert keypad_digits("Smith") == "76484"
    assert keypad_digits("Müller") == "685537"
    assert keypad_digits("Strauß") == keypad_digits("Strauss")
    assert keypad_digits("O'Neil-Ray") == keypad_digits("ONeilRay")
    index = NameIndex(PEOPLE + [NameEntry("p-none", "", "")])
    assert len(index) == 4  # nobody without a spellable name
    assert [e.person_id for e in index.match("7648")] == ["p-anna", "p-john", "p-zed"]
    assert [e.person_id for e in index.match("764845")] == ["p-john"]  # SMITH + J
    assert index.match("") == () and index.match("9") == ()
    assert len(index.match("7", limit=2)) == 2


def test_directory_snapshot_prefix_questions() -> None:
    loc = DialingScope.LOCATION
    assert DIRECTORY.extension_exists("300", loc) and DIRECTORY.longer_extension_exists("300", loc)
    assert DIRECTORY.extension_exists("3001", loc) and not DIRECTORY.longer_extension_exists("3001", loc)
    assert not DIRECTORY.extension_exists("30", loc) and DIRECTORY.longer_extension_exists("30", loc)
    assert not DIRECTORY.longer_extension_exists("5", loc)
    assert not DIRECTORY.extension_exists("8123", loc) and DIRECTORY.extension_exists("8123", DialingScope.ENTERPRISE)
    # The enterprise scope includes the location's own extensions.
    assert DIRECTORY.extension_exists("4100", DialingScope.ENTERPRISE)


EVENTS = st.lists(st.one_of(
    st.tuples(st.just("digit"), st.sampled_from(list("0123456789*#A"))),
    st.tuples(st.sampled_from(["finished", "timer", "failed"]), st.just("")),
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(EVENTS, st.sampled_from(list(MenuKind)))
def test_any_event_sequence_keeps_the_session_consistent(events, top) -> None:
    session = MenuSession(CONFIG, DIRECTORY, top)
    now = 0.0
    outputs = session.start(now)
    playing = True
    for kind, key in events:
        now += 0.5
        if kind == "digit":
            out = session.digit(key, now)
        elif kind == "finished":
            out = session.prompt_finished(now) if playing else []
            playing = False
        elif kind == "timer":
            deadline = session.next_deadline()
            if deadline is not None:
                now = max(now, deadline)
            out = session.timer(now)
        else:
            out = session.transfer_failed(now)
        outputs += out
        for action in out:
            if isinstance(action, Play):
                playing = True
            elif isinstance(action, StopPlayback | Transfer):
                playing = False
        if playing:
            assert session.next_deadline() is None  # timers run only once a prompt has finished
        if out and isinstance(out[-1], Transfer):
            assert session.mode is Mode.TRANSFERRING and session.next_deadline() is None
        if not playing and session.mode in (Mode.MENU, Mode.EXTENSION_ENTRY, Mode.NAME_ENTRY, Mode.NAME_CONFIRM):
            assert session.next_deadline() is not None  # a caller in a menu is never left waiting forever
        if session.ended:
            assert isinstance(outputs[-1], Hangup)
            assert session.digit("1", now) == [] and session.timer(now + 100) == []
            break
    assert sum(isinstance(o, Hangup) for o in outputs) <= 1
