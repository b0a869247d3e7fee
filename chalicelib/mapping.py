"""Partner formats <-> the canonical format, kept as data (``mappings/<name>.json``).

A partner record names a mapping (``"mapping": "city_tax"``); ``canonical`` is the identity. This
module names no partner: everything partner-specific is in the mapping file, and only what JMESPath
cannot say goes into an optional adapter module ``adapters/<name>.py``.

Mapping file
------------
``mappings/<name>.json`` (``name`` matches ``^[a-z0-9_]+$`` and equals the file's stem)::

    {
      "name": "city_tax",
      "kind": "tax",                      # partner kind it is written for; null = any kind
      "description": "...",
      "notes": ["..."],                   # optional, free text for people
      "adapter": "city_tax",              # optional: adapters/city_tax.py
      "tables": {"payer_role": {"0": "obligor", "1": "obligee"}},   # optional code tables
      "inbound":  {"tax.assessed": "<JMESPath over the native data -> canonical data>"},
                                          # an expression may also be a list of lines, joined by "\\n"
      "outbound": {"tax.assessment_requested": "<JMESPath over canonical data -> native data>"},
      "samples": [{"direction": "inbound", "type": "tax.assessed",
                   "title": "...", "native": {...}, "canonical": {...}}]
    }

Unknown top-level keys are refused (a typo must not silently disable a mapping). Every expression is
compiled once, when the file is loaded (``jmespath.compile``), and every function it calls must exist
(checked on the parsed tree at load; so is every table named by a ``lookup('<table>', ...)``). Loading
fails with :class:`MappingConfigError`: a broken mapping file is a configuration error, found when the
partners are loaded or by the tests that run every file's samples, never while a request is mapped.

Where the files are: ``$HUB_MAPPINGS_DIR`` if set, else ``mappings/`` next to ``chalicelib/`` (the
repository root, and also the deployment zip root, where the package step stages ``mappings/`` and
``adapters/`` beside ``app.py``). Adapters are looked up in ``$HUB_ADAPTERS_DIR`` if set, else in the
``adapters/`` directory beside the mappings directory. An adapter is loaded from its file (it need not
be importable as ``adapters.<name>``); it may define

* ``before_inbound(event_type, native) -> native`` (runs before the inbound expression), and/or
* ``after_outbound(event_type, native) -> native`` (runs after the outbound expression).

It gets a deep copy, so it may mutate its argument. To refuse data with a reason, it raises
:class:`MappingDataError` with a message that contains no data values; any other exception is
reported by its class name only.

Mapping at run time
-------------------
``to_canonical(type, native)`` / ``to_native(type, canonical)``:

* the type has no expression in that direction -> ``HubError(422, "unmapped_event_type")``;
* anything going wrong while mapping (a JMESPath type error, a hub function refusing a value, an
  adapter raising, a result that is not a JSON object) -> ``HubError(422, "mapping_failed")`` with
  ``details=[{"field": "data", "code": "mapping_failed", "message": <short reason>}]``. The reason
  names the function, the stage and the kind of problem, never the data (which holds names, ID and
  phone numbers); the original exception is not chained either, so no traceback can carry it.

The mapped result is *not* validated here: the caller puts it through ``chalicelib.models``.

Hub functions (generic: no partner knowledge)
--------------------------------------------
All converters pass ``null`` through (so an optional native field stays optional, and a missing
required one is reported by the model with its field name); ``default()`` supplies fallbacks.

* ``yuan_to_fen(v)`` -> int. Exact, via ``Decimal``. Strings must read ``^\\d+(\\.\\d{1,2})?$``
  (no sign, no exponent, no separators, at most 2 decimal places *as written*: ``"1.500"`` is refused).
  Integers are whole yuan. Floats (a JSON number with a fraction) are accepted only when their shortest
  decimal form has at most 2 decimals and they are below 10^13 yuan, where that form is exactly what the
  sender wrote (15 significant digits); anything else must be sent as a string. Negative amounts,
  booleans, NaN/Infinity and more than 16 integer digits are refused.
* ``fen_to_yuan(n)`` -> ``"123.45"`` (always two decimals); ``n`` a non-negative integer.
* ``to_int(v)``: integer, integral float, or a string of digits (optional sign) -> int.
* ``to_str(v)``: string as is; number -> its decimal text (``0.01`` -> ``"0.01"``).
* ``decimal_str(v)``: a decimal (string or number, exponent allowed) -> plain normalised text without
  exponent: ``"5.0E-4"`` -> ``"0.0005"``, ``"0.010"`` -> ``"0.01"``, ``3`` -> ``"3"``.
* ``china_time(s)``: ``yyyyMMddHHmmss`` or ``yyyy-MM-dd HH:mm:ss`` in China time -> ISO 8601
  ``yyyy-mm-ddTHH:MM:SS+08:00``.
* ``format_china_time(iso, pattern)``: an ISO 8601 time with offset -> China time (+08:00) written as
  ``pattern``, one of ``yyyyMMddHHmmss``, ``yyyy-MM-dd HH:mm:ss``, ``yyyyMMdd``, ``yyyy-MM-dd``.
* ``date_dashed(s)``: ``yyyyMMdd`` or ``yyyy-mm-dd`` -> ``yyyy-mm-dd`` (a real date).
* ``date_compact(s)``: ``yyyy-mm-dd`` or ``yyyyMMdd`` -> ``yyyyMMdd``.
* ``lookup(table, key)``: ``table`` is an object (a literal) or the name of a table in the file's
  ``tables``; numbers as keys are looked up as their text. A key that is not in the table is an error
  (code tables are closed); a null key gives null.
* ``default(v, fallback)``: ``fallback`` when ``v`` is null.
* ``nonblank(v)``: null when ``v`` is an empty or all-blank string, else ``v``.
* ``compact(obj)``: the object without its null-valued keys (shallow), for optional fields.
* ``numbered(array, key)``: copies of the objects in ``array`` with ``key`` set to 1, 2, 3...
* ``expect(v, allowed, result)``: ``result`` if ``v`` is one of ``allowed``, else an error (e.g. a
  status code that contradicts the event type).

plus the JMESPath built-ins (``sum``, ``map``, ``join``, ``merge``, ``not_null``...).
"""
from __future__ import annotations

