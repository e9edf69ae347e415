"""Number orders and port orders (provisioning/tables_orders.py).

Revision ID: 0003
Revises: 0002

Written out by hand, like 0001: a migration keeps describing the schema as it was.
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

REJECTION_CODES = (
    "ACCOUNT_NUMBER_MISMATCH", "ACCOUNT_NUMBER_REQUIRED", "ACCOUNT_NAME_MISMATCH", "BTN_MISMATCH",
    "COMPANY_NAME_MISMATCH", "MULTIPLE_BTNS", "FOC_REJECTED", "INVALID_PIN", "PENDING_ORDER", "PENDING_MAIN_BTN",
    "SERVICE_ADDRESS_MISMATCH", "TN_SPECIAL_FEATURE", "TN_MISMATCH", "TN_NOT_PORTABLE", "UNSUPPORTED_RATE_CENTER",
    "POSTAL_CODE_MISMATCH", "PREVIOUS_BILL_INVALID", "LOA_INVALID", "UNKNOWN",
)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _owned_by_org(table: str) -> list:
    return [
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("location_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
        sa.ForeignKeyConstraint(["org_id"], ["organizations.id"], name=f"fk_{table}_org_id_organizations",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["location_id"], ["locations.id"], name=f"fk_{table}_location_id_locations"),
    ]


def upgrade() -> None:
    op.create_table(
        "number_orders",
        *_owned_by_org("number_orders"),
        sa.Column("kind", _enum("order_kind", "NUMBERS", "BLOCK", "SEARCH", "REQUEST"), nullable=False),
        sa.Column("status", _enum("order_status", "PENDING", "ACTION_REQUIRED", "COMPLETED", "ERROR"), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("numbers", JSON, nullable=False),
        sa.Column("released", JSON, nullable=False),
        sa.Column("search", JSON, nullable=True),
        sa.Column("number_kind", _enum("number_kind", "LOCAL", "NATIONAL"), nullable=True),
        sa.Column("carrier_reference", sa.String(64), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("created_by", sa.String(254), nullable=False),
        sa.Column("terms_accepted_by", sa.String(254), nullable=True),
        sa.Column("terms_accepted_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
    )
    for column in ("org_id", "location_id", "status"):
        op.create_index(f"ix_number_orders_{column}", "number_orders", [column])

    op.create_table(
        "port_orders",
        *_owned_by_org("port_orders"),
        sa.Column(
            "status",
            _enum("port_status", "PENDING", "SUBMITTED", "FOC_RECEIVED", "COMPLETED", "REJECTED", "CANCELLED"),
            nullable=False,
        ),
        sa.Column("numbers", JSON, nullable=False),
        sa.Column("flagged", JSON, nullable=False),
        sa.Column("account_number", sa.String(64), nullable=True),
        sa.Column("pin", sa.String(32), nullable=True),
        sa.Column("btn", sa.String(16), nullable=True),
        sa.Column("company_name", sa.String(200), nullable=True),
        sa.Column("authorized_name", sa.String(200), nullable=True),
        sa.Column("service_address", JSON, nullable=True),
        sa.Column("remaining_numbers_action", sa.String(16), nullable=True),
        sa.Column("new_btn", sa.String(16), nullable=True),
        sa.Column("requested_date", sa.Date(), nullable=True),
        sa.Column("requested_time", sa.Time(), nullable=True),
        sa.Column("notification_email", sa.String(254), nullable=True),
        sa.Column("loa_signed_name", sa.String(200), nullable=True),
        sa.Column("loa_title", sa.String(200), nullable=True),
        sa.Column("loa_signed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("loa_numbers", JSON, nullable=True),
        sa.Column("submit_requested", sa.Boolean(), nullable=False),
        sa.Column("carrier_reference", sa.String(64), nullable=True),
        sa.Column("submitted_on", sa.Date(), nullable=True),
        sa.Column("foc_date", sa.Date(), nullable=True),
        sa.Column("rejection_code", _enum("rejection_code", *REJECTION_CODES), nullable=True),
        sa.Column("rejection_detail", sa.String(500), nullable=True),
        sa.Column("completed_on", sa.Date(), nullable=True),
        sa.Column("reminders_sent", sa.Integer(), nullable=False),
        sa.Column("last_reminder_on", sa.Date(), nullable=True),
        sa.Column("created_by", sa.String(254), nullable=False),
        *_timestamps(),
    )
    for column in ("org_id", "location_id", "status"):
        op.create_index(f"ix_port_orders_{column}", "port_orders", [column])

    op.create_table(
        "port_order_bills",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("port_order_id", sa.String(36), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("content_type", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("issue_date", sa.Date(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("uploaded_by", sa.String(254), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_port_order_bills"),
        sa.ForeignKeyConstraint(["port_order_id"], ["port_orders.id"], name="fk_port_order_bills_port_order_id_port_orders",
                                ondelete="CASCADE"),
    )
    op.create_index("ix_port_order_bills_port_order_id", "port_order_bills", ["port_order_id"])


def downgrade() -> None:
    op.drop_table("port_order_bills")
    op.drop_table("port_orders")
    op.drop_table("number_orders")
