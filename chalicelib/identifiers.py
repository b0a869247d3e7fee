"""Identifiers with check digits: property unit code, resident ID, USCC, and the city of a unit.

Plain functions (`validate_unit_code`, `validate_resident_id`, `validate_uscc`, `city_of`) return the
normalized value (surrounding whitespace removed, letters upper-cased) or raise `IdentifierError`, a
`ValueError` whose message starts with a stable reason code:

    invalid_format        the value does not have the identifier's shape
    invalid_check_digit   the shape is right but the check character does not match
    unknown_county        (unit code) the first six digits are not a county-level code we accept
    invalid_birth_date    (resident ID) digits 7-14 are not a real date, or a date in the future
    not_a_city_code       (city code) six digits, but not a city-level code

The pydantic annotated types (`UnitCode`, `ResidentId`, `Uscc`, `CityCode`) raise a
`PydanticCustomError` whose *type* is that reason code. No message ever contains the value: an ID
number or a name is personal data and error bodies end up in logs.

Sources: reference/domain_cn.md §1 (GB/T 37346 unit codes, GB/T 2260 county codes, city rules) and
§2 (GB 11643 and GB 32100 check digits). Everything here is pure Python, no I/O, cheap to import.
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Annotated

from pydantic import AfterValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "IdentifierError", "validate_unit_code", "validate_resident_id", "validate_uscc", "validate_city_code",
    "city_of", "is_city_code", "FIVE_CITIES", "FIVE_CITY_DISTRICTS", "LEGACY_DISTRICTS", "UnitCode",
    "ResidentId", "Uscc", "CityCode", "resident_id_check_char", "uscc_check_char",
]

# Reason codes (stable, part of the 422 `details[].code` vocabulary).
INVALID_FORMAT = "invalid_format"
INVALID_CHECK_DIGIT = "invalid_check_digit"
UNKNOWN_COUNTY = "unknown_county"
INVALID_BIRTH_DATE = "invalid_birth_date"
NOT_A_CITY_CODE = "not_a_city_code"


class IdentifierError(ValueError):
    """A refused identifier. `code` is the stable reason; the message never contains the value."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.reason = message


# --------------------------------------------------------------------------------------------
# Division codes (GB/T 2260) and the five cities (domain_cn.md §1.4, §1.5)

FIVE_CITIES: dict[str, str] = {
    "110000": "Beijing",
    "310000": "Shanghai",
    "440100": "Guangzhou",
    "440300": "Shenzhen",
    "330100": "Hangzhou",
}

# Current county-level codes of the five cities (NBS 2023 list).
FIVE_CITY_DISTRICTS: dict[str, dict[str, str]] = {
    "110000": {
        "110101": "东城", "110102": "西城", "110105": "朝阳", "110106": "丰台", "110107": "石景山",
        "110108": "海淀", "110109": "门头沟", "110111": "房山", "110112": "通州", "110113": "顺义",
        "110114": "昌平", "110115": "大兴", "110116": "怀柔", "110117": "平谷", "110118": "密云",
        "110119": "延庆",
    },
    "310000": {
        "310101": "黄浦", "310104": "徐汇", "310105": "长宁", "310106": "静安", "310107": "普陀",
        "310109": "虹口", "310110": "杨浦", "310112": "闵行", "310113": "宝山", "310114": "嘉定",
        "310115": "浦东新区", "310116": "金山", "310117": "松江", "310118": "青浦", "310120": "奉贤",
        "310151": "崇明",
    },
    "440100": {
        "440103": "荔湾", "440104": "越秀", "440105": "海珠", "440106": "天河", "440111": "白云",
        "440112": "黄埔", "440113": "番禺", "440114": "花都", "440115": "南沙", "440117": "从化",
        "440118": "增城",
    },
    "440300": {
        "440303": "罗湖", "440304": "福田", "440305": "南山", "440306": "宝安", "440307": "龙岗",
        "440308": "盐田", "440309": "龙华", "440310": "坪山", "440311": "光明",
    },
    "330100": {
        "330102": "上城", "330105": "拱墅", "330106": "西湖", "330108": "滨江", "330109": "萧山",
        "330110": "余杭", "330111": "富阳", "330112": "临安", "330113": "临平", "330114": "钱塘",
        "330122": "桐庐", "330127": "淳安", "330182": "建德",
    },
}

# Abolished codes that still appear in old unit codes, with the city that owns them today.
LEGACY_DISTRICTS: dict[str, tuple[str, str]] = {
    "110103": ("110000", "崇文"), "110104": ("110000", "宣武"),
    "310108": ("310000", "闸北"),
    "330103": ("330100", "下城"), "330104": ("330100", "江干"),
}

# Legacy prefixes whose city moved: 莱芜 (3712xx) merged into 济南 (370100) in 2019.
_LEGACY_PREFIX_CITY: dict[str, str] = {"3712": "370100"}

