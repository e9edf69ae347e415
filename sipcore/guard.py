"""Per-source protection: a token bucket per IP address and bans after repeated auth failures.

Sans-IO: every call takes the current time. Memory is bounded even under a flood of spoofed
source addresses: bucket state lives in an LRU of at most max_sources entries, and bans live
in their own bounded table so that churning the LRU cannot lift a ban.
"""

from __future__ import annotations

import enum
import logging
from collections import OrderedDict

__all__ = ["SourceGuard", "Verdict"]

log = logging.getLogger("sipcore.guard")


class Verdict(enum.Enum):
    ALLOW = "allow"
    RATE_LIMITED = "rate-limited"
    BANNED = "banned"


class _Source:
    __slots__ = ("tokens", "stamp", "failures")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp
        self.failures: list[float] | None = None  # times of recent auth failures, oldest first


class SourceGuard:
    """Admission decisions per source IP.

    rate <= 0 disables rate limiting; ban_failures <= 0 disables banning.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        ban_failures: int,
        ban_window: float,
        ban_duration: float,
        max_sources: int = 100_000,
    ) -> None:
        if max_sources < 1:
            raise ValueError("max_sources must be at least 1")
        if rate > 0 and burst < 1:
            raise ValueError("burst must be at least 1 when rate limiting is on")
        self.rate = float(rate)
        self.burst = float(burst)
        self.ban_failures = int(ban_failures)
        self.ban_window = float(ban_window)
        self.ban_duration = float(ban_duration)
        self.max_sources = max_sources
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        # ip -> ban end. Bans share one duration, so insertion order is expiry order and the
        # oldest ban is the first to drop when the table is full.
        self._bans: dict[str, float] = {}

    def _source(self, ip: str, now: float) -> _Source:
        sources = self._sources
        src = sources.get(ip)
        if src is None:
            src = sources[ip] = _Source(self.burst, now)
            if len(sources) > self.max_sources:
                # A new address pushes out the least recently seen one; a spoofed flood only
                # churns this table, it cannot grow it.
                sources.popitem(last=False)
        else:
            sources.move_to_end(ip)
        return src

    def _refill(self, src: _Source, now: float) -> None:
        elapsed = now - src.stamp
        if elapsed > 0:
            tokens = src.tokens + elapsed * self.rate
            src.tokens = tokens if tokens < self.burst else self.burst
            src.stamp = now

    def _banned(self, ip: str, now: float) -> bool:
        until = self._bans.get(ip)
        if until is None:
            return False
        if now < until:
            return True
        del self._bans[ip]
        return False

    def admit(self, ip: str, now: float) -> Verdict:
        """Whether to process a request from ip now; an allowed request spends one token."""
        if self._bans and self._banned(ip, now):
            return Verdict.BANNED
        if self.rate <= 0:
            return Verdict.ALLOW
        src = self._source(ip, now)
        self._refill(src, now)
        if src.tokens >= 1.0:
            src.tokens -= 1.0
            return Verdict.ALLOW
        return Verdict.RATE_LIMITED

    def malformed(self, ip: str, now: float) -> None:
        """Charge an unparseable datagram against the source's bucket (one token more)."""
        if self.rate <= 0:
            return
        src = self._source(ip, now)
        self._refill(src, now)
        src.tokens = src.tokens - 1.0 if src.tokens > 1.0 else 0.0

    def auth_failed(self, ip: str, now: float) -> bool:
        """Record an authentication failure; True when this failure starts a ban."""
        if self.ban_failures <= 0 or self._banned(ip, now):
            return False
        src = self._source(ip, now)
        failures = src.failures
        if failures is None:
            failures = src.failures = []
        horizon = now - self.ban_window
        drop = 0
        while drop < len(failures) and failures[drop] < horizon:
            drop += 1
        if drop:
            del failures[:drop]
        failures.append(now)
        if len(failures) < self.ban_failures:
            return False
        count = len(failures)
        src.failures = None
        bans = self._bans
        bans.pop(ip, None)
        bans[ip] = now + self.ban_duration
        while len(bans) > self.max_sources:
            del bans[next(iter(bans))]
        log.warning(
            "banning source %s for %.0f s after %d authentication failures within %.0f s",
            ip, self.ban_duration, count, self.ban_window,
        )
        return True

    def unban(self, ip: str) -> bool:
        """Lift a ban by hand (operations); True if there was one."""
        return self._bans.pop(ip, None) is not None

    def banned_sources(self, now: float) -> list[tuple[str, float]]:
        """(ip, ban end) for every ban in force, dropping those that have ended."""
        bans = self._bans
        ended = [ip for ip, until in bans.items() if until <= now]
        for ip in ended:
            del bans[ip]
        return list(bans.items())

    @property
    def tracked_sources(self) -> int:
        return len(self._sources)
