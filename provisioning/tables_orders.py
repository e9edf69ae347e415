"""Tables for number orders and port orders.

Imported at the end of provisioning.store so that Base.metadata (and Alembic) see them.
"""

from __future__ import annotations
