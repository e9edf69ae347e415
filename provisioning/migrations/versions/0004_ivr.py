"""Auto attendants, schedules and announcements (provisioning/tables_ivr.py).

Revision ID: 0004
Revises: 0003

Written out by hand, like 0001: a migration keeps describing the schema as it was.
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _owned_by_org(table: str, location_nullable: bool = False) -> list:
    return [
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("location_id", sa.String(36), nullable=location_nullable),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], name=f"fk_{table}_org_id_organizations",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["location_id"], ["locations.id"], name=f"fk_{table}_location_id_locations"),
    ]


def upgrade() -> None:
    op.create_table(
        "schedules",
        *_owned_by_org("schedules"),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("type", _enum("schedule_type", "BUSINESS_HOURS", "HOLIDAYS"), nullable=False),
        sa.Column("hours", JSON, nullable=True),
        sa.Column("holidays", JSON, nullable=False),
        *_timestamps(),
        sa.UniqueConstraint("location_id", "name", name="uq_schedules_location_id_name"),
    )
    for column in ("org_id", "location_id"):
        op.create_index(f"ix_schedules_{column}", "schedules", [column])

    op.create_table(
        "announcements",
        *_owned_by_org("announcements", location_nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("source_format", sa.String(32), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        *_timestamps(),
        sa.UniqueConstraint("org_id", "name", name="uq_announcements_org_id_name"),
    )
    for column in ("org_id", "location_id"):
        op.create_index(f"ix_announcements_{column}", "announcements", [column])

    op.create_table(
        "announcement_audio",
        sa.Column("announcement_id", sa.String(36), nullable=False),
        sa.Column("wav", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("announcement_id", name="pk_announcement_audio"),
        sa.ForeignKeyConstraint(["announcement_id"], ["announcements.id"],
                                name="fk_announcement_audio_announcement_id_announcements", ondelete="CASCADE"),
    )

    scopes = ("LOCATION", "ENTERPRISE")
    op.create_table(
        "auto_attendants",
        *_owned_by_org("auto_attendants"),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("phone_number", sa.String(16), nullable=True),
        sa.Column("extension", sa.String(6), nullable=True),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("business_schedule_id", sa.String(36), nullable=True),
        sa.Column("holiday_schedule_id", sa.String(36), nullable=True),
        sa.Column("extension_dialing", _enum("extension_dialing", *scopes), nullable=False),
        sa.Column("name_dialing", _enum("name_dialing", *scopes), nullable=False),
        sa.Column("config", JSON, nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(["business_schedule_id"], ["schedules.id"],
                                name="fk_auto_attendants_business_schedule_id_schedules"),
        sa.ForeignKeyConstraint(["holiday_schedule_id"], ["schedules.id"],
                                name="fk_auto_attendants_holiday_schedule_id_schedules"),
        sa.UniqueConstraint("location_id", "name", name="uq_auto_attendants_location_id_name"),
        sa.UniqueConstraint("location_id", "extension", name="uq_auto_attendants_location_id_extension"),
        sa.UniqueConstraint("phone_number", name="uq_auto_attendants_phone_number"),
    )
    for column in ("org_id", "location_id", "business_schedule_id", "holiday_schedule_id"):
        op.create_index(f"ix_auto_attendants_{column}", "auto_attendants", [column])

    op.create_table(
        "attendant_announcements",
        sa.Column("attendant_id", sa.String(36), nullable=False),
        sa.Column("announcement_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("attendant_id", "announcement_id", name="pk_attendant_announcements"),
        sa.ForeignKeyConstraint(["attendant_id"], ["auto_attendants.id"],
                                name="fk_attendant_announcements_attendant_id_auto_attendants",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["announcement_id"], ["announcements.id"],
                                name="fk_attendant_announcements_announcement_id_announcements"),
    )
    op.create_index("ix_attendant_announcements_announcement_id", "attendant_announcements",
                    ["announcement_id"])


def downgrade() -> None:
    op.drop_table("attendant_announcements")
    op.drop_table("auto_attendants")
    op.drop_table("announcement_audio")
    op.drop_table("announcements")
    op.drop_table("schedules")
