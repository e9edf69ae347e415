"""Who is calling, as the B2BUA identified them."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeviceCaller:
    """A phone of ours (identified by its registration or digest credentials)."""
    sip_username: str


@dataclass(frozen=True, slots=True)
class TrunkCaller:
    """A call arriving from a PSTN trunk."""
    trunk_name: str
    from_number: str | None = None
    trunk_id: str | None = None  # tells apart two organisations' trunks of the same name
