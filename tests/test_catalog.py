"""The public catalog: one entry per (type, direction), generated from the models; the contract's names."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest

from chalicelib.catalog import build_catalog
from chalicelib.models import EVENT_SPECS, PARTNER_KINDS, validate_data

CONTRACT = Path("/work/shared/CONTRACT.md")

# The contract's lists (v1), used when the contract file is not at hand: name -> kinds.
INBOUND = {
    "application.submitted": {"registry"}, "application.rejected": {"registry"},
    "registration.booked": {"registry"}, "restriction.recorded": {"registry"},
    "tax.assessed": {"tax"}, "tax.cleared": {"tax"},
    "nontax.bill_issued": {"fiscal"}, "nontax.receipt_issued": {"fiscal"},
    "payment.succeeded": {"payment"}, "payment.failed": {"payment"}, "payment.refunded": {"payment"},
    "settlement.ready": {"payment"}, "mortgage.requested": {"bank"},
    "utility.transfer_completed": {"utility"}, "utility.transfer_failed": {"utility"},
    "notarization.completed": {"notary"}, "seizure.ordered": {"court"}, "inquiry.requested": {"court", "bank"},
    "inquiry.answered": {"registry"}, "relay.collected": {"city_office"}, "assist.requested": {"city_office"},
    "relay.accepted": {"registry"}, "relay.rejected": {"registry"}, "relay.originals_received": {"registry"},
    "relay.completed": {"registry"}, "assist.session_opened": {"registry"},
}
OUTBOUND = {
    "tax.assessment_requested": {"tax"}, "tax.booking_shared": {"tax"}, "nontax.bill_requested": {"fiscal"},
    "payment.order_requested": {"payment"}, "application.requested": {"registry"},
    "case.ready_to_book": {"registry"}, "seizure.forwarded": {"registry"}, "relay.requested": {"registry"},
    "assist.requested": {"registry"}, "inquiry.forwarded": {"registry"}, "mortgage.registered": {"bank"},
    "preregistration.shared": {"bank"}, "utility.transfer_requested": {"utility"},
    "registration.result": {"notary", "bank", "city_office"}, "seizure.receipt": {"court"},
    "inquiry.answered": {"court", "bank"}, "relay.status": {"city_office"},
    "assist.session_opened": {"city_office"}, "case.overdue": set(),
}


def _parse_group(text: str) -> dict[str, set[str]]:
    """`a.b`, `c.d` (kind, kind); `e.f` (kind) → {name: kinds}; kinds empty when not partner kinds."""
    found: dict[str, set[str]] = {}
    for segment in text.split(";"):
        names = re.findall(r"`([a-z_]+\.[a-z_]+)`", segment)
        kinds_text = re.findall(r"\(([^)]*)\)", segment)
        kinds = {k.strip() for k in kinds_text[-1].split(",")} if kinds_text else set()
        kinds = kinds if kinds <= set(PARTNER_KINDS) else set()
        for name in names:
            found[name] = kinds
    return found


def contract_lists() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    if not CONTRACT.exists():
        return INBOUND, OUTBOUND
    text = CONTRACT.read_text(encoding="utf-8")
    inbound = re.search(r"Inbound \(partner → hub\):\s*(.*?)\n\n", text, re.S)
    outbound = re.search(r"Outbound \(hub → partner\)[^:]*:\s*(.*?)(?:\n\n|\n##|\Z)", text, re.S)
    assert inbound and outbound, "the contract's type lists moved"
    return _parse_group(inbound.group(1)), _parse_group(outbound.group(1))


def entries() -> dict[tuple[str, str], dict]:
    return {(e["type"], e["direction"]): e for e in build_catalog()["event_types"]}


def test_contract_parse_matches_the_constant_lists():
    inbound, outbound = contract_lists()
    assert inbound == INBOUND
    assert outbound == OUTBOUND


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_catalog_has_every_contract_type(direction):
    inbound, outbound = contract_lists()
    listed = inbound if direction == "inbound" else outbound
    catalog = entries()
    for name, kinds in listed.items():
        assert (name, direction) in catalog, name
        entry = catalog[name, direction]
        if direction == "inbound":
            assert kinds <= set(entry["senders"]), name
            assert entry["receivers"] == []
        else:
            assert kinds <= set(entry["receivers"]), name
            assert entry["senders"] == []


def test_two_way_names_appear_in_both_directions():
    inbound, outbound = contract_lists()
    catalog = entries()
    both = set(inbound) & set(outbound)
    assert both == {"assist.requested", "inquiry.answered", "assist.session_opened"}
    for name in both:
        assert {(name, "inbound"), (name, "outbound")} <= set(catalog)
        assert catalog[name, "inbound"]["schema"] != catalog[name, "outbound"]["schema"]


def test_case_overdue_goes_to_every_kind():
    assert set(entries()["case.overdue", "outbound"]["receivers"]) == set(PARTNER_KINDS)


def test_one_entry_per_spec_with_the_contract_keys():
    catalog = build_catalog()
    assert set(catalog) == {"event_types"}
    assert len(catalog["event_types"]) == len(EVENT_SPECS)
    assert len(entries()) == len(EVENT_SPECS)
    for entry in catalog["event_types"]:
        assert set(entry) == {"type", "senders", "receivers", "direction", "description", "schema", "example"}
        assert entry["direction"] in ("inbound", "outbound")
        assert set(entry["senders"]) | set(entry["receivers"]) <= set(PARTNER_KINDS)
        assert entry["schema"]["type"] == "object"
        assert entry["schema"]["additionalProperties"] is False


def test_catalog_is_json_and_cached():
    first = build_catalog()
    assert build_catalog() is first
    json.loads(json.dumps(first, ensure_ascii=False))


@pytest.mark.parametrize("key", sorted(EVENT_SPECS), ids=[f"{t}:{d}" for t, d in sorted(EVENT_SPECS)])
def test_every_example_matches_its_schema_and_model(key):
    entry = entries()[key]
    jsonschema.Draft202012Validator.check_schema(entry["schema"])
    jsonschema.Draft202012Validator(entry["schema"]).validate(entry["example"])
    validate_data(entry["type"], copy.deepcopy(entry["example"]), entry["direction"])


def test_schema_shows_strict_money_and_identifier_patterns():
    schema = entries()["tax.assessed", "inbound"]["schema"]
    assert schema["properties"]["total_fen"]["type"] == "integer"
    assert schema["properties"]["total_fen"]["minimum"] == 0
    assert schema["properties"]["unit_code"]["pattern"].startswith("^[0-9]{6}")
    assert "total_fen" in schema["required"]


def test_json_schema_refuses_what_the_model_refuses():
    entry = entries()["payment.refunded", "inbound"]
    validator = jsonschema.Draft202012Validator(entry["schema"])
    bad = copy.deepcopy(entry["example"])
    bad["total_fen"] = 80.5
    assert not validator.is_valid(bad)
    bad = copy.deepcopy(entry["example"])
    bad["surprise"] = 1
    assert not validator.is_valid(bad)
