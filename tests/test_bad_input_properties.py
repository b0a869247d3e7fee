"""Bad input, measured in process (hypothesis): the mapping engine, every identifier validator and the
signature verifier refuse whatever they are given with their own error, never anything else, and
never repeat the value they refused.

What tests/test_identifiers.py already covers (arbitrary text up to 40 characters; generated resident
IDs, USCCs and unit codes pass; one changed character fails a resident ID or a USCC) is not repeated;
this file adds any JSON value, text shaped like the identifier, transpositions, city codes, and the
pydantic types. tests/test_ingest_properties.py covers the inbound door as a whole.

Rerun: .venv/bin/python -m pytest -q -p no:cacheprovider tests/test_bad_input_properties.py
"""
from __future__ import annotations

import copy
import datetime as dt
import json
import string
import time
from pathlib import Path

import jmespath.functions
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from standardwebhooks import Webhook

from chalicelib import identifiers, mapping, signatures
from chalicelib.errors import HubError
from chalicelib.identifiers import (CityCode, IdentifierError, ResidentId, UnitCode, Uscc, city_of,
                                    resident_id_check_char, uscc_check_char, validate_city_code,
                                    validate_resident_id, validate_unit_code, validate_uscc)

REASONS = {"invalid_format", "invalid_check_digit", "unknown_county", "invalid_birth_date", "not_a_city_code"}
MANY = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SOME = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Leaves a sender could put anywhere: every JSON scalar, odd numbers, numbers as text, dates, long text.
scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2 ** 70, 2 ** 70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
           | st.from_regex(r"\A-?[0-9]{1,20}(\.[0-9]{0,4})?([eE][+-]?[0-9]{1,3})?\Z")
           | st.from_regex(r"\A[0-9]{4}-?[0-9]{2}-?[0-9]{2}([ T][0-9]{2}:?[0-9]{2}:?[0-9]{2})?\Z"))
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=12), children, max_size=5), max_leaves=30)


# ---- the mapping engine ---------------------------------------------------------------------------

def _expressions() -> list[tuple[str, str, str]]:
    """(mapping, direction, event type) of every expression of every mapping file, plus the identity."""
    found = [("canonical", "inbound", "application.submitted")]
    for name in mapping.list_mappings():
        loaded = mapping.load_mapping(name)
        found += [(name, "inbound", t) for t in loaded.inbound_types]
        found += [(name, "outbound", t) for t in loaded.outbound_types]
    return found


EXPRESSIONS = _expressions()
SAMPLES = [(name, sample) for name in mapping.list_mappings() for sample in mapping.load_mapping(name).samples]


def _map(name: str, direction: str, event_type: str, data):
    loaded = mapping.load_mapping(name)
    return (loaded.to_canonical if direction == "inbound" else loaded.to_native)(event_type, data)


def _mapped_or_refused(name: str, direction: str, event_type: str, data) -> None:
    """A JSON object comes out, or HubError(422, mapping_failed) whose reason repeats no input text."""
    try:
        result = _map(name, direction, event_type, data)
    except HubError as exc:
        assert (exc.status, exc.code) == (422, "mapping_failed"), exc
        assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)  # no traceback of it
        text = json.dumps(exc.body(), ensure_ascii=False)
        for leaf in _texts(data):
            assert leaf not in text, (leaf, text)
        return
    assert isinstance(result, dict)
    json.dumps(result, allow_nan=False)


# Every word a refusal's reason is made of: mapping.py's messages, JMESPath's function and type names.
# (Hypothesis also draws strings from the code under test, so an input may be one of these words.)
_VOCABULARY = Path(mapping.__file__).read_text() + Path(jmespath.functions.__file__).read_text()


def _texts(value) -> list[str]:
    """Input strings that could only appear in a message by being copied from the input."""
    if isinstance(value, str):
        return [value] if len(value) >= 8 and value.isalnum() and value not in _VOCABULARY else []
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in _texts(k) + _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def test_every_mapping_file_is_exercised():
    assert {name for name, _, _ in EXPRESSIONS} == set(mapping.list_mappings())
    assert SAMPLES and len(EXPRESSIONS) > 3


@MANY
@given(st.sampled_from(EXPRESSIONS), json_values)
def test_any_json_through_any_expression_maps_or_is_mapping_failed(where, data):
    _mapped_or_refused(*where, data)


