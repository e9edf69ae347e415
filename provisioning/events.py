"""Change events: what a committed unit of work changed, for whoever keeps a copy (routing).

Provisioning never imports its consumers; the wiring subscribes them here. Subscribers get
the events of one commit together, in the order they were published, and only after the
commit succeeded, so they never see a change that was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger("callrouter.events")

Action = Literal["created", "updated", "deleted"]
Subscriber = Callable[[Sequence["ChangeEvent"]], None]


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One entity's change. ``data`` is the entity as the API shows it after the change (for
    "deleted": as it was), so a subscriber can apply it without reading the store."""

    entity: str  # "organization", "location", "person", "device", "number", "trunk", ...
    entity_id: str
    action: Action
    data: dict[str, Any] = field(default_factory=dict, hash=False)


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback(events)`` after every commit that published events; returns an unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            try:
                self._subscribers.remove(callback)
            except ValueError:
                pass

        return unsubscribe

    def deliver(self, events: Sequence[ChangeEvent]) -> None:
        """Hand one commit's events to every subscriber.

        The change is already committed, so a subscriber that fails cannot undo it and must not
        fail the request that made it: the error is logged and the other subscribers still run.
        """
        if not events:
            return
        for callback in list(self._subscribers):
            try:
                callback(list(events))  # a list of its own: one subscriber cannot alter another's
            except Exception:
                log.exception("change-event subscriber %r failed on %d events", callback, len(events))