_MUNICIPALITIES = frozenset({"11", "12", "31", "50"})
# Mainland province-level codes of GB/T 2260.
_PROVINCES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65",
})
# Prefecture-level cities without counties: the city code is used as the county code.
_CITIES_WITHOUT_COUNTIES = frozenset({"441900", "442000", "460400", "620200"})

_FIVE_CITY_COUNTIES: dict[str, str] = {
    county: city for city, districts in FIVE_CITY_DISTRICTS.items() for county in districts
}
_FIVE_CITY_COUNTIES.update({county: city for county, (city, _name) in LEGACY_DISTRICTS.items()})

_SIX_DIGITS = re.compile(r"[0-9]{6}")


def _normalize(value: object) -> str | None:
    """Surrounding whitespace removed, ASCII letters upper-cased; None if not an ASCII string.

    Non-ASCII input is refused rather than case-folded: "ſ".upper() is "S", and we do not guess.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text.upper() if text.isascii() else None


def _prefix_city(code: str) -> str:
    """The city of a six-digit code by the rules of DOMAIN.md (no validation beyond that)."""
    legacy = _LEGACY_PREFIX_CITY.get(code[:4])
    if legacy:
        return legacy
    if code in LEGACY_DISTRICTS:
        return LEGACY_DISTRICTS[code][0]
    if code[:2] in _MUNICIPALITIES:
        return code[:2] + "0000"
    if code[2:4] == "90":
        return code
    return code[:4] + "00"


def city_of(county_or_unit_code: str) -> str:
    """City code (six digits) of a county code or a 28-character unit code.

    Municipalities (11, 12, 31, 50) → xx0000; digits 3-4 == "90" (province-administered county) →
    the county itself; legacy prefixes (3712 莱芜 → 370100 济南) and abolished districts by map;
    otherwise the first four digits + "00". Raises IdentifierError("invalid_format") for anything
    that is neither six digits nor a well-formed unit code.
    """
    text = _normalize(county_or_unit_code)
    if text is None:
        raise IdentifierError(INVALID_FORMAT, "expected a six-digit county code or a 28-character unit code")
    if len(text) == 28 and _UNIT_RE.fullmatch(text):
        return _prefix_city(text[:6])
    if _SIX_DIGITS.fullmatch(text):
        return _prefix_city(text)
    raise IdentifierError(INVALID_FORMAT, "expected a six-digit county code or a 28-character unit code")


def _county_known(county: str) -> bool:
    """Whether a unit code may start with this six-digit code.

    For the five cities the county must be on the district list (current or legacy). Elsewhere we
    hold no full list, so the check is structural: a mainland province, a prefecture (or "90"),
    and a county part other than "00", except that a prefecture without counties (东莞 441900, 中山
    442000, 儋州 460400, 嘉峪关 620200) is its own county and takes no other code.
    """
    if _prefix_city(county) in FIVE_CITIES:
        return county in _FIVE_CITY_COUNTIES
    if county[:2] not in _PROVINCES:
        return False
    if county[:4] in _LEGACY_PREFIX_CITY:
        return county[4:] != "00"
    if county[:2] in _MUNICIPALITIES:
        return county[2:4] in ("01", "02") and county[4:] != "00"
    if county[2:4] == "00":
        return False
    if county[:4] + "00" in _CITIES_WITHOUT_COUNTIES:
        # 东莞 441900 has no counties: 441903 and the like are local inventions, not GB/T 2260.
        return county[4:] == "00"
    return county[4:] != "00"


def is_city_code(code: str) -> bool:
    """True for a six-digit city-level code: 110000, 440300, 429004 (province-administered), 441900."""
    if not isinstance(code, str) or not _SIX_DIGITS.fullmatch(code):
        return False
    if code[:2] not in _PROVINCES:
        return False
    if code[:2] in _MUNICIPALITIES:
        return code[2:] == "0000"
    if code[2:4] == "00":
        return False
    return _prefix_city(code) == code


def validate_city_code(value: str) -> str:
    text = _normalize(value)
    if text is None or not _SIX_DIGITS.fullmatch(text):
        raise IdentifierError(INVALID_FORMAT, "a city code is six digits")
    if not is_city_code(text):
        raise IdentifierError(NOT_A_CITY_CODE, "not a city-level division code (e.g. 110000, 440300)")
    return text


# --------------------------------------------------------------------------------------------
# Property unit code, GB/T 37346-2019

_UNIT_RE = re.compile(r"[0-9]{6}[0-9]{3}[0-9]{3}[GJZ][ABSXCDEFLNHGWY][0-9]{5}[FLQW][0-9]{8}")


def validate_unit_code(value: str) -> str:
    """28 characters: county(6) zone(3) sub-zone(3) ownership[GJZ] use[ABSXCDEFLNHGWY] parcel(5)
    fixture[FLQW] unit(8); with fixture W the unit number is 00000000; the county must be known."""
    text = _normalize(value)
    if text is None or len(text) != 28 or not _UNIT_RE.fullmatch(text):
        raise IdentifierError(INVALID_FORMAT, "a unit code has 28 characters: 6+3+3 digits, [GJZ], "
                                              "a use-right letter, 5 digits, [FLQW], 8 digits")
    if text[19] == "W" and text[20:] != "00000000":
        raise IdentifierError(INVALID_FORMAT, "a unit without fixture (W) has unit number 00000000")
    if not _county_known(text[:6]):
        raise IdentifierError(UNKNOWN_COUNTY, "the first six digits are not a known county-level code")
    return text


# --------------------------------------------------------------------------------------------
# Resident ID, GB 11643-1999

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID_RE = re.compile(r"[0-9]{17}[0-9X]")
_CHINA_TZ = _dt.timezone(_dt.timedelta(hours=8))


def resident_id_check_char(first17: str) -> str:
    """The GB 11643 check character of 17 digits."""
    return _ID_CHECK[sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS)) % 11]


def validate_resident_id(value: str) -> str:
    """18 characters: address(6) birth date YYYYMMDD sequence(3) check[0-9X]; a real past birth date."""
    text = _normalize(value)
    if text is None or len(text) != 18 or not _ID_RE.fullmatch(text) or text[:2] not in _ID_REGIONS:
        raise IdentifierError(INVALID_FORMAT, "a resident ID has 17 digits and a check character 0-9 or X")
    try:
        born = _dt.date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        raise IdentifierError(INVALID_BIRTH_DATE, "digits 7-14 are not a real date") from None
    if born.year < 1850 or born > _dt.datetime.now(_CHINA_TZ).date():
        raise IdentifierError(INVALID_BIRTH_DATE, "the birth date is out of range")
    if resident_id_check_char(text[:17]) != text[17]:
        raise IdentifierError(INVALID_CHECK_DIGIT, "the check character does not match (GB 11643)")
    return text


# Resident IDs also exist for residence permits of Hong Kong (81), Macao (82) and Taiwan (83).
_ID_REGIONS = _PROVINCES | {"71", "81", "82", "83"}


# --------------------------------------------------------------------------------------------
# Unified social credit code, GB 32100-2015

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(_USCC_CHARS)}
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
_USCC_RE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character of the first 17 characters."""
    check = 31 - sum(_USCC_VALUE[c] * w for c, w in zip(first17, _USCC_WEIGHTS)) % 31
    return _USCC_CHARS[0 if check == 31 else check]