import copy
import datetime as _dt
import functools
import importlib.util
import json
import math
import os
import re
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import jmespath
from jmespath import exceptions as jmespath_exceptions
from jmespath import functions as jmespath_functions

from chalicelib.errors import HubError

CANONICAL = "canonical"
MAPPINGS_DIR_ENV = "HUB_MAPPINGS_DIR"
ADAPTERS_DIR_ENV = "HUB_ADAPTERS_DIR"

NAME_RE = re.compile(r"^[a-z0-9_]+$")
_EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
_TOP_LEVEL_KEYS = {"name", "kind", "description", "notes", "adapter", "tables", "inbound", "outbound", "samples"}
_SAMPLE_KEYS = {"direction", "type", "title", "native", "canonical"}
DIRECTIONS = ("inbound", "outbound")
ADAPTER_HOOKS = {"inbound": "before_inbound", "outbound": "after_outbound"}

CHINA_TZ = _dt.timezone(_dt.timedelta(hours=8))


class MappingConfigError(ValueError):
    """A mapping file (or its adapter) cannot be used. Raised at load time, never while mapping."""


class MappingDataError(Exception):
    """The data cannot be mapped. The message must contain no data value; it becomes the 422 reason.

    Raised by the hub functions below, and by adapters that want to give a reason.
    """


# ---------------------------------------------------------------------------------------------
# Money, numbers, times: plain Python, also usable outside JMESPath.

