"""Partner kinds and utility types: plain constants, importable without pydantic."""
from __future__ import annotations

PARTNER_KINDS: tuple[str, ...] = ("registry", "tax", "fiscal", "payment", "bank", "utility", "notary", "court",
                                  "city_office")
UTILITY_TYPES: tuple[str, ...] = ("water", "electricity", "gas", "heat", "internet", "cable_tv")
