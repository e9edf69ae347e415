"""Callers in auto attendants: one MenuSession per call, between the B2BUA and the media worker.

The B2BUA hands a call routed to an auto attendant to `AttendantCalls` (its `auto_attendant`
hook); we answer it with our own SDP pointing at a media-worker channel, then feed the
caller's menu session with what happens — digits from the worker (RFC 4733 and in-band,
already de-duplicated) or from SIP INFO, the end of a prompt, a timer — and carry out what
the session asks: play prompts, transfer (the B2BUA rings the target and bridges), hang up.

Everything here runs on the event loop and never waits: the worker's API is non-blocking,
and the B2BUA is sans-IO (what it wants sent goes to `send`).
"""
from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ivr.dtmf_events import SipInfoDtmf, SipInfoDtmfError
from ivr.menu import Hangup, MenuSession, Play, PromptRef, StopPlayback, Transfer
from sipcore.sdp import LegOrigin, NoCommonCodec, SdpError, make_answer, negotiate, parse, rtp_destination

log = logging.getLogger("ivr.calls")


@dataclass(eq=False)
class IvrCall:
    call: Any                      # sipcore.calls.Call
    attendant: Any                 # ivr.attendant.Attendant
    session: MenuSession
    channel: int
    origin: LegOrigin
    token: int = 0                 # of the playback in effect
    deadline: float | None = None
    transferring: bool = False
    digits: list[str] = field(default_factory=list)   # every digit the caller pressed (for logs and tests)


