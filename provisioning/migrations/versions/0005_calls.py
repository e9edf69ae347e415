"""Call records (provisioning/tables_calls.py).

Revision ID: 0005
Revises: 0004
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "call_records",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=True),
        sa.Column("call_id", sa.String(255), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("caller", JSON, nullable=False),
        sa.Column("callee", JSON, nullable=False),
        sa.Column("dialled", sa.String(64), nullable=False),
        sa.Column("caller_person_id", sa.String(36), nullable=True),
        sa.Column("callee_person_id", sa.String(36), nullable=True),
        sa.Column("location_id", sa.String(36), nullable=True),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answer_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disposition", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("international", sa.Boolean(), nullable=False),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("hangup_by", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_call_records"),
    )
    op.create_index("ix_call_records_org_id_start_time", "call_records", ["org_id", "start_time"])
    op.create_index("ix_call_records_caller_person_id", "call_records", ["caller_person_id"])
    op.create_index("ix_call_records_callee_person_id", "call_records", ["callee_person_id"])
    op.create_index("ix_call_records_location_id", "call_records", ["location_id"])


def downgrade() -> None:
    op.drop_table("call_records")
