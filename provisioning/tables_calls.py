"""Tables for call records.

Imported at the end of provisioning.store so that Base.metadata (and Alembic) see them.
"""

from __future__ import annotations