_MAX_INT_DIGITS = 16  # fen stays below 10^18 < 2^63
_FLOAT_YUAN_LIMIT = 10 ** 13  # below this a 2-decimal float's shortest repr is what was written
_YUAN_TEXT_RE = re.compile(r"^(\d+)(?:\.(\d{1,2}))?$")
_DECIMAL_TEXT_RE = re.compile(r"^[+-]?\d+(?:\.\d+)?$")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def yuan_to_fen(value: Any) -> int:
    """Yuan (string or JSON number) -> integer fen, exactly. See the module docstring for the rules."""
    if isinstance(value, bool) or value is None:
        raise MappingDataError("yuan_to_fen(): expects a yuan amount (string or number)")
    if _is_int(value):
        if value < 0:
            raise MappingDataError("yuan_to_fen(): negative amount")
        if value >= 10 ** _MAX_INT_DIGITS:
            raise MappingDataError("yuan_to_fen(): amount out of range")
        return value * 100
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MappingDataError("yuan_to_fen(): not a finite amount")
        if value < 0:
            raise MappingDataError("yuan_to_fen(): negative amount")
        if value >= _FLOAT_YUAN_LIMIT:
            raise MappingDataError("yuan_to_fen(): a numeric amount this large must be sent as a string")
        amount = Decimal(repr(value))
        fen = amount * 100
        if fen != fen.to_integral_value():
            raise MappingDataError("yuan_to_fen(): more than two decimal places")
        return int(fen)
    if isinstance(value, str):
        match = _YUAN_TEXT_RE.match(value)
        if match is None:
            if _DECIMAL_TEXT_RE.match(value):
                if value.startswith("-"):
                    raise MappingDataError("yuan_to_fen(): negative amount")
                if "." in value and len(value.split(".", 1)[1]) > 2:
                    raise MappingDataError("yuan_to_fen(): more than two decimal places")
            raise MappingDataError("yuan_to_fen(): not a decimal yuan amount")
        whole, cents = match.group(1), match.group(2) or ""
        if len(whole.lstrip("0")) > _MAX_INT_DIGITS:
            raise MappingDataError("yuan_to_fen(): amount out of range")
        return int(whole) * 100 + int(cents.ljust(2, "0"))
    raise MappingDataError("yuan_to_fen(): expects a yuan amount (string or number)")


def fen_to_yuan(value: Any) -> str:
    """Non-negative integer fen -> yuan text with exactly two decimals ("123.45")."""
    if not _is_int(value):
        raise MappingDataError("fen_to_yuan(): expects an integer amount in fen")
    if value < 0:
        raise MappingDataError("fen_to_yuan(): negative amount")
    return f"{value // 100}.{value % 100:02d}"


def _to_decimal(value: Any, fname: str) -> Decimal:
    if isinstance(value, bool):
        raise MappingDataError(f"{fname}(): expects a number or a decimal string")
    if _is_int(value):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MappingDataError(f"{fname}(): not a finite number")
        return Decimal(repr(value))
    if isinstance(value, str):
        text = value.strip()
        if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", text):
            raise MappingDataError(f"{fname}(): not a decimal number")
        try:
            return Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern above admits only valid text
            raise MappingDataError(f"{fname}(): not a decimal number") from None
    raise MappingDataError(f"{fname}(): expects a number or a decimal string")


def decimal_str(value: Any) -> str:
    """A decimal -> its plain, normalised text: "5.0E-4" -> "0.0005", "0.010" -> "0.01"."""
    number = _to_decimal(value, "decimal_str")
    if abs(number.adjusted()) > 30:
        raise MappingDataError("decimal_str(): number out of range")
    text = format(number.normalize(), "f")
    return "0" if text in ("-0", "+0") else text


def to_int(value: Any) -> int:
    if _is_int(value):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value):
            return int(value)
        raise MappingDataError("to_int(): not a whole number")
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,30}", value.strip()):
        return int(value.strip())
    raise MappingDataError("to_int(): not a whole number")


def to_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if _is_int(value):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value) if "e" not in repr(value) else decimal_str(value)
    raise MappingDataError("to_str(): expects a string or a number")


