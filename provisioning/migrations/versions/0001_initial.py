"""Organisations, locations, people, devices and numbers.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out by hand rather than importing the models: a migration must keep describing the
schema as it was, whatever the models become later.
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: Union[str, Sequence[str], None] = None
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


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("subscription", _enum("subscription", "TRIAL", "PAID"), nullable=False),
        sa.Column("business_account", sa.Boolean(), nullable=False),
        sa.Column("sip_realm", sa.String(253), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_organizations"),
        sa.UniqueConstraint("name", name="uq_organizations_name"),
        sa.UniqueConstraint("sip_realm", name="uq_organizations_sip_realm"),
    )
    op.create_table(
        "locations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("address", JSON, nullable=False),
        sa.Column("emergency_address", JSON, nullable=False),
        sa.Column(
            "pstn_type",
            _enum("pstn_type", "CALLING_PLAN", "CLOUD_CONNECTED_PSTN", "LOCAL_GATEWAY"),
            nullable=True,
        ),
        sa.Column("pstn_trunk", sa.String(200), nullable=True),
        sa.Column("main_number", sa.String(16), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_locations"),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_locations_org_id_organizations", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("org_id", "name", name="uq_locations_org_id_name"),
    )
    op.create_index("ix_locations_org_id", "locations", ["org_id"])
    op.create_table(
        "people",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("location_id", sa.String(36), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("first_name", sa.String(100), nullable=False),
        sa.Column("last_name", sa.String(100), nullable=False),
        sa.Column("extension", sa.String(6), nullable=True),
        sa.Column("phone_number", sa.String(16), nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_people"),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_people_org_id_organizations", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(["location_id"], ["locations.id"], name="fk_people_location_id_locations"),
        sa.UniqueConstraint("email", name="uq_people_email"),
        sa.UniqueConstraint("phone_number", name="uq_people_phone_number"),
        sa.UniqueConstraint("location_id", "extension", name="uq_people_location_id_extension"),
    )
    op.create_index("ix_people_org_id", "people", ["org_id"])
    op.create_index("ix_people_location_id", "people", ["location_id"])
    op.create_table(
        "devices",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("person_id", sa.String(36), nullable=False),
        sa.Column("sip_username", sa.String(64), nullable=False),
        sa.Column("ha1_md5", sa.String(32), nullable=False),
        sa.Column("ha1_sha256", sa.String(64), nullable=False),
        sa.Column("ha1_sha512_256", sa.String(64), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.ForeignKeyConstraint(
            ["person_id"], ["people.id"], name="fk_devices_person_id_people", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("sip_username", name="uq_devices_sip_username"),
    )
    op.create_index("ix_devices_person_id", "devices", ["person_id"])
    op.create_table(
        "numbers",
        sa.Column("e164", sa.String(16), nullable=False),
        sa.Column("location_id", sa.String(36), nullable=False),
        sa.Column(
            "state", _enum("number_state", "ACTIVE", "INACTIVE", "PORT_PENDING"), nullable=False
        ),
        sa.Column("owner_id", sa.String(36), nullable=True),
        sa.Column("is_main", sa.Boolean(), nullable=False),
        sa.Column("emergency_address", JSON, nullable=True),
        *_timestamps(),
        sa.PrimaryKeyConstraint("e164", name="pk_numbers"),
        sa.ForeignKeyConstraint(["location_id"], ["locations.id"], name="fk_numbers_location_id_locations"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["people.id"], name="fk_numbers_owner_id_people", ondelete="SET NULL"
        ),
    )
    op.create_index("ix_numbers_location_id", "numbers", ["location_id"])
    op.create_index("ix_numbers_owner_id", "numbers", ["owner_id"])


def downgrade() -> None:
    op.drop_table("numbers")
    op.drop_table("devices")
    op.drop_table("people")
    op.drop_table("locations")
    op.drop_table("organizations")
