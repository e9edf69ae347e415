"""Access and administration: activation, API tokens, audit events, mail outbox, trunks (provisioning/tables_access.py).

Revision ID: 0002
Revises: 0001
"""

from typing import Sequence, Union

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    pass  # filled in by the issue that adds these tables


def downgrade() -> None:
    pass