_CHINA_TIME_PATTERNS = {
    "yyyyMMddHHmmss": (re.compile(r"^\d{14}$"), "%Y%m%d%H%M%S"),
    "yyyy-MM-dd HH:mm:ss": (re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"), "%Y-%m-%d %H:%M:%S"),
}
_OUTPUT_TIME_PATTERNS = {
    "yyyyMMddHHmmss": "%Y%m%d%H%M%S",
    "yyyy-MM-dd HH:mm:ss": "%Y-%m-%d %H:%M:%S",
    "yyyyMMdd": "%Y%m%d",
    "yyyy-MM-dd": "%Y-%m-%d",
}


def china_time(value: Any) -> str:
    """China wall-clock time ('yyyyMMddHHmmss' or 'yyyy-MM-dd HH:mm:ss') -> ISO 8601 with +08:00."""
    if not isinstance(value, str):
        raise MappingDataError("china_time(): expects a time string")
    for regex, fmt in _CHINA_TIME_PATTERNS.values():
        if regex.match(value):
            try:
                parsed = _dt.datetime.strptime(value, fmt)
            except ValueError:
                raise MappingDataError("china_time(): not a valid date and time") from None
            return parsed.replace(tzinfo=CHINA_TZ).isoformat()
    raise MappingDataError("china_time(): expects yyyyMMddHHmmss or yyyy-MM-dd HH:mm:ss")


def format_china_time(value: Any, pattern: Any) -> str:
    """ISO 8601 time with an offset -> China time (+08:00) written in one of the native patterns."""
    if pattern not in _OUTPUT_TIME_PATTERNS:
        raise MappingDataError("format_china_time(): unknown pattern")
    if not isinstance(value, str):
        raise MappingDataError("format_china_time(): expects an ISO 8601 time string")
    try:
        parsed = _dt.datetime.fromisoformat(value)
    except ValueError:
        raise MappingDataError("format_china_time(): not an ISO 8601 time") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise MappingDataError("format_china_time(): time has no UTC offset")
    return parsed.astimezone(CHINA_TZ).strftime(_OUTPUT_TIME_PATTERNS[pattern])


def _parse_date(value: Any, fname: str) -> _dt.date:
    if isinstance(value, str):
        for regex, fmt in ((r"^\d{8}$", "%Y%m%d"), (r"^\d{4}-\d{2}-\d{2}$", "%Y-%m-%d")):
            if re.match(regex, value):
                try:
                    return _dt.datetime.strptime(value, fmt).date()
                except ValueError:
                    raise MappingDataError(f"{fname}(): not a valid date") from None
    raise MappingDataError(f"{fname}(): expects yyyyMMdd or yyyy-mm-dd")


def date_dashed(value: Any) -> str:
    return _parse_date(value, "date_dashed").isoformat()


def date_compact(value: Any) -> str:
    return _parse_date(value, "date_compact").strftime("%Y%m%d")


# ---------------------------------------------------------------------------------------------
# The JMESPath function set.

_ANY = ["string", "number", "boolean", "array", "object", "null"]


def _null_passes(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(self: Any, value: Any, *rest: Any) -> Any:
        return None if value is None else func(self, value, *rest)

    return wrapper


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON sees it (true is not 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


class HubFunctions(jmespath_functions.Functions):
    """JMESPath built-ins plus the hub's generic helpers. One instance per mapping (its code tables)."""

    def __init__(self, tables: dict[str, dict[str, Any]] | None = None):
        self.tables = tables or {}

    @jmespath_functions.signature({"types": ["string", "number", "null"]})
    @_null_passes
    def _func_yuan_to_fen(self, value):
        return yuan_to_fen(value)

    @jmespath_functions.signature({"types": ["number", "null"]})
    @_null_passes
    def _func_fen_to_yuan(self, value):
        return fen_to_yuan(value)

    @jmespath_functions.signature({"types": ["string", "number", "null"]})
    @_null_passes
    def _func_to_int(self, value):
        return to_int(value)

    @jmespath_functions.signature({"types": ["string", "number", "null"]})
    @_null_passes
    def _func_to_str(self, value):
        return to_str(value)

    @jmespath_functions.signature({"types": ["string", "number", "null"]})
    @_null_passes
    def _func_decimal_str(self, value):
        return decimal_str(value)

    @jmespath_functions.signature({"types": ["string", "null"]})
    @_null_passes
    def _func_china_time(self, value):
        return china_time(value)

    @jmespath_functions.signature({"types": ["string", "null"]}, {"types": ["string"]})
    @_null_passes
    def _func_format_china_time(self, value, pattern):
        return format_china_time(value, pattern)

    @jmespath_functions.signature({"types": ["string", "null"]})
    @_null_passes
    def _func_date_dashed(self, value):
        return date_dashed(value)

    @jmespath_functions.signature({"types": ["string", "null"]})
    @_null_passes
    def _func_date_compact(self, value):
        return date_compact(value)

    @jmespath_functions.signature({"types": ["object", "string"]}, {"types": ["string", "number", "null"]})
    def _func_lookup(self, table, key):
        if isinstance(table, str):
            if table not in self.tables:
                raise MappingDataError("lookup(): unknown code table")
            table = self.tables[table]
        if key is None:
            return None
        text = key if isinstance(key, str) else to_str(key)
        if text not in table:
            raise MappingDataError("lookup(): code not in the table")
        return table[text]

    @jmespath_functions.signature({"types": _ANY}, {"types": _ANY})
    def _func_default(self, value, fallback):
        return fallback if value is None else value

    @jmespath_functions.signature({"types": _ANY})
    def _func_nonblank(self, value):
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @jmespath_functions.signature({"types": ["object"]})
    def _func_compact(self, value):
        return {k: v for k, v in value.items() if v is not None}

    @jmespath_functions.signature({"types": ["array", "null"]}, {"types": ["string"]})
    def _func_numbered(self, array, key):
        if array is None:
            return None
        numbered = []
        for index, item in enumerate(array, start=1):
            if not isinstance(item, dict):
                raise MappingDataError("numbered(): expects an array of objects")
            numbered.append({**item, key: index})
        return numbered

    @jmespath_functions.signature({"types": _ANY}, {"types": ["array"]}, {"types": _ANY})
    def _func_expect(self, value, allowed, result):
        if not any(_json_equal(value, candidate) for candidate in allowed):
            raise MappingDataError("expect(): a code is not one of those expected for this event type")
        return result


BUILTIN_FUNCTIONS = frozenset(jmespath_functions.Functions.FUNCTION_TABLE)
HUB_FUNCTIONS = frozenset(HubFunctions.FUNCTION_TABLE) - BUILTIN_FUNCTIONS


# ---------------------------------------------------------------------------------------------
# The mapping object.

def _failed(reason: str) -> HubError:
    return HubError(
        422,
        "mapping_failed",
        "The event data could not be mapped between the partner's format and the canonical format.",
        [{"field": "data", "code": "mapping_failed", "message": reason}],
    )


def _reason(exc: BaseException) -> str:
    """A short reason for a failure, built from the exception's kind, never from its text."""
    if isinstance(exc, MappingDataError):
        return str(exc)
    if isinstance(exc, jmespath_exceptions.JMESPathTypeError):
        expected = "/".join(str(t) for t in exc.expected_types)
        return f"{exc.function_name}(): got a {exc.actual_type} argument, expected {expected}"
    if isinstance(exc, jmespath_exceptions.ArityError):
        return f"{exc.function_name}(): wrong number of arguments"
    if isinstance(exc, jmespath_exceptions.UnknownFunctionError):
        return "unknown function"
    return f"{type(exc).__name__} while mapping"


def _check_json_object(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise MappingDataError("the mapping did not produce a JSON object")
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError):
        raise MappingDataError("the mapping produced something that is not JSON") from None
    return result


class Mapping:
    """One partner format. Built once per file (:func:`load_mapping` caches it); immutable after."""

    def __init__(self, *, name: str, kind: str | None, description: str, identity: bool,
                 inbound: dict[str, Any], outbound: dict[str, Any], tables: dict[str, dict[str, Any]],
                 samples: list[dict[str, Any]], adapter_name: str | None, adapter: ModuleType | None,
                 source: str):
        self.name = name
        self.kind = kind
        self.description = description
        self.identity = identity
        self.source = source
        self.adapter_name = adapter_name
        self._adapter = adapter
        self._expressions = {"inbound": dict(inbound), "outbound": dict(outbound)}
        self.tables = tables
        self.samples = tuple(samples)
        self._options = jmespath.Options(custom_functions=HubFunctions(tables))

    def __repr__(self) -> str:
        return f"<Mapping {self.name} ({self.source})>"

    # What it covers ---------------------------------------------------------------------------
    def accepts_kind(self, kind: str) -> bool:
        """Whether a partner of this kind may use the mapping (``kind`` null in the file: any)."""
        return self.kind is None or self.kind == kind

    def handles(self, direction: str, event_type: str) -> bool:
        return self.identity or event_type in self._expressions[direction]

    @property
    def inbound_types(self) -> tuple[str, ...]:
        return tuple(sorted(self._expressions["inbound"]))

    @property
    def outbound_types(self) -> tuple[str, ...]:
        return tuple(sorted(self._expressions["outbound"]))

    def expression(self, direction: str, event_type: str):
        """The compiled expression (a ``jmespath.parser.ParsedResult``), or None."""
        return self._expressions[direction].get(event_type)

    # Mapping ------------------------------------------------------------------------------------
    def to_canonical(self, event_type: str, native: Any) -> dict[str, Any]:
        """The partner's ``data`` -> canonical ``data`` (not yet validated against the model)."""
        return self._map("inbound", event_type, native)

    def to_native(self, event_type: str, canonical: Any) -> dict[str, Any]:
        """Canonical ``data`` (JSON form) -> the partner's ``data`` for an outbound delivery."""
        return self._map("outbound", event_type, canonical)

    def _map(self, direction: str, event_type: str, data: Any) -> dict[str, Any]:
        if self.identity:
            if not isinstance(data, dict):
                raise _failed("data is not a JSON object")
            return copy.deepcopy(data)
        expression = self._expressions[direction].get(event_type)
        if expression is None:
            raise HubError(
                422, "unmapped_event_type",
                f"The partner format '{self.name}' has no {direction} mapping for this event type.",
                [{"field": "type", "code": "unmapped_event_type",
                  "message": f"no {direction} mapping in '{self.name}' for this event type"}],
            )
        hook_name = ADAPTER_HOOKS[direction]
        hook = getattr(self._adapter, hook_name, None) if self._adapter is not None else None
        stage = "expression"
        try:
            if direction == "inbound" and hook is not None:
                stage = f"adapter {hook_name}"
                data = hook(event_type, copy.deepcopy(data))
            stage = "expression"
            result = expression.search(data, options=self._options)
            if direction == "outbound" and hook is not None:
                stage = f"adapter {hook_name}"
                result = hook(event_type, copy.deepcopy(result))
            stage = "result"
            return _check_json_object(result)
        except Exception as exc:  # noqa: BLE001 - every failure of the data is a 422, never a 5xx
            reason = _reason(exc)
            if not isinstance(exc, MappingDataError) and stage.startswith("adapter"):
                reason = f"{type(exc).__name__} raised"
            raise _failed(f"{direction} {stage}: {reason}") from None


# ---------------------------------------------------------------------------------------------
# Loading and checking mapping files.

def _repo_root() -> Path:
    # chalicelib/ sits next to app.py both in the repository and at the deployment zip's root.
    return Path(__file__).resolve().parent.parent


def mappings_dir() -> Path:
    override = os.environ.get(MAPPINGS_DIR_ENV)
    return Path(override).resolve() if override else _repo_root() / "mappings"


def adapters_dir() -> Path:
    override = os.environ.get(ADAPTERS_DIR_ENV)
    return Path(override).resolve() if override else mappings_dir().parent / "adapters"


def list_mappings() -> list[str]:
    """Names of the mapping files present (``canonical`` included), sorted."""
    directory = mappings_dir()
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.json") if NAME_RE.match(p.stem))


def load_mapping(name: str) -> Mapping:
    """The mapping ``mappings/<name>.json``, loaded, checked and compiled once (cached)."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise MappingConfigError("a mapping name is lower-case letters, digits and underscores")
    return _load_cached(str(mappings_dir()), str(adapters_dir()), name)


def clear_cache() -> None:
    """Forget loaded mappings (tests that change the files or the directory)."""
    _load_cached.cache_clear()


@functools.lru_cache(maxsize=None)
def _load_cached(directory: str, adapter_directory: str, name: str) -> Mapping:
    path = Path(directory) / f"{name}.json"
    if not path.is_file():
        raise MappingConfigError(f"mapping '{name}': no file {name}.json in {directory}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MappingConfigError(f"mapping '{name}': {path.name} is not readable JSON ({exc})") from None
    if isinstance(document, dict) and document.get("name") != name:
        raise MappingConfigError(f"mapping '{name}': the file's \"name\" must be '{name}'")
    adapter = None
    adapter_name = document.get("adapter") if isinstance(document, dict) else None
    if adapter_name is not None:
        adapter = _load_adapter(name, adapter_name, Path(adapter_directory))
    return build_mapping(document, source=str(path), adapter=adapter)


def _load_adapter(mapping_name: str, adapter_name: Any, directory: Path) -> ModuleType:
    if not isinstance(adapter_name, str) or not NAME_RE.match(adapter_name):
        raise MappingConfigError(f"mapping '{mapping_name}': \"adapter\" must be a module name")
    path = directory / f"{adapter_name}.py"
    if not path.is_file():
        raise MappingConfigError(f"mapping '{mapping_name}': adapter file {adapter_name}.py not found in {directory}")
    module_name = f"hub_adapter_{adapter_name}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:  # pragma: no cover
        raise MappingConfigError(f"mapping '{mapping_name}': adapter {adapter_name}.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise MappingConfigError(
            f"mapping '{mapping_name}': adapter {adapter_name}.py failed to import ({type(exc).__name__}: {exc})"
        ) from exc
    hooks = [h for h in ADAPTER_HOOKS.values() if callable(getattr(module, h, None))]
    if not hooks:
        raise MappingConfigError(
            f"mapping '{mapping_name}': adapter {adapter_name}.py defines neither before_inbound nor after_outbound"
        )
    return module


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for child in node.get("children", ()):
            yield from _walk(child)


def _compile(where: str, text: Any, tables: dict[str, Any]):
    if isinstance(text, list) and text and all(isinstance(line, str) for line in text):
        text = "\n".join(text)
    if not isinstance(text, str) or not text.strip():
        raise MappingConfigError(f"{where}: the expression must be a non-empty string (or list of lines)")
    try:
        compiled = jmespath.compile(text)
    except jmespath_exceptions.JMESPathError as exc:
        raise MappingConfigError(f"{where}: the expression does not parse ({exc})") from None
    for node in _walk(compiled.parsed):
        if node.get("type") != "function_expression":
            continue
        fname = node.get("value")
        if fname not in HubFunctions.FUNCTION_TABLE:
            raise MappingConfigError(f"{where}: unknown function {fname}()")
        children = node.get("children") or []
        if fname == "lookup" and children and children[0].get("type") == "literal":
            table = children[0].get("value")
            if isinstance(table, str) and table not in tables:
                raise MappingConfigError(f"{where}: lookup() names a table '{table}' that the file lacks")
        if fname == "format_china_time" and len(children) == 2 and children[1].get("type") == "literal":
            if children[1].get("value") not in _OUTPUT_TIME_PATTERNS:
                raise MappingConfigError(f"{where}: format_china_time() with an unknown pattern")
    return compiled


def build_mapping(document: Any, *, source: str = "<memory>", adapter: ModuleType | None = None) -> Mapping:
    """Check a mapping document and compile its expressions (each once). :func:`load_mapping` uses it."""
    if not isinstance(document, dict):
        raise MappingConfigError(f"{source}: a mapping file is a JSON object")
    unknown = set(document) - _TOP_LEVEL_KEYS
    if unknown:
        raise MappingConfigError(f"{source}: unknown keys {sorted(unknown)}")
    name = document.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise MappingConfigError(f"{source}: \"name\" must match {NAME_RE.pattern}")
    where = f"mapping '{name}'"
    kind = document.get("kind")
    if kind is not None and (not isinstance(kind, str) or not NAME_RE.match(kind)):
        raise MappingConfigError(f"{where}: \"kind\" must be a partner kind or null")
    description = document.get("description", "")
    if not isinstance(description, str):
        raise MappingConfigError(f"{where}: \"description\" must be a string")
    notes = document.get("notes", [])
    if not isinstance(notes, (str, list)):
        raise MappingConfigError(f"{where}: \"notes\" must be a string or a list of strings")
    if document.get("adapter") is not None and adapter is None:
        raise MappingConfigError(f"{where}: names an adapter that was not loaded")

    tables = document.get("tables", {})
    if not isinstance(tables, dict):
        raise MappingConfigError(f"{where}: \"tables\" must be an object of code tables")
    for table_name, table in tables.items():
        if not NAME_RE.match(table_name) or not isinstance(table, dict):
            raise MappingConfigError(f"{where}: table '{table_name}' must be a named object")
        for value in table.values():
            if isinstance(value, (dict, list)):
                raise MappingConfigError(f"{where}: table '{table_name}' maps codes to scalars only")

    identity = name == CANONICAL
    compiled: dict[str, dict[str, Any]] = {}
    for direction in DIRECTIONS:
        section = document.get(direction, {})
        if not isinstance(section, dict):
            raise MappingConfigError(f"{where}: \"{direction}\" must be an object of event type -> expression")
        if identity and section:
            raise MappingConfigError(f"{where}: the identity mapping carries no expressions")
        compiled[direction] = {}
        for event_type, text in section.items():
            if not _EVENT_TYPE_RE.match(event_type):
                raise MappingConfigError(f"{where}: '{event_type}' is not an event type name")
            compiled[direction][event_type] = _compile(f"{where} {direction}['{event_type}']", text, tables)

    samples = document.get("samples", [])
    if not isinstance(samples, list):
        raise MappingConfigError(f"{where}: \"samples\" must be a list")
    for index, sample in enumerate(samples):
        at = f"{where} samples[{index}]"
        if not isinstance(sample, dict) or set(sample) - _SAMPLE_KEYS:
            raise MappingConfigError(f"{at}: a sample has only the keys {sorted(_SAMPLE_KEYS)}")
        direction = sample.get("direction")
        if direction not in DIRECTIONS:
            raise MappingConfigError(f"{at}: \"direction\" is inbound or outbound")
        if not isinstance(sample.get("type"), str):
            raise MappingConfigError(f"{at}: \"type\" is an event type")
        if not identity and sample["type"] not in compiled[direction]:
            raise MappingConfigError(f"{at}: no {direction} expression for its type")
        if not isinstance(sample.get("native"), dict) or not isinstance(sample.get("canonical"), dict):
            raise MappingConfigError(f"{at}: \"native\" and \"canonical\" are JSON objects")

    return Mapping(
        name=name, kind=kind, description=description, identity=identity,
        inbound=compiled["inbound"], outbound=compiled["outbound"], tables=tables,
        samples=samples, adapter_name=document.get("adapter"), adapter=adapter, source=source,
    )