def validate_uscc(value: str) -> str:
    """18 characters over 0-9 A-H J-N P Q R T U W X Y (positions 3-8 digits), GB 32100 check."""
    text = _normalize(value)
    if text is None or len(text) != 18 or not _USCC_RE.fullmatch(text):
        raise IdentifierError(INVALID_FORMAT, "a unified social credit code has 18 characters over "
                                              "0-9 and A-Y without I, O, S, V, Z")
    if uscc_check_char(text[:17]) != text[17]:
        raise IdentifierError(INVALID_CHECK_DIGIT, "the check character does not match (GB 32100)")
    return text


# --------------------------------------------------------------------------------------------
# Pydantic annotated types

def _pydantic(fn, what: str):
    def validate(value: str) -> str:
        try:
            return fn(value)
        except IdentifierError as exc:
            # The type is the stable code; the message names the identifier, never the value.
            raise PydanticCustomError(exc.code, f"{what}: {exc.reason}") from None

    validate.__name__ = f"validate_{what.replace(' ', '_')}"
    return validate


UnitCode = Annotated[
    str,
    AfterValidator(_pydantic(validate_unit_code, "unit code")),
    WithJsonSchema({"type": "string", "minLength": 28, "maxLength": 28,
                    "pattern": r"^[0-9]{6}[0-9]{3}[0-9]{3}[GJZ][ABSXCDEFLNHGWY][0-9]{5}[FLQW][0-9]{8}$",
                    "description": "不动产单元代码 (GB/T 37346-2019); the first six digits are a known county code",
                    "examples": ["110105001001GB00001F00010001"]}),
]
ResidentId = Annotated[
    str,
    AfterValidator(_pydantic(validate_resident_id, "resident ID")),
    WithJsonSchema({"type": "string", "minLength": 18, "maxLength": 18, "pattern": r"^[0-9]{17}[0-9X]$",
                    "description": "居民身份证号码 (GB 11643-1999), check character verified"}),
]
Uscc = Annotated[
    str,
    AfterValidator(_pydantic(validate_uscc, "unified social credit code")),
    WithJsonSchema({"type": "string", "minLength": 18, "maxLength": 18,
                    "pattern": r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$",
                    "description": "统一社会信用代码 (GB 32100-2015), check character verified",
                    "examples": ["91350100M000100Y43"]}),
]
CityCode = Annotated[
    str,
    AfterValidator(_pydantic(validate_city_code, "city code")),
    WithJsonSchema({"type": "string", "pattern": r"^[0-9]{6}$",
                    "description": "six-digit city-level division code, e.g. 110000 Beijing, 440300 Shenzhen",
                    "examples": ["440300"]}),
]
