"""Access and administration: activation, API tokens, audit events, mail outbox, idempotency
keys, the store generation and trunks (provisioning/tables_access.py); location routing prefix,
outside dial digit, contact and main-number destination; device type.

Revision ID: 0002
Revises: 0001
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("locations") as batch:
        batch.add_column(sa.Column("main_destination_type", sa.String(16), nullable=True))
        batch.add_column(sa.Column("main_destination_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("routing_prefix", sa.String(8), nullable=True))
        batch.add_column(sa.Column("outside_dial_digit", sa.String(1), nullable=True))
        batch.add_column(sa.Column("contact", JSON, nullable=True))
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("device_type", sa.String(16), nullable=False, server_default="DESK_PHONE"))

    op.create_table(
        "activations",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        _ts("locked_until", nullable=True),
        _ts("created_at"),
        _ts("completed_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_activations"),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_activations_org_id_organizations", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("org_id", name="uq_activations_org_id"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("name", sa.String(254), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(36), nullable=True),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_api_tokens_org_id_organizations", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("secret_hash", name="uq_api_tokens_secret_hash"),
    )
    op.create_index("ix_api_tokens_org_id", "api_tokens", ["org_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=True),
        _ts("time"),
        sa.Column("actor_id", sa.String(36), nullable=True),
        sa.Column("actor_name", sa.String(254), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(64), nullable=False),
        sa.Column("target_id", sa.String(64), nullable=False),
        sa.Column("before", JSON, nullable=True),
        sa.Column("after", JSON, nullable=True),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_org_id", "audit_events", ["org_id"])
    op.create_index("ix_audit_events_time", "audit_events", ["time"])
    op.create_index("ix_audit_events_actor_name", "audit_events", ["actor_name"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=True),
        sa.Column("to", sa.String(254), nullable=False),
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(500), nullable=True),
        _ts("next_attempt_at", nullable=True),
        _ts("created_at"),
        _ts("sent_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_org_id", "outbox", ["org_id"])
    op.create_index("ix_outbox_status", "outbox", ["status"])
    op.create_table(
        "idempotency_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_idempotency_keys"),
        sa.UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    op.create_table(
        "store_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_store_generation"),
    )
    op.execute("INSERT INTO store_generation (id, value) VALUES (1, 0)")
    op.create_table(
        "trunks",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("host", sa.String(253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("transport", sa.String(3), nullable=False),
        sa.Column("register", sa.Boolean(), nullable=False),
        sa.Column("username", sa.String(64), nullable=True),
        sa.Column("realm", sa.String(253), nullable=True),
        sa.Column("ha1", JSON, nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_trunks"),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_trunks_org_id_organizations", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("org_id", "name", name="uq_trunks_org_id_name"),
    )
    op.create_index("ix_trunks_org_id", "trunks", ["org_id"])


def downgrade() -> None:
    for table in ("trunks", "store_generation", "idempotency_keys", "outbox", "audit_events", "api_tokens",
                  "activations"):
        op.drop_table(table)
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("device_type")
    with op.batch_alter_table("locations") as batch:
        for column in ("contact", "outside_dial_digit", "routing_prefix", "main_destination_id",
                       "main_destination_type"):
            batch.drop_column(column)