class AttendantCalls:
    def __init__(self, *, b2bua: Any, media: Any, send: Callable[[list], None],
                 attendant: Callable[[str], Any], menu_directory: Callable[[Any], Any],
                 transfer_route: Callable[[Any, Any, Transfer], Any],
                 clip: Callable[[PromptRef, str], tuple[str, np.ndarray] | None],
                 clock: Callable[[], float], transfer_timeout: float = 20.0):
        self.b2bua = b2bua
        self.media = media
        self.send = send
        self.attendant = attendant            # id -> Attendant | None
        self.menu_directory = menu_directory  # Attendant -> MenuDirectory
        self.transfer_route = transfer_route  # (attendant, call, Transfer) -> RingPerson | None
        self.clip = clip                      # (PromptRef, language) -> (clip id, pcm) | None
        self.clock = clock
        self.transfer_timeout = transfer_timeout
        self.calls: dict[str, IvrCall] = {}   # B2BUA call id -> state
        self._by_channel: dict[int, IvrCall] = {}
        self._registered: set[str] = set()
        self._tokens = itertools.count(1)
        self._timers: list[tuple[float, int, IvrCall]] = []
        self._seq = itertools.count()
        self.completed_transfers = 0

    # -- the B2BUA's hook ---------------------------------------------------------------------
    def __call__(self, call: Any, route: Any, now: float) -> None:
        attendant = self.attendant(route.auto_attendant_id)
        if attendant is None or not attendant.enabled:
            self.send(self.b2bua.refuse_locally(call, 480, "auto attendant unavailable", now))
            return None
        try:
            offer = parse(call.invite.body) if call.invite.body else None
        except SdpError as exc:
            self.send(self.b2bua.refuse_locally(call, 488, f"unreadable SDP: {exc.reason}", now))
            return None
        if offer is None:
            # A menu needs the caller's media address up front; phones that offer late are rare.
            self.send(self.b2bua.refuse_locally(call, 488, "auto attendants need an SDP offer", now))
            return None
        try:
            channel, port = self.media.open_nowait()
        except Exception as exc:  # IvrFull and a dead worker alike: say so, keep serving
            self.send(self.b2bua.refuse_locally(call, getattr(exc, "status", 503), f"menu unavailable: {exc}", now))
            return None
        origin = LegOrigin(self.media.advertise)
        try:
            answer = make_answer(offer, self.media.advertise, port, origin)
            chosen = negotiate(offer, answer)
        except (NoCommonCodec, SdpError) as exc:
            self.media.close(channel)
            self.send(self.b2bua.refuse_locally(call, 488, exc.reason, now))
            return None
        self.media.connect(channel, rtp_destination(offer), chosen.encoding, chosen.telephone_event_pt)
        session = attendant.session(self.menu_directory(attendant), datetime.fromtimestamp(self.clock(), UTC))
        state = IvrCall(call, attendant, session, channel, origin)
        self.calls[call.id] = state
        self._by_channel[channel] = state
        call.callee.update(autoAttendantId=attendant.id, name=attendant.name)
        self.send(self.b2bua.answer_locally(call, answer.to_bytes(), self, now))
        self._apply(state, session.start(now), now)
        return None

    # -- the B2BUA's application protocol ---------------------------------------------------------
    def origin_for(self, call: Any) -> LegOrigin | None:
        state = self.calls.get(call.id)
        return state.origin if state else None

    def on_info(self, call: Any, content_type: str, body: bytes, now: float) -> None:
        try:
            digit = SipInfoDtmf.parse(content_type, body)
        except SipInfoDtmfError as exc:
            log.info("call %s: unreadable DTMF INFO ignored: %s", call.id, exc.reason)
            return
        state = self.calls.get(call.id)
        if digit and state is not None:
            self._digit(state, digit, now)

    def on_reoffer(self, call: Any, sdp: bytes, now: float) -> bytes | None:
        state = self.calls.get(call.id)
        if state is None:
            return None
        try:
            offer = parse(sdp)
            answer = make_answer(offer, self.media.advertise, self._port(state), state.origin)
            chosen = negotiate(offer, answer)
        except (NoCommonCodec, SdpError):
            return None
        self.media.connect(state.channel, rtp_destination(offer), chosen.encoding, chosen.telephone_event_pt)
        return answer.to_bytes()

    def on_transferred(self, call: Any, now: float) -> None:
        self.completed_transfers += 1
        self._release(call)

    def on_transfer_failed(self, call: Any, status: int, reason: str, now: float) -> None:
        state = self.calls.get(call.id)
        if state is None:
            return
        log.info("call %s: transfer failed (%d %s); back to the menu", call.id, status, reason)
        state.transferring = False
        self._apply(state, state.session.transfer_failed(now), now)

    def on_end(self, call: Any, now: float) -> None:
        self._release(call)

    # -- the media worker's events ------------------------------------------------------------------
    def on_media_event(self, event: Any) -> None:
        state = self._by_channel.get(event.ch)
        if state is None:
            return
        now = self.clock()
        kind = type(event).__name__
        if kind == "Digit":
            self._digit(state, event.digit, now)
        elif kind == "PlaybackDone":
            if event.token == state.token:
                self._apply(state, state.session.prompt_finished(now), now)
        elif kind == "ChannelFailed":
            log.warning("call %s: media channel failed (%s); hanging up", state.call.id, event.reason)
            self.send(self.b2bua.hangup_locally(state.call, now))
        # The session may have set a timer (inter-digit, no input) outside any SIP event:
        # an empty send still has the shell re-arm its timer.
        self.send([])

    # -- timers -------------------------------------------------------------------------------------
    def next_deadline(self) -> float | None:
        while self._timers:
            deadline, _seq, state = self._timers[0]
            if state.deadline == deadline and state.call.id in self.calls:
                return deadline
            heapq.heappop(self._timers)
        return None

    def handle_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            deadline, _seq, state = heapq.heappop(self._timers)
            if state.deadline != deadline or state.call.id not in self.calls:
                continue
            state.deadline = None
            self._apply(state, state.session.timer(now), now)

    # -- internals ------------------------------------------------------------------------------------
    def _digit(self, state: IvrCall, digit: str, now: float) -> None:
        if state.transferring:
            return
        state.digits.append(digit)
        log.info("call %s: caller pressed %s", state.call.id, digit)
        self._apply(state, state.session.digit(digit, now), now)

    def _apply(self, state: IvrCall, outputs: list, now: float) -> None:
        for out in outputs:
            if isinstance(out, Play):
                self._play(state, out.prompts)
            elif isinstance(out, StopPlayback):
                state.token = 0
                self.media.stop_playback(state.channel)
            elif isinstance(out, Transfer):
                self._transfer(state, out, now)
            elif isinstance(out, Hangup):
                log.info("call %s: attendant hangs up (%s)", state.call.id, out.reason)
                self.send(self.b2bua.hangup_locally(state.call, now))
                return
        deadline = state.session.next_deadline()
        if deadline != state.deadline:
            state.deadline = deadline
            if deadline is not None:
                heapq.heappush(self._timers, (deadline, next(self._seq), state))

    def _play(self, state: IvrCall, prompts: tuple[PromptRef, ...]) -> None:
        ids = []
        for ref in prompts:
            found = self.clip(ref, state.attendant.language)
            if found is None:
                log.warning("call %s: no audio for %s %s; skipped", state.call.id, ref.kind, ref.value)
                continue
            clip_id, pcm = found
            if clip_id not in self._registered:
                self.media.register_clip(clip_id, pcm)
                self._registered.add(clip_id)
            ids.append(clip_id)
        state.token = next(self._tokens)
        self.media.play(state.channel, ids, state.token)

    def _transfer(self, state: IvrCall, out: Transfer, now: float) -> None:
        route = self.transfer_route(state.attendant, state.call, out)
        if route is None:
            log.info("call %s: nobody to transfer to for %s %s", state.call.id, out.target_kind, out.target)
            self._apply(state, state.session.transfer_failed(now), now)
            return
        state.transferring = True
        log.info("call %s: transferring to %s", state.call.id, route.display_name)
        self.send(self.b2bua.transfer(state.call, route, now, timeout=self.transfer_timeout))

    def _release(self, call: Any) -> None:
        state = self.calls.pop(call.id, None)
        if state is not None:
            self._by_channel.pop(state.channel, None)
            self.media.close(state.channel)

    def _port(self, state: IvrCall) -> int:
        return self.media.port_of(state.channel)
