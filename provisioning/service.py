"""The service layer: every change to the store goes through one ``UnitOfWork``.

A unit of work is one database transaction that commits whole or not at all. Alongside the
rows it changes it writes their audit entries and queues their mail (both in the same
transaction), and it collects change events that are delivered only after the commit. The API,
the organisation file (``callrouter apply``) and the CSV import all use it, so each change is
audited and reaches routing the same way whatever made it.

Write units of work take the store's exclusive session (SQLite ``BEGIN IMMEDIATE``; a
PostgreSQL advisory lock), so the read-check-write sequences of business rules (a free
extension, a number not yet given away) cannot interleave between processes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, update
from sqlalchemy.orm import Session

from provisioning import audit
from provisioning.events import ChangeEvent, EventBus
from provisioning.mail import Mailer
from provisioning.store import Store
from provisioning.tables_access import OutboxMessage, StoreGeneration


class Role(enum.StrEnum):
    OWNER = "OWNER"
    FULL_ADMIN = "FULL_ADMIN"  # a customer administrator
    PARTNER_ADMIN = "PARTNER_ADMIN"  # administers on the customer's behalf
    READ_ONLY = "READ_ONLY"


WRITE_ROLES = frozenset({Role.OWNER, Role.FULL_ADMIN, Role.PARTNER_ADMIN})
READ_ROLES = frozenset({Role.READ_ONLY})
CUSTOMER_ROLES = frozenset({Role.OWNER, Role.FULL_ADMIN})


@dataclass(frozen=True, slots=True)
class Actor:
    token_id: str
    role: Role
    name: str  # e-mail or label, as the audit trail shows it
    org_id: str = ""


def system_actor(name: str, org_id: str = "") -> Actor:
    """The actor for changes no token made: the organisation file, the CSV import, activation."""
    return Actor(token_id="", role=Role.OWNER, name=f"{audit.SYSTEM_ACTOR}:{name}", org_id=org_id)


def _mark_written(session: Session, _flush_context: Any) -> None:
    session.info["wrote"] = True


class UnitOfWork:
    """One transaction's worth of change; see the module docstring."""

    def __init__(self, services: Services, session: Session, actor: Actor | None, org_id: str | None) -> None:
        self.services = services
        self.session = session
        self.actor = actor
        # The organisation audit entries and mail belong to; the actor's unless set (the
        # organisation file sets it once it has created the organisation).
        self.org_id = org_id if org_id is not None else (actor.org_id if actor and actor.org_id else None)
        self.now = services.clock()
        self.events: list[ChangeEvent] = []
        self.messages: list[OutboxMessage] = []
        self.before_commit: list[Callable[[Session], None]] = []
        self._seq = 0

    def audit(self, action: str, target_type: str, target_id: str, before: dict | None, after: dict | None,
              *, org_id: str | None = None) -> None:
        actor = self.actor
        audit.record(self.session, org_id=org_id or self.org_id, actor_id=actor.token_id if actor else None,
                     actor_name=actor.name if actor else audit.SYSTEM_ACTOR, action=action,
                     target_type=target_type, target_id=str(target_id), before=before, after=after,
                     time=self.now, seq=self._seq)
        self._seq += 1

    def publish(self, event: ChangeEvent) -> None:
        """Deliver ``event`` to subscribers once (and only if) this unit of work commits."""
        self.events.append(event)

    def mail(self, to: str, subject: str, body: str) -> None:
        """Queue a mail in this transaction; it is sent (or logged) only after the commit."""
        self.messages.append(self.services.mailer.enqueue(self.session, self.org_id, to, subject, body))

    def change(self, entity: str, entity_id: str, action: str, before: dict | None, after: dict | None,
               *, target_type: str | None = None) -> None:
        """Audit and publish one entity's change in one call (the common case)."""
        self.audit(f"{entity}.{action}", target_type or entity, entity_id, before, after)
        self.publish(ChangeEvent(entity, str(entity_id), action, after if after is not None else (before or {})))  # type: ignore[arg-type]

    def _finish(self) -> None:
        for hook in self.before_commit:
            hook(self.session)
        self.session.flush()
        if self.session.info.get("wrote") or self.events or self.messages:
            self.session.execute(update(StoreGeneration).where(StoreGeneration.id == 1)
                                 .values(value=StoreGeneration.value + 1))


@dataclass
class Services:
    """What a unit of work needs; the API context, the org file and the CLI each hold one."""

    store: Store
    events: EventBus = field(default_factory=EventBus)
    mailer: Mailer | None = None
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def __post_init__(self) -> None:
        if self.mailer is None:
            self.mailer = Mailer(self.store, None, clock=self.clock)

    @contextmanager
    def unit_of_work(self, actor: Actor | None, *, org_id: str | None = None,
                     before_commit: Callable[[Session], None] | None = None) -> Iterator[UnitOfWork]:
        with self.store.session(exclusive=True) as session:
            event.listen(session, "after_flush", _mark_written)
            uow = UnitOfWork(self, session, actor, org_id)
            if before_commit is not None:
                uow.before_commit.append(before_commit)
            yield uow
            uow._finish()
        self.events.deliver(uow.events)
        assert self.mailer is not None
        self.mailer.committed(uow.messages)
