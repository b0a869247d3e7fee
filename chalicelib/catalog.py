"""The public event catalog (GET /v1/catalog), generated from `chalicelib.models`.

One entry per (type, direction): a two-way name such as `assist.requested` appears twice, once as
what a partner sends (inbound: `senders` lists the kinds, `receivers` is empty) and once as what the
hub sends (outbound: `senders` is empty, the hub being the sender, `receivers` lists the kinds).
`schema` is the JSON Schema (validation mode) of the canonical `data`; `example` is valid data.

Built on first call and cached for the life of the process; callers must not mutate the result.
"""
from __future__ import annotations

import copy
import functools
from typing import Any

__all__ = ["build_catalog"]


@functools.lru_cache(maxsize=1)
def _catalog() -> dict[str, Any]:
    from chalicelib.models import EVENT_SPECS

    entries = []
    for (type_name, direction), spec in sorted(EVENT_SPECS.items()):
        entries.append({
            "type": type_name,
            "direction": direction,
            "senders": list(spec.senders),
            "receivers": list(spec.receivers),
            "description": spec.description,
            "schema": spec.model.model_json_schema(mode="validation"),
            "example": copy.deepcopy(spec.example),
        })
    return {"event_types": entries}


def build_catalog() -> dict[str, Any]:
    """{"event_types": [{"type", "senders", "receivers", "direction", "description", "schema", "example"}]}"""
    return _catalog()