@st.composite
def damaged_samples(draw):
    """A mapping file's own sample with leaves replaced, keys dropped or added: close enough to the
    partner's format that the hub functions (amounts, times, code tables) see the odd values."""
    name, sample = draw(st.sampled_from(SAMPLES))
    data = copy.deepcopy(sample["native"] if sample["direction"] == "inbound" else sample["canonical"])
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(data))
        path = draw(st.sampled_from(paths))
        parent, key = _at(data, path)
        action = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if parent is None:
            data = draw(json_values)
            break
        if action == "replace" or (action == "drop" and isinstance(parent, list)):
            parent[key] = draw(json_values)
        elif action == "drop":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
    return name, sample["direction"], sample["type"], data


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, prefix + (index,))


def _at(value, path):
    if not path:
        return None, None
    for step in path[:-1]:
        value = value[step]
    return value, path[-1]


@MANY
@given(damaged_samples())
def test_damaged_samples_map_or_are_mapping_failed(case):
    _mapped_or_refused(*case)


def test_the_undamaged_samples_map():
    """The same driver on the samples as written: it maps them, so the property above can tell."""
    for name, sample in SAMPLES:
        source = sample["native"] if sample["direction"] == "inbound" else sample["canonical"]
        assert isinstance(_map(name, sample["direction"], sample["type"], copy.deepcopy(source)), dict)


# ---- identifier validators ------------------------------------------------------------------------

VALIDATORS = (validate_resident_id, validate_uscc, validate_unit_code, validate_city_code, city_of)


@MANY
@given(json_values)
def test_validators_refuse_any_json_value_with_their_own_error(value):
    for validate in VALIDATORS:
        try:
            validate(value)
        except IdentifierError as exc:
            assert exc.code in REASONS
    assert identifiers.is_city_code(value) in (True, False)


# Text with each identifier's length and alphabet, and the characters that fool a careless check:
# whitespace, lower case, full-width and other Unicode digits, letters a check must refuse.
TRICKY = "0123456789X" + "ABCDEFGHJKLMNPQRTUWXYIOSVZ" + "xabc" + " \t\n" + "０１９Ｘ٣ſ\u00a0"
shaped = (st.text(TRICKY, min_size=16, max_size=20) | st.text(TRICKY, min_size=26, max_size=30)
          | st.text(TRICKY, min_size=5, max_size=7))


@MANY
@given(shaped)
def test_identifier_shaped_text_is_refused_with_a_stable_reason_and_never_echoed(value):
    for validate in VALIDATORS:
        try:
            result = validate(value)
        except IdentifierError as exc:
            assert exc.code in REASONS
            assert len(value.strip()) < 8 or value.strip() not in str(exc)
        else:
            assert result.isascii() and result == result.strip()


ADDRESS = sorted(c for districts in identifiers.FIVE_CITY_DISTRICTS.values() for c in districts)


@st.composite
def resident_ids(draw) -> str:
    born = draw(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2020, 12, 31)))
    first17 = f"{draw(st.sampled_from(ADDRESS))}{born:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    return first17 + resident_id_check_char(first17)


USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


@st.composite
def usccs(draw) -> str:
    first17 = (draw(st.text(USCC_CHARS, min_size=2, max_size=2)) + draw(st.from_regex(r"\A[0-9]{6}\Z"))
               + draw(st.text(USCC_CHARS, min_size=9, max_size=9)))
    return first17 + uscc_check_char(first17)


@MANY
@given(st.one_of(resident_ids().map(lambda v: (validate_resident_id, v)), usccs().map(lambda v: (validate_uscc, v))),
       st.integers(0, 15))
def test_swapping_two_adjacent_characters_fails_the_check(case, position):
    """GB 11643 (MOD 11-2) and GB 32100 (MOD 31-3) catch every transposition of two adjacent characters."""
    validate, value = case
    assume(value[position] != value[position + 1])
    swapped = value[:position] + value[position + 1] + value[position] + value[position + 2:]
    with pytest.raises(IdentifierError) as info:
        validate(swapped)
    assert info.value.code in REASONS


