"""chalicelib.mapping: mapping files, their samples, the hub functions and the error contract."""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jmespath
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib import mapping
from chalicelib.errors import HubError
from chalicelib.mapping import (MappingConfigError, MappingDataError, build_mapping, list_mappings, load_mapping)

REPO = Path(__file__).resolve().parent.parent
MAPPINGS = REPO / "mappings"


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch):
    monkeypatch.delenv(mapping.MAPPINGS_DIR_ENV, raising=False)
    monkeypatch.delenv(mapping.ADAPTERS_DIR_ENV, raising=False)
    mapping.clear_cache()
    yield
    mapping.clear_cache()


def _models():
    from chalicelib import models

    return models


def _mapping_names() -> list[str]:
    return sorted(p.stem for p in MAPPINGS.glob("*.json"))


def _samples() -> list[tuple[str, int, str, str]]:
    out = []
    for name in _mapping_names():
        document = json.loads((MAPPINGS / f"{name}.json").read_text(encoding="utf-8"))
        for index, sample in enumerate(document.get("samples", [])):
            out.append((name, index, sample["direction"], sample["type"]))
    return out


def _leaves(value, minimum=4):
    """The string values (and long numbers) in a native payload: none may appear in an error."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item, minimum)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item, minimum)
    elif isinstance(value, str) and len(value) >= minimum:
        yield value
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and len(str(value)) >= 6:
        yield str(value)


def _assert_mapping_failed(exc: HubError, native) -> None:
    assert exc.status == 422
    assert exc.code == "mapping_failed"
    assert len(exc.details) == 1
    detail = exc.details[0]
    assert detail["field"] == "data" and detail["code"] == "mapping_failed"
    assert detail["message"] and len(detail["message"]) < 200
    text = json.dumps(exc.body(), ensure_ascii=False) + str(exc) + repr(exc.args)
    for value in _leaves(native):
        assert value not in text, "a native value leaked into the error"
    # no chained exception that a traceback could print with the data in it
    assert exc.__cause__ is None and exc.__suppress_context__


# ---------------------------------------------------------------------------------------------
# The shipped files

def test_shipped_mapping_files():
    names = list_mappings()
    assert {"canonical", "tax_gt3", "bank_govpay"} <= set(names)
    assert names == _mapping_names()
    for name in names:
        m = load_mapping(name)
        assert m.name == name
        assert Path(m.source) == MAPPINGS / f"{name}.json"


def test_canonical_is_identity_and_has_a_file():
    assert (MAPPINGS / "canonical.json").is_file()
    m = load_mapping("canonical")
    assert m.identity and m.kind is None and m.accepts_kind("tax") and m.accepts_kind("registry")
    data = {"anything": [1, {"x": "y"}]}
    out = m.to_canonical("tax.assessed", data)
    assert out == data and out is not data
    assert m.to_native("payment.order_requested", data) == data


def test_canonical_passes_every_catalog_example():
    models = _models()
    m = load_mapping("canonical")
    assert models.EVENT_SPECS
    for (type_name, direction), spec in models.EVENT_SPECS.items():
        if direction == "inbound":
            assert m.to_canonical(type_name, spec.example) == spec.example
        else:
            assert m.to_native(type_name, spec.example) == spec.example


@pytest.mark.parametrize("name,index,direction,type_name", _samples(),
                         ids=[f"{n}[{i}]-{t}" for n, i, _, t in _samples()])
def test_sample(name, index, direction, type_name):
    models = _models()
    m = load_mapping(name)
    sample = m.samples[index]
    native, canonical = copy.deepcopy(sample["native"]), copy.deepcopy(sample["canonical"])
    spec = models.get_spec(type_name, direction)
    assert spec.direction == direction
    if direction == "inbound":
        assert m.to_canonical(type_name, native) == canonical
        assert native == sample["native"], "mapping must not change its input"
    else:
        assert m.to_native(type_name, canonical) == native
        assert canonical == sample["canonical"], "mapping must not change its input"
    model = models.validate_data(type_name, canonical, direction=direction)
    # the sample is written in the form the hub stores and routes (JSON mode, no nulls)
    assert model.model_dump(mode="json", exclude_none=True) == canonical


def test_samples_cover_every_mapped_type():
    for name in _mapping_names():
        m = load_mapping(name)
        if m.identity:
            continue
        for type_name in m.inbound_types:
            count = sum(1 for s in m.samples if s["direction"] == "inbound" and s["type"] == type_name)
            assert count >= 2, f"{name}: {type_name} needs at least two inbound samples"
        for type_name in m.outbound_types:
            count = sum(1 for s in m.samples if s["direction"] == "outbound" and s["type"] == type_name)
            assert count >= 1, f"{name}: {type_name} needs an outbound sample"


def test_mapping_kinds_match_the_catalog():
    models = _models()
    for name in _mapping_names():
        m = load_mapping(name)
        if m.identity:
            continue
        assert m.kind in models.PARTNER_KINDS
        for type_name in m.inbound_types:
            assert m.kind in models.get_spec(type_name, "inbound").senders, (name, type_name)
        for type_name in m.outbound_types:
            assert m.kind in models.get_spec(type_name, "outbound").receivers, (name, type_name)


def test_tax_gt3_covers_the_tax_outbound_types():
    models = _models()
    m = load_mapping("tax_gt3")
    assert set(m.inbound_types) == {"tax.assessed", "tax.cleared"}
    wanted = {"tax.assessment_requested"} | ({"tax.booking_shared"} & set(models.OUTBOUND_TYPES))
    assert wanted <= set(m.outbound_types)


def test_bank_govpay_types():
    m = load_mapping("bank_govpay")
    assert set(m.inbound_types) == {"payment.succeeded", "payment.failed", "payment.refunded", "settlement.ready"}
    assert set(m.outbound_types) == {"payment.order_requested", "case.overdue"}


# ---------------------------------------------------------------------------------------------
# Compiled once

def _expression_count(name: str) -> int:
    document = json.loads((MAPPINGS / f"{name}.json").read_text(encoding="utf-8"))
    return len(document.get("inbound", {})) + len(document.get("outbound", {}))


@pytest.mark.parametrize("name", _mapping_names())
def test_each_expression_is_compiled_once(name, monkeypatch):
    calls = []
    real = jmespath.compile

    def counting(expression, *args, **kwargs):
        calls.append(expression)
        return real(expression, *args, **kwargs)

    monkeypatch.setattr(jmespath, "compile", counting)
    first = load_mapping(name)
    assert len(calls) == _expression_count(name)
    assert load_mapping(name) is first
    for sample in first.samples:
        if sample["direction"] == "inbound":
            first.to_canonical(sample["type"], sample["native"])
        else:
            first.to_native(sample["type"], sample["canonical"])
    assert len(calls) == _expression_count(name), "mapping must not compile again"
    mapping.clear_cache()
    assert load_mapping(name) is not first


def test_expressions_are_compiled_objects():
    m = load_mapping("tax_gt3")
    compiled = m.expression("inbound", "tax.assessed")
    assert hasattr(compiled, "search") and hasattr(compiled, "parsed")
    assert m.expression("inbound", "payment.succeeded") is None


# ---------------------------------------------------------------------------------------------
# Errors while mapping: 422, never the data

def _sample(name: str, type_name: str, direction: str = "inbound", index: int = 0) -> dict:
    m = load_mapping(name)
    found = [s for s in m.samples if s["type"] == type_name and s["direction"] == direction]
    return copy.deepcopy(found[index])


def test_non_numeric_ynse_is_mapping_failed():
    native = _sample("tax_gt3", "tax.assessed")["native"]
    native["swxx"][0]["ynse"] = "九万三千二百零三"
    with pytest.raises(HubError) as info:
        load_mapping("tax_gt3").to_canonical("tax.assessed", native)
    _assert_mapping_failed(info.value, native)
    assert "yuan_to_fen" in info.value.details[0]["message"]


@pytest.mark.parametrize("bad", ["93203.881", "-93203.88", "93,203.88", "1e3", "", " 1.00", "NaN", True])
def test_bad_amounts_are_mapping_failed(bad):
    native = _sample("tax_gt3", "tax.assessed")["native"]
    native["hjse"] = bad
    with pytest.raises(HubError) as info:
        load_mapping("tax_gt3").to_canonical("tax.assessed", native)
    _assert_mapping_failed(info.value, native)


def test_three_decimal_sub_order_amount_is_mapping_failed():
    native = _sample("bank_govpay", "payment.succeeded")["native"]
    native["LIST1"][1]["Fee_Itm_Prj_Amt"] = "80.005"
    with pytest.raises(HubError) as info:
        load_mapping("bank_govpay").to_canonical("payment.succeeded", native)
    _assert_mapping_failed(info.value, native)
    assert "two decimal" in info.value.details[0]["message"]


def test_status_contradicting_the_type_is_mapping_failed():
    native = _sample("bank_govpay", "payment.succeeded")["native"]
    native["Ordr_StCd"] = "3"
    with pytest.raises(HubError) as info:
        load_mapping("bank_govpay").to_canonical("payment.succeeded", native)
    _assert_mapping_failed(info.value, native)
    assert "expect()" in info.value.details[0]["message"]


def test_unknown_code_is_mapping_failed():
    native = _sample("tax_gt3", "tax.assessed")["native"]
    native["swxx"][0]["zrfcsfbz"] = "7"
    with pytest.raises(HubError) as info:
        load_mapping("tax_gt3").to_canonical("tax.assessed", native)
    _assert_mapping_failed(info.value, native)
    assert "lookup()" in info.value.details[0]["message"]


def test_outbound_id_type_without_a_code_is_mapping_failed():
    canonical = _sample("bank_govpay", "payment.order_requested", "outbound")["canonical"]
    canonical["payer"] = {"name": "PIERRE DUPONT", "id_type": "passport", "id_number": "X12345678"}
    with pytest.raises(HubError) as info:
        load_mapping("bank_govpay").to_native("payment.order_requested", canonical)
    _assert_mapping_failed(info.value, canonical)


def test_jmespath_type_error_is_mapping_failed_without_the_value():
    m = build_mapping({"name": "t_sum", "kind": "tax", "inbound": {"tax.assessed": "{total_fen: sum(hjse)}"}})
    native = {"hjse": "secret-value-13800138000"}
    with pytest.raises(HubError) as info:
        m.to_canonical("tax.assessed", native)
    _assert_mapping_failed(info.value, native)
    assert "sum()" in info.value.details[0]["message"]
    # jmespath's own message would have carried the value
    with pytest.raises(jmespath.exceptions.JMESPathTypeError) as raw:
        jmespath.search("sum(hjse)", native)
    assert "13800138000" in str(raw.value)


def test_hub_function_type_error_is_mapping_failed():
    m = build_mapping({"name": "t_fn", "kind": "tax", "inbound": {"tax.assessed": "{at: china_time(hdsj)}"}})
    native = {"hdsj": {"nested": "110105194912310021"}}
    with pytest.raises(HubError) as info:
        m.to_canonical("tax.assessed", native)
    _assert_mapping_failed(info.value, native)
    assert "china_time()" in info.value.details[0]["message"]


@pytest.mark.parametrize("expression", ["swxx", "ywbh", "`42`", "`null`", "`true`"])
def test_result_that_is_not_an_object_is_mapping_failed(expression):
    m = build_mapping({"name": "t_list", "kind": "tax", "inbound": {"tax.assessed": expression}})
    native = {"swxx": [{"ynse": "100.00"}], "ywbh": "SZ-2026-ZY-000123"}
    with pytest.raises(HubError) as info:
        m.to_canonical("tax.assessed", native)
    _assert_mapping_failed(info.value, native)
    assert "JSON object" in info.value.details[0]["message"]


def test_unmapped_event_type():
    m = load_mapping("tax_gt3")
    with pytest.raises(HubError) as info:
        m.to_canonical("payment.succeeded", {"Ordr_StCd": "2"})
    assert info.value.status == 422 and info.value.code == "unmapped_event_type"
    with pytest.raises(HubError) as info:
        m.to_native("payment.order_requested", {"order_id": "x"})
    assert info.value.status == 422 and info.value.code == "unmapped_event_type"


def test_identity_refuses_data_that_is_not_an_object():
    with pytest.raises(HubError) as info:
        load_mapping("canonical").to_canonical("tax.assessed", ["not", "an", "object"])
    assert info.value.code == "mapping_failed"


# ---------------------------------------------------------------------------------------------
# Adapters

def _tree(tmp_path: Path, monkeypatch, documents: dict[str, dict], adapters: dict[str, str]) -> Path:
    (tmp_path / "mappings").mkdir()
    (tmp_path / "adapters").mkdir()
    for name, document in documents.items():
        (tmp_path / "mappings" / f"{name}.json").write_text(json.dumps(document), encoding="utf-8")
    for name, source in adapters.items():
        (tmp_path / "adapters" / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    monkeypatch.setenv(mapping.MAPPINGS_DIR_ENV, str(tmp_path / "mappings"))
    mapping.clear_cache()
    return tmp_path


def test_adapter_that_raises_is_mapping_failed(tmp_path, monkeypatch):
    _tree(tmp_path, monkeypatch,
          {"x_raise": {"name": "x_raise", "kind": "tax", "adapter": "x_raise",
                       "inbound": {"tax.assessed": "@"}}},
          {"x_raise": """
              def before_inbound(event_type, native):
                  raise ValueError("cannot read " + native["zjhm"])
          """})
    native = {"zjhm": "440305198703150010"}
    with pytest.raises(HubError) as info:
        load_mapping("x_raise").to_canonical("tax.assessed", native)
    _assert_mapping_failed(info.value, native)
    assert info.value.details[0]["message"] == "inbound adapter before_inbound: ValueError raised"


def test_adapter_can_give_a_safe_reason(tmp_path, monkeypatch):
    _tree(tmp_path, monkeypatch,
          {"x_reason": {"name": "x_reason", "kind": "tax", "adapter": "x_reason",
                        "outbound": {"tax.assessment_requested": "{a: case_id}"}}},
          {"x_reason": """
              from chalicelib.mapping import MappingDataError
              def after_outbound(event_type, native):
                  raise MappingDataError("case number too long for this bureau")
          """})
    with pytest.raises(HubError) as info:
        load_mapping("x_reason").to_native("tax.assessment_requested", {"case_id": "SZ-1"})
    assert info.value.details[0]["message"] == "outbound adapter after_outbound: case number too long for this bureau"


def test_adapter_hooks_run_around_the_expression(tmp_path, monkeypatch):
    _tree(tmp_path, monkeypatch,
          {"x_ok": {"name": "x_ok", "kind": "tax", "adapter": "x_ok",
                    "inbound": {"tax.cleared": "{case_id: ywbh, seen: seen}"},
                    "outbound": {"tax.assessment_requested": "{ywbh: case_id}"}}},
          {"x_ok": """
              def before_inbound(event_type, native):
                  native["seen"] = event_type
                  return native
              def after_outbound(event_type, native):
                  native["wrapped"] = True
                  return {"body": native}
          """})
    m = load_mapping("x_ok")
    native = {"ywbh": "SZ-1"}
    assert m.to_canonical("tax.cleared", native) == {"case_id": "SZ-1", "seen": "tax.cleared"}
    assert native == {"ywbh": "SZ-1"}, "the adapter works on a copy"
    assert m.to_native("tax.assessment_requested", {"case_id": "SZ-1"}) == {"body": {"ywbh": "SZ-1", "wrapped": True}}


def test_adapter_returning_a_non_object_is_mapping_failed(tmp_path, monkeypatch):
    _tree(tmp_path, monkeypatch,
          {"x_list": {"name": "x_list", "kind": "tax", "adapter": "x_list",
                      "outbound": {"tax.assessment_requested": "@"}}},
          {"x_list": """
              def after_outbound(event_type, native):
                  return [native]
          """})
    with pytest.raises(HubError) as info:
        load_mapping("x_list").to_native("tax.assessment_requested", {"case_id": "SZ-2026-1"})
    _assert_mapping_failed(info.value, {"case_id": "SZ-2026-1"})


def test_adapter_problems_are_configuration_errors(tmp_path, monkeypatch):
    _tree(tmp_path, monkeypatch,
          {"x_missing": {"name": "x_missing", "kind": "tax", "adapter": "nope", "inbound": {"tax.assessed": "@"}},
           "x_nohooks": {"name": "x_nohooks", "kind": "tax", "adapter": "x_nohooks", "inbound": {"tax.assessed": "@"}},
           "x_broken": {"name": "x_broken", "kind": "tax", "adapter": "x_broken", "inbound": {"tax.assessed": "@"}},
           "x_badname": {"name": "x_badname", "kind": "tax", "adapter": "../x", "inbound": {"tax.assessed": "@"}}},
          {"x_nohooks": "VALUE = 1\n", "x_broken": "raise RuntimeError('boom')\n"})
    for name in ("x_missing", "x_nohooks", "x_broken", "x_badname"):
        with pytest.raises(MappingConfigError):
            load_mapping(name)


# ---------------------------------------------------------------------------------------------
# Loading: names, directories, checks at load time

@pytest.mark.parametrize("name", ["", "Tax_gt3", "../mappings/tax_gt3", "tax-gt3", "tax_gt3.json", "a/b", None, 3])
def test_invalid_names_are_refused(name):
    with pytest.raises(MappingConfigError):
        load_mapping(name)


def test_missing_mapping_is_a_configuration_error():
    with pytest.raises(MappingConfigError):
        load_mapping("no_such_format")


def test_mappings_dir_override(tmp_path, monkeypatch):
    _tree(tmp_path, monkeypatch, {"only_here": {"name": "only_here", "kind": "tax",
                                                "inbound": {"tax.assessed": "{a: b}"}}}, {})
    assert list_mappings() == ["only_here"]
    assert load_mapping("only_here").to_canonical("tax.assessed", {"b": 1}) == {"a": 1}
    assert mapping.adapters_dir() == (tmp_path / "adapters").resolve()
    with pytest.raises(MappingConfigError):
        load_mapping("tax_gt3")


def test_found_from_the_deployment_zip_root(tmp_path):
    """The package stages app.py, chalicelib/, mappings/ and adapters/ side by side at the zip root."""
    root = tmp_path / "zip_root"
    shutil.copytree(REPO / "chalicelib", root / "chalicelib",
                    ignore=shutil.ignore_patterns("__pycache__", "models"))
    shutil.copytree(MAPPINGS, root / "mappings")
    shutil.copytree(REPO / "adapters", root / "adapters", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "app.py").write_text("# placeholder\n")
    script = ("import json, chalicelib.mapping as m; x = m.load_mapping('bank_govpay'); "
              "print(json.dumps([x.source, m.list_mappings()]))")
    env = {k: v for k, v in os.environ.items() if k not in (mapping.MAPPINGS_DIR_ENV, mapping.ADAPTERS_DIR_ENV)}
    env["PYTHONPATH"] = str(root)
    out = subprocess.run([sys.executable, "-c", script], cwd=str(tmp_path), env=env, capture_output=True,
                         text=True, check=True)
    source, names = json.loads(out.stdout)
    assert Path(source) == (root / "mappings" / "bank_govpay.json").resolve()
    assert "canonical" in names


@pytest.mark.parametrize("document,fragment", [
    ({"name": "t", "inbound": {"tax.assessed": "{a: no_such_fn(b)}"}}, "unknown function"),
    ({"name": "t", "inbound": {"tax.assessed": "{a: lookup('nope', b)}"}}, "table 'nope'"),
    ({"name": "t", "inbound": {"tax.assessed": "{a: "}}, "does not parse"),
    ({"name": "t", "inbound": {"tax.assessed": ""}}, "non-empty"),
    ({"name": "t", "inbound": {"not a type": "@"}}, "event type"),
    ({"name": "t", "inbound": {}, "outbnd": {}}, "unknown keys"),
    ({"name": "t", "outbound": {"x.y": "{a: format_china_time(t, 'dd/MM/yyyy')}"}}, "unknown pattern"),
    ({"name": "t", "inbound": {"tax.assessed": "@"},
      "samples": [{"direction": "inbound", "type": "tax.cleared", "native": {}, "canonical": {}}]}, "no inbound"),
    ({"name": "t", "samples": [{"direction": "sideways", "type": "x.y", "native": {}, "canonical": {}}]}, "direction"),
    ({"name": "canonical", "inbound": {"tax.assessed": "@"}}, "identity"),
    ({"name": "t", "kind": "Tax"}, "kind"),
    ({"name": "t", "tables": {"r": {"0": ["a"]}}}, "scalars"),
    ({"name": "t", "adapter": "x"}, "adapter"),
    (["not", "an", "object"], "JSON object"),
])
def test_bad_mapping_documents_fail_at_load(document, fragment):
    with pytest.raises(MappingConfigError) as info:
        build_mapping(document)
    assert fragment in str(info.value)


def test_file_name_must_match_name(tmp_path, monkeypatch):
    _tree(tmp_path, monkeypatch, {"aaa": {"name": "bbb"}}, {})
    with pytest.raises(MappingConfigError):
        load_mapping("aaa")


def test_expression_as_list_of_lines():
    m = build_mapping({"name": "t", "inbound": {"x.y": ["{", "  a: b,", "  c: yuan_to_fen(d)", "}"]}})
    assert m.to_canonical("x.y", {"b": "B", "d": "1.5"}) == {"a": "B", "c": 150}


# ---------------------------------------------------------------------------------------------
# Hub functions

@pytest.mark.parametrize("value,fen", [
    ("0", 0), ("0.00", 0), ("0.5", 50), ("1234.56", 123456), ("00012.30", 1230), ("3200000.00", 320000000),
    (0, 0), (80, 8000), (1234.56, 123456), (0.1, 10), (102750.0, 10275000), (9999999999999.99, 999999999999999),
])
def test_yuan_to_fen_accepts(value, fen):
    assert mapping.yuan_to_fen(value) == fen
    assert isinstance(mapping.yuan_to_fen(value), int)


@pytest.mark.parametrize("value", [
    "1.500", "0.001", "-1", "-0.01", "1.", ".5", "1e2", "1,000.00", " 1", "1 ", "", "¥1", "NaN", "Infinity",
    -1, -0.5, 0.001, 1.005, float("nan"), float("inf"), 1e13, True, False, None, [1], {"a": 1},
    "1" * 17,
])
def test_yuan_to_fen_refuses(value):
    with pytest.raises(MappingDataError):
        mapping.yuan_to_fen(value)


@pytest.mark.parametrize("fen,text", [(0, "0.00"), (5, "0.05"), (80, "0.80"), (8000, "80.00"), (123456, "1234.56")])
def test_fen_to_yuan(fen, text):
    assert mapping.fen_to_yuan(fen) == text


@pytest.mark.parametrize("value", [-1, 1.0, 12.5, "100", True, None])
def test_fen_to_yuan_refuses(value):
    with pytest.raises(MappingDataError):
        mapping.fen_to_yuan(value)


@given(st.integers(min_value=0, max_value=10 ** 17))
def test_fen_yuan_round_trip(n):
    assert mapping.yuan_to_fen(mapping.fen_to_yuan(n)) == n


@given(st.integers(min_value=0, max_value=10 ** 15 - 1))
def test_fen_yuan_round_trip_through_a_json_number(n):
    # A JSON number (float) below 10^13 yuan with two decimals reads back exactly.
    assert mapping.yuan_to_fen(json.loads(mapping.fen_to_yuan(n))) == n


@given(st.integers(min_value=0, max_value=10 ** 12), st.integers(min_value=0, max_value=999))
def test_three_decimal_yuan_strings_are_refused(whole, thousandths):
    text = f"{whole}.{thousandths:03d}"
    with pytest.raises(MappingDataError):
        mapping.yuan_to_fen(text)


@settings(max_examples=50)
@given(st.integers(min_value=0, max_value=10 ** 9), st.integers(min_value=0, max_value=999))
def test_three_decimal_yuan_strings_are_mapping_failed_in_a_mapping(whole, thousandths):
    m = build_mapping({"name": "t", "inbound": {"x.y": "{fen: yuan_to_fen(amount)}"}})
    native = {"amount": f"{whole}.{thousandths:03d}"}
    with pytest.raises(HubError) as info:
        m.to_canonical("x.y", native)
    assert info.value.code == "mapping_failed"
    assert native["amount"] not in json.dumps(info.value.body())


def _run(expression: str, data=None, tables=None):
    m = build_mapping({"name": "t", "tables": tables or {}, "inbound": {"x.y": "{r: " + expression + "}"}})
    return m.to_canonical("x.y", data if data is not None else {})["r"]


def test_null_passes_through_converters():
    for fn in ("yuan_to_fen", "fen_to_yuan", "to_int", "to_str", "decimal_str", "china_time", "date_dashed",
               "date_compact"):
        assert _run(f"{fn}(missing)") is None, fn
    assert _run("format_china_time(missing, 'yyyyMMdd')") is None
    assert _run("lookup(`{\"0\": \"a\"}`, missing)") is None


def test_decimal_str_and_to_str():
    assert _run("decimal_str('5.0E-4')") == "0.0005"
    assert _run("decimal_str(`5.0E-4`)") == "0.0005"
    assert _run("decimal_str('0.010')") == "0.01"
    assert _run("decimal_str(`3`)") == "3"
    assert _run("decimal_str('100')") == "100"
    assert _run("decimal_str('0.00')") == "0"
    assert _run("to_str(`0.01`)") == "0.01"
    assert _run("to_str(`7`)") == "7"
    assert _run("to_int('0042')") == 42
    assert _run("to_int(`17.0`)") == 17
    for bad in ("decimal_str('abc')", "to_int('1.5')", "to_int(`1.5`)", "to_str(`true`)"):
        with pytest.raises(HubError):
            _run(bad)


def test_times_and_dates():
    assert _run("china_time('20260305104522')") == "2026-03-05T10:45:22+08:00"
    assert _run("china_time('2026-03-05 10:45:22')") == "2026-03-05T10:45:22+08:00"
    assert _run("format_china_time('2026-03-05T02:45:22Z', 'yyyyMMddHHmmss')") == "20260305104522"
    assert _run("format_china_time('2026-03-05T18:45:22-08:00', 'yyyy-MM-dd HH:mm:ss')") == "2026-03-06 10:45:22"
    assert _run("format_china_time('2026-03-05T10:45:22+08:00', 'yyyyMMdd')") == "20260305"
    assert _run("date_dashed('20260305')") == "2026-03-05"
    assert _run("date_dashed('2026-03-05')") == "2026-03-05"
    assert _run("date_compact('2026-03-05')") == "20260305"
    for bad in ("china_time('20260230104522')", "china_time('2026-03-05T10:45:22')", "china_time('1700000000')",
                "format_china_time('2026-03-05T10:45:22', 'yyyyMMdd')", "date_dashed('20261301')",
                "date_dashed('2026/03/05')"):
        with pytest.raises(HubError):
            _run(bad)


def test_lookup_default_nonblank_compact_numbered_expect():
    tables = {"role": {"0": "obligor", "1": "obligee"}}
    assert _run("lookup('role', '1')", tables=tables) == "obligee"
    assert _run("lookup('role', `0`)", tables=tables) == "obligor"
    assert _run("lookup(`{\"CNY\": \"156\"}`, 'CNY')") == "156"
    with pytest.raises(HubError):
        _run("lookup('role', '2')", tables=tables)
    assert _run("default(missing, 'x')") == "x"
    assert _run("default('', 'x')") == ""
    assert _run("default(nonblank('  '), 'x')") == "x"
    assert _run("nonblank('a')") == "a"
    assert _run("compact({a: missing, b: `0`, c: ''})") == {"b": 0, "c": ""}
    assert _run("numbered(items, 'SN')", {"items": [{"a": 1}, {"a": 2}]}) == [{"a": 1, "SN": 1}, {"a": 2, "SN": 2}]
    assert _run("numbered(`[]`, 'SN')") == []
    assert _run("expect('2', ['2'], 'ok')") == "ok"
    assert _run("expect(`2`, [`2`], 'ok')") == "ok"
    with pytest.raises(HubError):
        _run("expect('3', ['2'], 'ok')")
    with pytest.raises(HubError):
        _run("expect(`true`, [`1`], 'ok')")
    with pytest.raises(HubError):
        _run("numbered(`[1, 2]`, 'SN')")


def test_hub_functions_know_no_partner():
    source = (REPO / "chalicelib" / "mapping.py").read_text(encoding="utf-8")
    for word in ("gt3", "govpay", "Ordr_StCd", "zsxmDm", "TAXGRP", "ywbh"):
        assert word not in source
