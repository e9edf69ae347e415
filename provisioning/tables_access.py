"""Tables for API access and administration: activation, tokens, audit events, mail outbox, trunks.

Imported at the end of provisioning.store so that Base.metadata (and Alembic) see them.
"""

from __future__ import annotations
