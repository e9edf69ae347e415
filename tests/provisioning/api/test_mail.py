"""Mail through the outbox: logged and kept without SMTP, retried until a server answers, never
holding up the request that queued it."""

from __future__ import annotations

import asyncio
import logging
import time

from aiosmtpd.controller import Controller
from sqlalchemy import select

from provisioning.mail import FAILED, LOGGED, MAX_ATTEMPTS, QUEUED, SENT, Mailer, SmtpConfig, backoff
from provisioning.service import Services, system_actor
from provisioning.store import Store
from provisioning.tables_access import OutboxMessage
from tests.provisioning.api.conftest import Clock, MailSink
from tests.server import free_port


def _queue(services: Services, to: str = "ann@acme.example") -> None:
    with services.unit_of_work(system_actor("test")) as uow:
        uow.mail(to, "Hello", "Body text\n")


def _rows(store: Store) -> list[OutboxMessage]:
    with store.session() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.created_at)))


def test_backoff_doubles_up_to_ten_minutes():
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 9, 10, 20)] == [2, 4, 8, 512, 600, 600]


async def test_without_smtp_mail_is_logged_and_kept(store_url, caplog):
    with Store.open(store_url) as store:
        services = Services(store)  # no SMTP configured
        with caplog.at_level(logging.INFO, logger="callrouter.mail"):
            _queue(services)
        (row,) = _rows(store)
        assert (row.status, row.to, row.subject) == (LOGGED, "ann@acme.example", "Hello")
        assert "ann@acme.example" in caplog.text and "Body text" in caplog.text
        assert await services.mailer.send_due() == 0


async def test_unreachable_server_is_retried_until_it_answers(store_url):
    port = free_port()
    clock = Clock()
    with Store.open(store_url) as store:
        mailer = Mailer(store, SmtpConfig("127.0.0.1", port, timeout=2.0), clock=clock)
        services = Services(store, mailer=mailer, clock=clock)
        _queue(services)
        assert await mailer.send_due() == 0  # nobody listens on the port yet
        (row,) = _rows(store)
        assert (row.status, row.attempts) == (QUEUED, 1) and "Error" in row.last_error
        assert await mailer.send_due() == 0  # not due before its backoff
        sink = MailSink()
        controller = Controller(sink, hostname="127.0.0.1", port=port)
        controller.start()
        try:
            clock.advance(seconds=backoff(1).total_seconds() + 0.1)
            assert await mailer.send_due() == 1
        finally:
            controller.stop()
        (row,) = _rows(store)
        assert (row.status, row.attempts, row.last_error) == (SENT, 2, None)
        (message,) = sink.messages
        assert message["To"] == "ann@acme.example" and message.get_payload().replace("\r\n", "\n") == "Body text\n"


async def test_gives_up_after_the_last_attempt(store_url):
    clock = Clock()
    with Store.open(store_url) as store:
        mailer = Mailer(store, SmtpConfig("127.0.0.1", free_port(), timeout=1.0), clock=clock)
        _queue(Services(store, mailer=mailer, clock=clock))
        for _ in range(MAX_ATTEMPTS):
            await mailer.send_due()
            clock.advance(minutes=11)
        (row,) = _rows(store)
        assert (row.status, row.attempts) == (FAILED, MAX_ATTEMPTS)


async def test_a_slow_smtp_server_does_not_hold_up_requests(store_url):
    class SlowSink(MailSink):
        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            await asyncio.sleep(1.5)
            return await super().handle_DATA(server, session, envelope)

    sink = SlowSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        with Store.open(store_url) as store:
            mailer = Mailer(store, SmtpConfig("127.0.0.1", port, timeout=5.0), poll_interval=0.2)
            services = Services(store, mailer=mailer)
            mailer.start()
            try:
                started = time.monotonic()
                _queue(services)  # what a request handler does: commit, nudge the sender, return
                assert time.monotonic() - started < 0.5
                assert sink.messages == []
                deadline = time.monotonic() + 10
                while not sink.messages and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                assert len(sink.messages) == 1
            finally:
                await mailer.stop()
    finally:
        controller.stop()
