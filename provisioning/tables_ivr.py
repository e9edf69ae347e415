"""Tables for auto attendants, schedules and announcements.

Imported at the end of provisioning.store so that Base.metadata (and Alembic) see them.

An auto attendant's menus and input policies are one JSON document (``config``), exactly as
the API shows them: they are always read and replaced whole, and nothing queries inside them.
What other rows must not lose track of is kept relationally instead: the schedules it uses
are foreign keys, and the announcements its menus play are rows of
``attendant_announcements``, so deleting a schedule or an announcement in use fails in
the database even if a check were ever skipped.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from provisioning.store import Base, JSONDocument, _enum, _Timestamps, new_id


class ScheduleType(enum.StrEnum):
    BUSINESS_HOURS = "BUSINESS_HOURS"
    HOLIDAYS = "HOLIDAYS"


class DialingScope(enum.StrEnum):
    LOCATION = "LOCATION"
    ENTERPRISE = "ENTERPRISE"


class Schedule(_Timestamps, Base):
    """Weekly business hours or a list of holidays, named within a location (as in Webex Calling)."""

    __tablename__ = "schedules"
    __table_args__ = (UniqueConstraint("location_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    location_id: Mapped[str] = mapped_column(ForeignKey("locations.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    type: Mapped[ScheduleType] = mapped_column(_enum(ScheduleType, "schedule_type"))
    # BUSINESS_HOURS: {"monday": [{"startTime": "09:00", "endTime": "17:00"}], ...}
    hours: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument)
    # HOLIDAYS: [{"name", "date", "endDate", "startTime", "endTime"} | {"month", "day"} | ...]
    holidays: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, default=list)


class Announcement(_Timestamps, Base):
    """An uploaded recording, converted to 8 kHz mono WAV; the audio itself is in AnnouncementAudio."""

    __tablename__ = "announcements"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    # None: usable by every location's attendants; otherwise only by that location's.
    location_id: Mapped[str | None] = mapped_column(ForeignKey("locations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    file_name: Mapped[str] = mapped_column(String(255))
    source_format: Mapped[str] = mapped_column(String(32))
    duration_ms: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(Integer)  # of the stored WAV
    sha256: Mapped[str] = mapped_column(String(64))


class AnnouncementAudio(Base):
    """The WAV bytes, apart so that listing announcements never loads megabytes of audio."""

    __tablename__ = "announcement_audio"

    announcement_id: Mapped[str] = mapped_column(ForeignKey("announcements.id", ondelete="CASCADE"),
                                                 primary_key=True)
    wav: Mapped[bytes] = mapped_column(LargeBinary)


class AutoAttendant(_Timestamps, Base):
    __tablename__ = "auto_attendants"
    __table_args__ = (UniqueConstraint("location_id", "name"), UniqueConstraint("location_id", "extension"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    location_id: Mapped[str] = mapped_column(ForeignKey("locations.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Not a foreign key, like Person.phone_number: numbers.e164 is the number's own row.
    phone_number: Mapped[str | None] = mapped_column(String(16), unique=True)
    extension: Mapped[str | None] = mapped_column(String(6))
    language: Mapped[str] = mapped_column(String(16), default="en")
    business_schedule_id: Mapped[str | None] = mapped_column(ForeignKey("schedules.id"), index=True)
    holiday_schedule_id: Mapped[str | None] = mapped_column(ForeignKey("schedules.id"), index=True)
    extension_dialing: Mapped[DialingScope] = mapped_column(_enum(DialingScope, "extension_dialing"))
    name_dialing: Mapped[DialingScope] = mapped_column(_enum(DialingScope, "name_dialing"))
    # businessHoursMenu, afterHoursMenu, submenus, noInput, invalidInput, transferFallback,
    # interDigitTimeoutSeconds: as the API shows them.
    config: Mapped[dict[str, Any]] = mapped_column(JSONDocument)


class AutoAttendantAnnouncement(Base):
    """An announcement one of the attendant's menus plays (greeting or PLAY_ANNOUNCEMENT key)."""

    __tablename__ = "attendant_announcements"

    attendant_id: Mapped[str] = mapped_column(ForeignKey("auto_attendants.id", ondelete="CASCADE"),
                                                   primary_key=True)
    announcement_id: Mapped[str] = mapped_column(ForeignKey("announcements.id"), primary_key=True, index=True)
