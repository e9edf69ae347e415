"""Outgoing mail through a transactional outbox.

A unit of work adds mail as rows of the ``outbox`` table in the same transaction as the change
that caused it, so a committed change never loses its mail and a rolled-back one never sends
any. After the commit the ``Mailer`` is nudged; its background task sends queued rows through
SMTP (aiosmtplib) with retries and backoff, so a slow or absent SMTP server never holds up the
request that queued the mail. With no SMTP server configured, mail is written to the log and
kept in the outbox with status LOGGED (``GET /v1/outbox`` lists it).

Several processes may share the store (the CLI queues invitations for the server to send, or
several instances run at once): a sender claims a row by moving it QUEUED -> SENDING with a
conditional UPDATE, so each message is sent by one of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from provisioning.store import Store
from provisioning.tables_access import OutboxMessage

log = logging.getLogger("callrouter.mail")

QUEUED, SENDING, SENT, FAILED, LOGGED = "QUEUED", "SENDING", "SENT", "FAILED", "LOGGED"
MAX_ATTEMPTS = 8
# A SENDING row whose sender died (killed mid-send) is retried after this long.
CLAIM_TIMEOUT = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: str
    to: str
    subject: str
    body: str
    attempt: int  # this delivery attempt's number, from 1


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int = 25
    sender: str = "callrouter@localhost"
    timeout: float = 10.0


def backoff(attempts: int) -> timedelta:
    """Delay before retry number ``attempts``: 2, 4, 8 ... seconds, at most 10 minutes."""
    return timedelta(seconds=min(600, 2 ** attempts))


class Mailer:
    def __init__(self, store: Store, smtp: SmtpConfig | None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), poll_interval: float = 30.0) -> None:
        self.store = store
        self.smtp = smtp
        self.clock = clock
        self.poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False

    @property
    def configured(self) -> bool:
        return self.smtp is not None

    # -- inside a unit of work -------------------------------------------------------------
    def enqueue(self, session: Session, org_id: str | None, to: str, subject: str, body: str) -> OutboxMessage:
        status = QUEUED if self.configured else LOGGED
        message = OutboxMessage(org_id=org_id, to=to, subject=subject[:300], body=body, status=status,
                                attempts=0, created_at=self.clock(), next_attempt_at=self.clock())
        session.add(message)
        return message

    def committed(self, messages: list[OutboxMessage]) -> None:
        """Called after the transaction holding ``messages`` committed."""
        if not messages:
            return
        if not self.configured:
            for m in messages:
                log.info("mail not sent (no SMTP server configured), kept in the outbox: to=%s subject=%r\n%s",
                         m.to, m.subject, m.body)
            return
        self._wake.set()

    # -- the sender ------------------------------------------------------------------------
    def start(self) -> None:
        self._stopping = False
        if self.configured and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="mailer")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self.send_due()
            except Exception:
                log.exception("mail sender failed; retrying")
            try:
                wait = await asyncio.to_thread(self._next_wait)
            except Exception:
                log.exception("mail sender cannot read the outbox; retrying")
                wait = self.poll_interval
            try:
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow the
                # cancellation that stop() sends, and the sender would never end.
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()

    def _next_wait(self) -> float:
        with self.store.session() as s:
            due = s.scalar(select(OutboxMessage.next_attempt_at).where(OutboxMessage.status == QUEUED)
                           .order_by(OutboxMessage.next_attempt_at).limit(1))
        if due is None:
            return self.poll_interval
        return max(0.05, min(self.poll_interval, (due - self.clock()).total_seconds()))

    def _claim(self) -> list[_Claimed]:
        now = self.clock()
        # Exclusive (SQLite: BEGIN IMMEDIATE) because it reads then writes: a plain transaction
        # would fail with "database is locked" when a request writes at the same moment.
        with self.store.session(exclusive=True) as s:
            candidates = s.scalars(
                select(OutboxMessage).where(or_(
                    (OutboxMessage.status == QUEUED) & (OutboxMessage.next_attempt_at <= now),
                    (OutboxMessage.status == SENDING) & (OutboxMessage.next_attempt_at <= now - CLAIM_TIMEOUT),
                )).order_by(OutboxMessage.created_at).limit(50)).all()
            claimed = []
            for m in candidates:
                attempt = m.attempts + 1
                result = s.execute(update(OutboxMessage)
                                   .where(OutboxMessage.id == m.id, OutboxMessage.status == m.status,
                                          OutboxMessage.attempts == m.attempts)
                                   .values(status=SENDING, next_attempt_at=now, attempts=attempt)
                                   .execution_options(synchronize_session=False))
                if result.rowcount == 1:
                    claimed.append(_Claimed(m.id, m.to, m.subject, m.body, attempt))
            return claimed

    async def send_due(self) -> int:
        """Send every message that is due; returns how many were sent."""
        if self.smtp is None:
            return 0
        claimed = await asyncio.to_thread(self._claim)
        sent = 0
        for m in claimed:
            error = await self._send(m)
            await asyncio.to_thread(self._settle, m, error)
            sent += error is None
        return sent

    async def _send(self, m: _Claimed) -> str | None:
        import aiosmtplib

        assert self.smtp is not None
        message = EmailMessage()
        message["From"] = self.smtp.sender
        message["To"] = m.to
        message["Subject"] = m.subject
        message.set_content(m.body)
        try:
            await aiosmtplib.send(message, hostname=self.smtp.host, port=self.smtp.port, timeout=self.smtp.timeout,
                                  start_tls=False, use_tls=False)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:500]
        return None

    def _settle(self, m: _Claimed, error: str | None) -> None:
        now = self.clock()
        attempts = m.attempt
        with self.store.session(exclusive=True) as s:
            if error is None:
                values = dict(status=SENT, sent_at=now, last_error=None)
            elif attempts >= MAX_ATTEMPTS:
                values = dict(status=FAILED, last_error=error)
                log.error("giving up mail to %s after %d attempts: %s", m.to, attempts, error)
            else:
                values = dict(status=QUEUED, last_error=error, next_attempt_at=now + backoff(attempts))
                log.warning("mail to %s failed (attempt %d), will retry: %s", m.to, attempts, error)
            s.execute(update(OutboxMessage).where(OutboxMessage.id == m.id).values(**values))
