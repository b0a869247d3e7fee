"""Identifiers with check digits (reference/domain_cn.md §1-§2) and the city of a unit."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from chalicelib.identifiers import (FIVE_CITIES, FIVE_CITY_DISTRICTS, LEGACY_DISTRICTS, CityCode, IdentifierError,
                                    ResidentId, UnitCode, Uscc, city_of, is_city_code, resident_id_check_char,
                                    uscc_check_char, validate_city_code, validate_resident_id, validate_unit_code,
                                    validate_uscc)

USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def reason(fn, value) -> str:
    with pytest.raises(IdentifierError) as info:
        fn(value)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(info.value.code + ":")
    if isinstance(value, str) and len(value) >= 4:
        assert value not in str(info.value)
    return info.value.code


# ---- §2.4 verification run ---------------------------------------------------------------

@pytest.mark.parametrize("value", ["11010519491231002X", "110105195001010039", "11010519500101999X",
                                   "11010519500102000X"])
def test_resident_id_valid_examples(value):
    assert validate_resident_id(value) == value


def test_resident_id_normalizes_case_and_whitespace():
    assert validate_resident_id(" 11010519491231002x ") == "11010519491231002X"


@pytest.mark.parametrize("value, code", [
    ("110101199001011234", "invalid_check_digit"),   # §2.4: check should be 7
    ("110101199001011237", None),
    ("11010519491231002Y", "invalid_format"),
    ("1101051949123100", "invalid_format"),           # too short
    ("110105491231002", "invalid_format"),            # old 15-digit form
    ("11010519491231002X1", "invalid_format"),
    ("00010519491231002X", "invalid_format"),         # no such region
    ("", "invalid_format"),
])
def test_resident_id_invalid(value, code):
    if code is None:
        assert validate_resident_id(value) == value
    else:
        assert reason(validate_resident_id, value) == code


def _with_check(first17: str) -> str:
    return first17 + resident_id_check_char(first17)


@pytest.mark.parametrize("birth", ["19490231", "19491301", "19490000", "18000101", "29990101"])
def test_resident_id_bad_birth_date(birth):
    value = _with_check("110105" + birth + "002")
    assert reason(validate_resident_id, value) == "invalid_birth_date"


def test_resident_id_future_birth_date():
    tomorrow = dt.date.today() + dt.timedelta(days=2)
    value = _with_check("110105" + tomorrow.strftime("%Y%m%d") + "002")
    assert reason(validate_resident_id, value) == "invalid_birth_date"


def test_resident_id_not_a_string():
    assert reason(validate_resident_id, 11010519491231002) == "invalid_format"


@pytest.mark.parametrize("value", ["91350100M000100Y43", "91310230MA1K314J7C", "91310230MA1K314K57",
                                   "124128000059477385"])
def test_uscc_valid_examples(value):
    assert validate_uscc(value) == value


def test_uscc_check_zero_edge():
    # §2.4: prefix 91110000000000025 has sum % 31 == 0, so the check is 0 (not "31").
    assert uscc_check_char("91110000000000025") == "0"
    assert validate_uscc("911100000000000250") == "911100000000000250"


def test_uscc_weights_are_powers_of_three():
    from chalicelib.identifiers import _USCC_WEIGHTS

    assert _USCC_WEIGHTS == (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


@pytest.mark.parametrize("value, code", [
    ("91110000000000000X", "invalid_check_digit"),    # §2.4: check should be E
    ("91110000000000000E", None),
    ("91350100M000100Y4", "invalid_format"),
    ("91350100I000100Y43", "invalid_format"),         # I is not in the character set
    ("91350100O000100Y43", "invalid_format"),
    ("913501S0M000100Y43", "invalid_format"),         # positions 3-8 are digits
    ("91350100M000100Y44", "invalid_check_digit"),
])
def test_uscc_invalid(value, code):
    if code is None:
        assert validate_uscc(value) == value
    else:
        assert reason(validate_uscc, value) == code


def test_uscc_lowercase_normalized():
    assert validate_uscc("91310230ma1k314j7c") == "91310230MA1K314J7C"


@pytest.mark.parametrize("value", ["320684100003GB00207F48110028", "320684100302JA00001W00000000",
                                   "320684100002GB00631W00000000", "320684100302ZS00001W00000000",
                                   "411702600021GB00001F00070027", "370105012002GB00001F00010751",
                                   "371602009011GB00001F00522032", "340123002004GB00011W00000000"])
def test_unit_code_valid_examples(value):
    assert validate_unit_code(value) == value


@pytest.mark.parametrize("value, code", [
    ("110105001001GB00001H00010001", "invalid_format"),   # H is not a fixture code
    ("110105001001GB00001W00010001", "invalid_format"),   # W ⇒ unit number 00000000
    ("110105001001GB00001F0001000", "invalid_format"),    # 27 characters
    ("110105001001GI00001F00010001", "invalid_format"),   # I is not a use-right letter
    ("110105001001AB00001F00010001", "invalid_format"),   # A is not an ownership letter
    ("110105 001001 GB00001 F00010001", "invalid_format"),
    ("441903012003GB00001F00020063", "unknown_county"),   # 东莞 has no counties (§1.3)
    ("110199001001GB00001F00010001", "unknown_county"),   # not a Beijing district
    ("440399001001GB00001F00010001", "unknown_county"),
    ("330199001001GB00001F00010001", "unknown_county"),
    ("990101001001GB00001F00010001", "unknown_county"),   # no such province
    ("440000001001GB00001F00010001", "unknown_county"),   # a province, not a county
    ("370100001001GB00001F00010001", "unknown_county"),   # a city, not a county
    ("000000001001GB00001F00010001", "unknown_county"),
])
def test_unit_code_invalid(value, code):
    assert reason(validate_unit_code, value) == code


def test_unit_code_lowercase_normalized():
    assert validate_unit_code("110105001001gb00001f00010001") == "110105001001GB00001F00010001"


def test_every_five_city_district_makes_a_valid_unit_code():
    for city, districts in FIVE_CITY_DISTRICTS.items():
        for county in list(districts) + [c for c, (owner, _) in LEGACY_DISTRICTS.items() if owner == city]:
            code = county + "001001GB00001F00010001"
            assert validate_unit_code(code) == code
            assert city_of(code) == city
            assert city_of(county) == city


def test_five_cities():
    assert FIVE_CITIES == {"110000": "Beijing", "310000": "Shanghai", "440100": "Guangzhou",
                           "440300": "Shenzhen", "330100": "Hangzhou"}
    assert set(FIVE_CITY_DISTRICTS) == set(FIVE_CITIES)
    assert len(FIVE_CITY_DISTRICTS["110000"]) == 16 and len(FIVE_CITY_DISTRICTS["440300"]) == 9
    assert all(is_city_code(code) for code in FIVE_CITIES)


# ---- city_of -----------------------------------------------------------------------------

@pytest.mark.parametrize("code, city", [
    ("110105", "110000"), ("310115", "310000"), ("440106", "440100"), ("440305", "440300"),
    ("330110", "330100"), ("330103", "330100"), ("330104", "330100"), ("429004", "429004"),
    ("441900", "441900"), ("370116", "370100"), ("371202", "370100"), ("371203", "370100"),
    ("120101", "120000"), ("500229", "500000"), ("469001", "469001"), ("659001", "659001"),
    ("320684", "320600"), ("110000", "110000"), ("440300", "440300"),
    ("440305001002GB00001F00010001", "440300"), ("110105001001GB00001F00010001", "110000"),
])
def test_city_of(code, city):
    assert city_of(code) == city


@pytest.mark.parametrize("value", ["", "11010", "1101050", "abcdef", "110105001001GB00001H00010001", None, 110105])
def test_city_of_refuses_garbage(value):
    assert reason(city_of, value) == "invalid_format"


@given(st.from_regex(r"\A[0-9]{6}\Z"))
def test_city_of_rules(code):
    city = city_of(code)
    if code[:4] == "3712":
        assert city == "370100"
    elif code[:2] in ("11", "12", "31", "50"):
        assert city == code[:2] + "0000"
    elif code[2:4] == "90":
        assert city == code
    else:
        assert city == code[:4] + "00"
    assert city_of(code + "001001GB00001F00010001") == city


@pytest.mark.parametrize("value, ok", [
    ("110000", True), ("440300", True), ("429004", True), ("441900", True), ("370100", True),
    ("110105", False), ("440000", False), ("1100000", False), ("11000", False), ("990000", False),
])
def test_city_code(value, ok):
    if ok:
        assert validate_city_code(value) == value
    else:
        assert reason(validate_city_code, value) in ("invalid_format", "not_a_city_code")


# ---- properties --------------------------------------------------------------------------

ADDRESS_CODES = sorted(county for districts in FIVE_CITY_DISTRICTS.values() for county in districts) + [
    "320684", "370105", "429004", "659001", "810000", "830000"]


@st.composite
def resident_ids(draw) -> str:
    address = draw(st.sampled_from(ADDRESS_CODES))
    born = draw(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2020, 12, 31)))
    sequence = draw(st.integers(0, 999))
    first17 = f"{address}{born:%Y%m%d}{sequence:03d}"
    return first17 + resident_id_check_char(first17)


@st.composite
def usccs(draw) -> str:
    head = draw(st.text(USCC_CHARS, min_size=2, max_size=2))
    region = draw(st.from_regex(r"\A[0-9]{6}\Z"))
    body = draw(st.text(USCC_CHARS, min_size=9, max_size=9))
    first17 = head + region + body
    return first17 + uscc_check_char(first17)


@given(resident_ids())
def test_generated_resident_ids_round_trip(value):
    assert validate_resident_id(value) == value
    assert validate_resident_id(value.lower()) == value


@given(usccs())
def test_generated_usccs_round_trip(value):
    assert validate_uscc(value) == value
    assert validate_uscc(value.lower()) == value


@given(resident_ids(), st.integers(0, 17), st.sampled_from("0123456789X"))
def test_resident_id_single_change_rejected(value, position, char):
    assume(value[position] != char)
    changed = value[:position] + char + value[position + 1:]
    with pytest.raises(IdentifierError):
        validate_resident_id(changed)


@given(usccs(), st.integers(0, 17), st.sampled_from(USCC_CHARS + "IOSVZ"))
def test_uscc_single_change_rejected(value, position, char):
    assume(value[position] != char)
    changed = value[:position] + char + value[position + 1:]
    with pytest.raises(IdentifierError):
        validate_uscc(changed)


@given(st.sampled_from(ADDRESS_CODES[:-2]), st.from_regex(r"\A[0-9]{6}\Z"),
       st.sampled_from("GJZ"), st.sampled_from("ABSXCDEFLNHGWY"), st.from_regex(r"\A[0-9]{5}\Z"),
       st.sampled_from("FLQ"), st.from_regex(r"\A[0-9]{8}\Z"))
def test_generated_unit_codes(county, zones, owner, use, parcel, fixture, unit):
    code = county + zones + owner + use + parcel + fixture + unit
    assert validate_unit_code(code) == code
    land_only = code[:19] + "W00000000"
    assert validate_unit_code(land_only) == land_only
    assert city_of(code) == city_of(county)


@settings(max_examples=200)
@given(st.text(max_size=40))
def test_validators_never_crash_on_any_text(value):
    for fn in (validate_resident_id, validate_uscc, validate_unit_code, validate_city_code, city_of):
        try:
            fn(value)
        except IdentifierError as exc:
            assert exc.code in ("invalid_format", "invalid_check_digit", "unknown_county", "invalid_birth_date",
                                "not_a_city_code")


@given(st.one_of(st.from_regex(r"\A[0-9X]{15,19}\Z"), st.from_regex(r"\A[0-9A-Z]{17,19}\Z"),
                 st.from_regex(r"\A[0-9]{12}[A-Z]{2}[0-9]{5}[A-Z][0-9]{8}\Z")))
def test_refusals_never_echo_the_value(value):
    for fn in (validate_resident_id, validate_uscc, validate_unit_code, city_of):
        try:
            fn(value)
        except IdentifierError as exc:
            assert value not in str(exc)


@pytest.mark.parametrize("value", ["１１０１０５１９４９１２３１００２Ｘ", "١١٠١٠٥١٩٤٩١٢٣١٠٠٢X",
                                   "110105001001Gſ00001F00010001"])
def test_non_ascii_is_refused_not_folded(value):
    for fn in (validate_resident_id, validate_unit_code):
        assert reason(fn, value) == "invalid_format"


# ---- pydantic types ----------------------------------------------------------------------

class Holder(BaseModel):
    unit: UnitCode | None = None
    person: ResidentId | None = None
    org: Uscc | None = None
    city: CityCode | None = None


@pytest.mark.parametrize("field, value, code", [
    ("unit", "110105001001GB00001H00010001", "invalid_format"),
    ("unit", "110199001001GB00001F00010001", "unknown_county"),
    ("person", "110101199001011234", "invalid_check_digit"),
    ("person", "110105194902310024", "invalid_birth_date"),
    ("org", "91110000000000000X", "invalid_check_digit"),
    ("city", "110105", "not_a_city_code"),
    ("city", "11x000", "invalid_format"),
])
def test_annotated_types_raise_stable_codes_without_value(field, value, code):
    with pytest.raises(ValidationError) as info:
        Holder(**{field: value})
    [error] = info.value.errors(include_url=False)
    assert error["type"] == code
    assert error["loc"] == (field,)
    assert value not in error["msg"]


def test_annotated_types_normalize():
    holder = Holder(unit="110105001001gb00001f00010001", person="11010519491231002x", org="91350100m000100y43",
                    city="440300")
    assert holder.unit == "110105001001GB00001F00010001"
    assert holder.person == "11010519491231002X"
    assert holder.org == "91350100M000100Y43"


def test_annotated_types_json_schema():
    schema = Holder.model_json_schema()
    unit = schema["properties"]["unit"]["anyOf"][0]
    assert unit["pattern"].startswith("^") and unit["minLength"] == 28