@st.composite
def county_codes(draw) -> str:
    """Six digits that a unit code may start with: any known county of the five cities, or any
    structurally valid county elsewhere."""
    if draw(st.booleans()):
        return draw(st.sampled_from(ADDRESS + sorted(identifiers.LEGACY_DISTRICTS)))
    code = draw(st.sampled_from(sorted(identifiers._PROVINCES))) + draw(st.from_regex(r"\A[0-9]{4}\Z"))
    assume(identifiers._county_known(code))
    return code


@SOME
@given(county_codes(), st.from_regex(r"\A[0-9]{6}[GJZ][ABSXCDEFLNHGWY][0-9]{5}[FLQ][0-9]{8}\Z"))
def test_every_accepted_unit_code_belongs_to_a_valid_city(county, rest):
    unit = validate_unit_code(county + rest)
    assert validate_city_code(city_of(unit)) == city_of(county)


class Holder(BaseModel):
    unit: UnitCode | None = None
    person: ResidentId | None = None
    org: Uscc | None = None
    city: CityCode | None = None


@MANY
@given(st.sampled_from(["unit", "person", "org", "city"]), json_values | shaped)
def test_the_pydantic_types_refuse_with_a_validation_error_only(field, value):
    try:
        Holder.model_validate({field: value})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            assert error["type"] in REASONS | {"string_type"}
            if isinstance(value, str) and len(value) >= 4:
                assert value not in error["msg"]


# ---- the signature verifier -----------------------------------------------------------------------

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
header_text = st.text(string.printable + "é中", max_size=80)


@MANY
@given(st.dictionaries(st.sampled_from(["webhook-id", "Webhook-Timestamp", "webhook-signature", "other"])
                       | st.text(max_size=20), header_text | st.from_regex(r"\A[0-9]{1,14}\Z"), max_size=5))
def test_any_headers_are_read_or_refused_with_400(headers):
    try:
        msg_id, stamp, signature = signatures.read_headers(headers)
    except HubError as exc:
        assert exc.status == 400 and exc.code in ("missing_signature_headers", "invalid_webhook_id",
                                                  "invalid_webhook_timestamp")
    else:
        assert msg_id and signature and 0 <= stamp < 10 ** 12


@MANY
@given(st.from_regex(r"\A[\x21-\x7e]{1,40}\Z"), st.integers(0, 10 ** 12 - 1), header_text, st.text(max_size=200),
       st.sampled_from([[SECRET], None, [SECRET, "whsec_" + "A" * 44]]))
def test_any_signature_is_verified_or_refused_with_401(msg_id, stamp, signature, body, secrets):
    """The stamp ranges over every value read_headers lets through (up to year 33658)."""
    try:
        signatures.verify(secrets, msg_id, stamp, signature, body, time.time(), 300)
    except HubError as exc:
        assert (exc.status, exc.code) == (401, "unauthenticated")
    else:
        pytest.fail("a made-up signature verified")


@MANY
@given(st.from_regex(r"\A[\x21-\x7e]{1,40}\Z"), st.integers(-300, 300), st.text(max_size=200), st.data())
def test_a_partner_signature_verifies_and_any_one_change_breaks_it(msg_id, skew, body, data):
    now = int(time.time())
    stamp = now + skew
    signature = Webhook(SECRET).sign(msg_id, dt.datetime.fromtimestamp(stamp, tz=dt.timezone.utc), body)
    signatures.verify([SECRET], msg_id, stamp, signature, body, now, 300)

    part = data.draw(st.sampled_from(["body", "id", "signature", "stamp"]))
    changed = {"body": body, "id": msg_id, "signature": signature, "stamp": stamp}
    if part == "stamp":
        changed["stamp"] = stamp + data.draw(st.sampled_from([-1, 1]))
    else:
        text = changed[part]
        # A signature keeps "v1," and its last two base64 characters (which may carry only padding bits).
        low, high = (3, len(text) - 3) if part == "signature" else (0, len(text))  # high == len: append
        index = data.draw(st.integers(low, high))
        char = data.draw(st.characters(codec="utf-8") if part == "body"  # a body is decoded UTF-8: no surrogates
                         else st.characters(codec="ascii", categories=["L", "N"]))
        new = text[:index] + char + text[index + 1:]
        assume(new != text)
        changed[part] = new
    with pytest.raises(HubError) as info:
        signatures.verify([SECRET], changed["id"], changed["stamp"], changed["signature"], changed["body"], now, 300)
    assert info.value.status == 401
