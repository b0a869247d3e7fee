"""One realistic, valid canonical example per (event type, direction), for the catalog and the tests.

Every identifier here passes its check (unit codes from the five cities' district codes, resident
IDs and USCCs with correct check characters); the people are invented.
"""
from __future__ import annotations

import hashlib

from typing import Any

BJ_UNIT = "110105001001GB00001F00010001"   # 北京 朝阳
SZ_UNIT = "440305001002GB00001F00010001"   # 深圳 南山
SH_UNIT = "310115004003GB00012F00020015"   # 上海 浦东新区
GZ_UNIT = "440106003001GB00021F00030102"   # 广州 天河
HZ_UNIT = "330106002005GB00008F00011203"   # 杭州 西湖

CCB_SZ = {"name": "中国建设银行股份有限公司深圳市分行", "uscc": "91440300MA5F00001A", "branch": "南山支行"}
CMB_SZ = {"name": "招商银行股份有限公司深圳分行", "uscc": "91440101MA9W000042"}
ICBC_GZ = {"name": "中国工商银行股份有限公司广州天河支行", "uscc": "91330100MA2H000054"}


def _doc(document_id: str, sha256: str, media_type: str = "application/pdf", size: int = 482_113) -> dict[str, Any]:
    return {"document_id": document_id, "sha256": sha256, "media_type": media_type, "size": size}


def _seller(**extra: Any) -> dict[str, Any]:
    return {"role": "obligor", "name": "张三", "id_type": "resident_id", "id_number": "11010519491231002X",
            "phone": "13800138000", **extra}


def _buyer(**extra: Any) -> dict[str, Any]:
    return {"role": "obligee", "name": "李四", "id_type": "resident_id", "id_number": "110108198805123373",
            "phone": "13900139000", "share": "100%", **extra}


def _sz_buyer() -> dict[str, Any]:
    return {"role": "obligee", "name": "王五", "id_type": "resident_id", "id_number": "440305198507150013",
            "phone": "13600136000", "share": "100%"}


def _sz_seller() -> dict[str, Any]:
    return {"role": "obligor", "name": "赵六", "id_type": "resident_id", "id_number": "440106197811204523",
            "phone": "13700137000"}


def _bj_certificate() -> dict[str, Any]:
    return {"kind": "ownership_certificate", "number": "京(2025)朝阳区不动产权第0012345号", "holder_name": "李四",
            "e_certificate_id": "ECERT-110000-2025-0012345",
            "e_certificate": _doc("doc_7Qm2xK9pL1", "e848caf1bb00ee22e35a150f0125f4f2f5a17902feda6748f8f4a2245e3e9168",
                                  "application/ofd", 91_200)}


def _tax_lines() -> list[dict[str, Any]]:
    return [
        {"line_id": "L1", "tax_item_code": "10119", "tax_name": "契税", "payer_role": "obligee",
         "taxable_base_fen": 560_000_000, "rate": "0.01", "amount_fen": 5_600_000,
         "tax_ticket_no": "311016250900012345", "treasury_code": "1101050000", "budget_subject": "1011901",
         "collecting_authority": "11101050000", "due_date": "2025-09-15"},
        {"line_id": "L2", "tax_item_code": "10106", "tax_name": "个人所得税", "payer_role": "obligor",
         "taxable_base_fen": 560_000_000, "rate": "0.01", "amount_fen": 5_600_000,
         "tax_ticket_no": "311016250900012346", "treasury_code": "1101050000", "budget_subject": "1010607",
         "collecting_authority": "11101050000", "due_date": "2025-09-15"},
    ]


def _fee_lines() -> list[dict[str, Any]]:
    return [{"line_id": "F1", "fee_item_code": "103040100101", "fee_item_name": "不动产登记费（住宅）", "quantity": 1,
             "unit_price_fen": 8_000, "amount_fen": 8_000}]


def _court() -> dict[str, Any]:
    return {"name": "北京市朝阳区人民法院", "court_code": "2105", "uscc": "111101050000000017"}


def _officers() -> list[dict[str, Any]]:
    return [{"name": "刘某", "badge_number": "1101050001"}, {"name": "孙某", "badge_number": "1101050002"}]


def _seizure() -> dict[str, Any]:
    return {
        "order_number": "(2025)京0105执1234号", "action": "seize", "seizure_kind": "seize", "court": _court(),
        "unit_code": BJ_UNIT,
        "subject": {"name": "张三", "id_type": "resident_id", "id_number": "11010519491231002X"},
        "legal_document": _example_doc("doc_R8aT3vYc2n"),
        "assistance_notice": _example_doc("doc_R8aT3vYc2p"),
        "valid_from": "2025-09-03", "valid_until": "2028-09-02", "amount_fen": 100_000_000,
        "officers": _officers(), "ordered_at": "2025-09-03T10:00:00+08:00",
    }


def _inquiry() -> dict[str, Any]:
    return {
        "inquiry_id": "INQ-CY-2025-0099", "unit_code": BJ_UNIT, "scope": ["ownership", "mortgage", "seizure"],
        "legal_basis": {"kind": "investigation_order", "number": "(2025)京0105执调字第88号",
                        "document": _example_doc("doc_Q1w2E3r4T5")},
        "officer": {"name": "刘某", "badge_number": "1101050001"},
        "requested_at": "2025-09-04T14:20:00+08:00",
    }


def _answer() -> dict[str, Any]:
    return {
        "inquiry_id": "INQ-CY-2025-0099", "outcome": "found",
        "records": [{
            "unit_code": BJ_UNIT, "location": "北京市朝阳区某街道1号院1号楼1单元101", "property_use": "residential",
            "floor_area_m2": "89.50", "certificate_number": "京(2025)朝阳区不动产权第0012345号",
            "owners": [{"name": "李四", "id_type": "resident_id", "id_number": "110108198805123373", "share": "100%"}],
            "restrictions": [{"restriction_type": "seizure", "restriction_id": "CF-110105-2025-0007",
                              "holder_name": "北京市朝阳区人民法院", "recorded_at": "2025-09-03T15:00:00+08:00",
                              "valid_until": "2028-09-02"}],
        }],
        "answered_at": "2025-09-04T16:00:00+08:00",
    }


# The bytes of the examples' documents (relay scans, the notarial certificate, court papers; their hashes and sizes are
# in the examples), so that a test can upload them and send the examples with valid references, as it
# does the settlement file.
RELAY_EXAMPLE_FILES: dict[str, bytes] = {
    "doc_C0ntr4ct01": ("%PDF-1.7\n% 存量房买卖合同 (example scan)\n" + "page of the sale contract\n" * 20 + "%%EOF\n").encode(),
    "doc_1dCard0001": ("%PDF-1.7\n% 身份证明 (example scan)\n" + "identity document page\n" * 10 + "%%EOF\n").encode(),
    "doc_V1d3o0Rec1": b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64,
    "doc_N0t4ry0456": ("%PDF-1.7\n% 继承公证书 (example e-notarial certificate)\n" + "certificate page\n" * 12
                       + "%%EOF\n").encode(),
    # courts (flow 5): the ruling and assistance notice of a seizure, the investigation order of an inquiry
    "doc_R8aT3vYc2n": ("%PDF-1.7\n% 执行裁定书 (example)\n" + "ruling: seize the unit\n" * 12 + "%%EOF\n").encode(),
    "doc_R8aT3vYc2p": ("%PDF-1.7\n% 协助执行通知书 (example)\n" + "assistance notice\n" * 8 + "%%EOF\n").encode(),
    "doc_Q1w2E3r4T5": ("%PDF-1.7\n% 调查令 (example)\n" + "investigation order\n" * 6 + "%%EOF\n").encode(),
    # banks (flow 2): the buyer's signed consent to a 带押过户 package
    "doc_C0nsent001": ("%PDF-1.7\n% 带押过户买方同意书 (example)\n" + "consent page, signed\n" * 6 + "%%EOF\n").encode(),
}


def _example_doc(document_id: str, media_type: str = "application/pdf") -> dict[str, Any]:
    data = RELAY_EXAMPLE_FILES[document_id]
    return _doc(document_id, hashlib.sha256(data).hexdigest(), media_type, len(data))


def _link(document_id: str, expires_at: str) -> dict[str, Any]:
    """A download link as the hub makes it for a verified document (flow 5 forwards)."""
    return {"document_id": document_id, "url_expires_at": expires_at,
            "download_url": f"https://hub-documents.example.com/{document_id}?X-Amz-Expires=86400&X-Amz-Signature=9f1c"}


def _relay_base() -> dict[str, Any]:
    shanghai_buyer = {"role": "obligee", "name": "周七", "id_type": "resident_id", "id_number": "310115199003011236",
                      "phone": "13500135000", "share": "100%"}
    return {
        "relay_id": "SH-RC-2025-0001", "attempt": 1, "service": "transfer", "unit_code": SZ_UNIT,
        "office_city": "310000", "office_name": "上海市浦东新区不动产登记事务中心",
        "applicants": [shanghai_buyer, _sz_seller()],
        "evidence": [
            {"applicant_index": 0, "purpose": "identity", "method": "face_check", "result": "passed",
             "checked_at": "2025-09-05T09:10:00+08:00", "reference": "FC-SH-20250905-0001"},
            {"applicant_index": 0, "purpose": "intention", "method": "recorded_confirmation", "result": "passed",
             "checked_at": "2025-09-05T09:20:00+08:00", "reference": "RV-SH-20250905-0001",
             "document": _example_doc("doc_V1d3o0Rec1", "video/mp4")},
            {"applicant_index": 1, "purpose": "identity", "method": "face_check", "result": "passed",
             "checked_at": "2025-09-05T09:12:00+08:00", "reference": "FC-SH-20250905-0002"},
            {"applicant_index": 1, "purpose": "intention", "method": "recorded_confirmation", "result": "passed",
             "checked_at": "2025-09-05T09:24:00+08:00", "reference": "RV-SH-20250905-0002"},
        ],
        "originals": {"courier": "EMS", "tracking_number": "1180123456789", "sent_at": "2025-09-05T17:00:00+08:00"},
        "collected_at": "2025-09-05T10:00:00+08:00",
    }




def _assist() -> dict[str, Any]:
    return {
        "assist_id": "GZ-AS-2025-0007", "service": "change", "unit_code": HZ_UNIT, "office_city": "440100",
        "office_name": "广州市天河区不动产登记中心",
        "applicants": [{"role": "obligee", "name": "吴八", "id_type": "resident_id", "id_number": "330106199208080611",
                        "phone": "13300133000"}],
        "evidence": [{"applicant_index": 0, "purpose": "identity", "method": "face_check", "result": "passed",
                      "checked_at": "2025-09-06T10:05:00+08:00", "reference": "FC-GZ-20250906-0031"}],
        "channel": "video", "requested_at": "2025-09-06T10:10:00+08:00",
    }


def _session() -> dict[str, Any]:
    return {"assist_id": "GZ-AS-2025-0007", "session_url": "https://zwfw.hangzhou.example.gov.cn/bdc/assist/8f3a2c9d",
            "session_expires_at": "2025-09-06T12:10:00+08:00", "registry_case_id": "HZ2025-WB-0456",
            "instructions": "请申请人使用浙里办App扫码登录后按提示操作", "opened_at": "2025-09-06T10:12:00+08:00"}


# The settlement file the settlement.ready example refers to (its hash and size are in the example):
# the two orders of the example case, as the platform's csv file lists them.
SETTLEMENT_EXAMPLE_FILE = (
    "settlement_date,platform_order_id,platform_sub_order_id,order_id,sub_order_id,kind,amount_fen\n"
    "2025-09-01,ZR202509011000001,ZR202509011000001-1,110105-BJ2025-000123-E-1,110105-BJ2025-000123-E-1-T1,"
    "payment,5600000\n"
    "2025-09-01,ZR202509011000001,ZR202509011000001-2,110105-BJ2025-000123-E-1,110105-BJ2025-000123-E-1-N1,"
    "payment,8000\n"
    "2025-09-01,ZR202509011000002,ZR202509011000002-1,110105-BJ2025-000123-R-1,110105-BJ2025-000123-R-1-T1,"
    "payment,5600000\n").encode()


def build_examples() -> dict[tuple[str, str], dict[str, Any]]:
    """Fresh example dicts, keyed by (type, direction)."""
    bj_case = "BJ2025-000123"
    order_id = "110105-BJ2025-000123-E-1"  # as chalicelib.money.orders mints it
    ex: dict[tuple[str, str], dict[str, Any]] = {}

    # ---- registry -------------------------------------------------------------------------
    ex["application.submitted", "inbound"] = {
        "case_id": bj_case, "unit_code": BJ_UNIT, "service": "transfer", "property_use": "residential",
        "floor_area_m2": "89.50", "price_fen": 560_000_000, "contract_number": "BJ-HT-2025-0456",
        "parties": [_buyer(), _seller()], "payer_mode": "each_pays_own",
        "utilities_consented": ["water", "electricity", "gas"], "location": "北京市朝阳区某街道1号院1号楼1单元101",
        "extra_certificates": 0,
        "registration_fee_fen": 8_000, "small_business_exempt": False,
        "submitted_at": "2025-09-01T09:30:00+08:00",
    }
    ex["application.requested", "outbound"] = {
        "request_id": "APP-NOT-HZ-2025-0001", "source_kind": "notary", "source_reference": "NZ-HZ-2025-0456",
        "unit_code": HZ_UNIT, "service": "transfer", "registrations": ["transfer"],
        "parties": [{"role": "obligee", "name": "吴八", "id_type": "resident_id", "id_number": "330106199208080611",
                     "share": "100%"},
                    {"role": "obligor", "name": "吴某", "id_type": "resident_id", "id_number": "11010519500101999X"}],
        "property_use": "residential",
        "notarization": {"certificate_number": "(2025)浙杭西证民字第456号", "matter": "inheritance",
                         "document": _example_doc("doc_N0t4ry0456")},
        "documents": [{"kind": "notarial_certificate", "title": "继承公证书", "document": _example_doc("doc_N0t4ry0456"),
                       "download_url": "https://hub-documents.example.com/doc_N0t4ry0456?X-Amz-Expires=86400&X-Amz-Signature=0a1b2c",
                       "url_expires_at": "2025-09-03T11:00:00+08:00"}],
        "requested_at": "2025-09-02T11:00:00+08:00",
    }
    ex["application.rejected", "inbound"] = {  # the application the hub filed for the notarization below
        "request_id": "NZ_hz-notary_NZ-HZ-2025-0456-1", "unit_code": HZ_UNIT,
        "reasons": [{"code": "missing_material", "message": "缺少继承人亲属关系证明"}],
        "resubmittable": True, "rejected_at": "2025-09-03T15:30:00+08:00",
    }
    ex["registration.booked", "inbound"] = {
        "case_id": bj_case, "unit_code": BJ_UNIT, "service": "transfer", "registrations": ["transfer"],
        "certificates": [_bj_certificate()], "obligees": [_buyer()],
        "booked_at": "2025-09-02T16:45:00+08:00",
    }
    ex["restriction.recorded", "inbound"] = {
        "unit_code": BJ_UNIT, "restriction_type": "seizure", "action": "recorded",
        "restriction_id": "CF-110105-2025-0007", "seizure_order_number": "(2025)京0105执1234号",
        "seizure_kind": "seize", "rank": 1, "holder_name": "北京市朝阳区人民法院",
        "valid_from": "2025-09-03", "valid_until": "2028-09-02", "recorded_at": "2025-09-03T15:00:00+08:00",
    }
    ex["case.ready_to_book", "outbound"] = {
        "case_id": bj_case, "unit_code": BJ_UNIT,
        "tax": {"assessment_id": "HD2025090100001", "certificate_no": "(251)京证01234567", "ticket_type": "电子完税证明"},
        "payments": [{"order_id": order_id, "total_fen": 5_608_000, "paid_at": "2025-09-01T11:02:13+08:00"},
                     {"order_id": "110105-BJ2025-000123-R-1", "total_fen": 5_600_000, "paid_at": "2025-09-01T11:30:40+08:00"}],
        "total_paid_fen": 11_208_000,
        "nontax_receipts": [{"bill_no": "11010525000012345", "receipt_number": "0012345678"}],
        "restriction_flags": [], "ready_at": "2025-09-01T12:00:00+08:00",
    }
    ex["registration.result", "outbound"] = {
        "case_id": "HZ2025-030077", "reference": "NZ-HZ-2025-0456", "unit_code": HZ_UNIT, "service": "transfer",
        "outcome": "booked",
        "certificates": [{"kind": "ownership_certificate", "number": "浙(2025)杭州市不动产权第0345678号",
                          "holder_name": "吴八", "e_certificate_id": "ECERT-330100-2025-0345678"}],
        "decided_at": "2025-09-08T10:00:00+08:00",
    }
    ex["case.overdue", "outbound"] = {
        "subject": "case", "subject_id": bj_case, "case_id": bj_case, "unit_code": BJ_UNIT, "city": "110000",
        "service": "transfer", "stage": "tax_assessment", "limit": {"value": 1, "unit": "working_days"},
        "started_at": "2025-09-01T09:30:05+08:00", "due_at": "2025-09-02T09:30:05+08:00",
        "responsible_kind": "tax", "responsible_partner_id": "bj-tax", "detected_at": "2025-09-02T09:31:00+08:00",
    }
    ex["notarization.completed", "inbound"] = {
        "notarization_id": "NZ-HZ-2025-0456", "certificate_number": "(2025)浙杭西证民字第456号",
        "matter": "inheritance", "notary_office": {"name": "浙江省杭州市西湖公证处", "uscc": "12330100MB0000009F"},
        "notary_name": "陈某", "unit_code": HZ_UNIT, "property_use": "residential", "floor_area_m2": "76.30",
        "parties": [{"role": "obligee", "name": "吴八", "id_type": "resident_id", "id_number": "330106199208080611",
                     "phone": "13300133000", "share": "100%"},
                    {"role": "obligor", "name": "吴某", "id_type": "resident_id", "id_number": "11010519500101999X"}],
        "certificate": _example_doc("doc_N0t4ry0456"),
        "notarized_at": "2025-09-02T10:30:00+08:00",
    }

    # ---- tax ------------------------------------------------------------------------------
    ex["tax.assessment_requested", "outbound"] = {
        "case_id": bj_case, "unit_code": BJ_UNIT, "service": "transfer", "property_use": "residential",
        "floor_area_m2": "89.50", "price_fen": 560_000_000, "contract_number": "BJ-HT-2025-0456",
        "parties": [_buyer(), _seller()], "requested_at": "2025-09-01T09:30:05+08:00",
    }
    ex["tax.assessed", "inbound"] = {
        "case_id": bj_case, "unit_code": BJ_UNIT, "assessment_id": "HD2025090100001", "lines": _tax_lines(),
        "total_fen": 11_200_000, "assessed_at": "2025-09-01T10:05:00+08:00",
    }
    ex["tax.cleared", "inbound"] = {
        "case_id": bj_case, "unit_code": BJ_UNIT, "assessment_id": "HD2025090100001",
        "certificate_no": "(251)京证01234567", "ticket_type": "电子完税证明",
        "lines": [{"tax_ticket_no": "311016250900012345", "amount_fen": 5_600_000},
                  {"tax_ticket_no": "311016250900012346", "amount_fen": 5_600_000}],
        "total_fen": 11_200_000, "cleared_at": "2025-09-01T11:40:00+08:00",
    }
    ex["tax.booking_shared", "outbound"] = {
        "case_id": bj_case, "unit_code": BJ_UNIT, "assessment_id": "HD2025090100001",
        "tax_certificate_no": "(251)京证01234567", "certificate_numbers": ["京(2025)朝阳区不动产权第0012345号"],
        "booked_at": "2025-09-02T16:45:00+08:00",
    }

    # ---- fiscal ---------------------------------------------------------------------------
    ex["nontax.bill_requested", "outbound"] = {
        "request_id": "BJ2025-000123-obligee", "case_id": bj_case, "unit_code": BJ_UNIT, "receiving_unit": "110105001",
        "payer": {"name": "李四", "id_type": "resident_id", "id_number": "110108198805123373", "phone": "13900139000"},
        "lines": _fee_lines(), "total_fen": 8_000, "combined_payment": True,
        "requested_at": "2025-09-01T09:30:05+08:00",
    }
    ex["nontax.bill_issued", "inbound"] = {
        "request_id": "BJ2025-000123-obligee", "case_id": bj_case, "bill_no": "11010525000012345",
        "payment_code": "1101052509000123456", "receiving_unit": "110105001",
        "receiving_unit_name": "北京市朝阳区不动产登记中心", "lines": _fee_lines(), "total_fen": 8_000,
        "issued_at": "2025-09-01T09:31:00+08:00", "expires_at": "2025-09-08T23:59:59+08:00",
        "payment_url": "https://fs.beijing.example.gov.cn/pay/1101052509000123456",
    }
    ex["nontax.receipt_issued", "inbound"] = {
        "case_id": bj_case, "bill_no": "11010525000012345", "payment_code": "1101052509000123456",
        "receipt_code": "11060125", "receipt_number": "0012345678", "check_code": "a1b2c3",
        "total_fen": 8_000,
        "document": _doc("doc_Rcpt000001", "55cc187b8172cb56d3915adb017c547cfabfb48344a8a2d247bd6160dee18fbe",
                         size=38_022),
        "issued_at": "2025-09-01T11:05:00+08:00",
    }

    # ---- payment --------------------------------------------------------------------------
    ex["nontax.receipt_shared", "outbound"] = dict(ex["nontax.receipt_issued", "inbound"])
    ex["payment.order_requested", "outbound"] = {
        "order_id": order_id, "case_id": bj_case, "payer_role": "obligee",
        "payer": {"name": "李四", "id_type": "resident_id", "id_number": "110108198805123373", "phone": "13900139000"},
        "total_fen": 5_608_000, "currency": "CNY",
        "tax_lines": [{"sub_order_id": order_id + "-T1", "tax_item_code": "10119", "amount_fen": 5_600_000,
                       "treasury_code": "1101050000", "budget_subject": "1011901",
                       "collecting_authority": "11101050000", "tax_ticket_no": "311016250900012345"}],
        "nontax_lines": [{"sub_order_id": order_id + "-N1", "fee_item_code": "103040100101", "amount_fen": 8_000,
                          "receiving_unit": "110105001", "payment_code": "1101052509000123456"}],
        "expires_at": "2025-09-02T23:59:59+08:00",
    }
    ex["payment.succeeded", "inbound"] = {
        "order_id": order_id, "platform_order_id": "ZR202509011000001", "total_fen": 5_608_000,
        "paid_at": "2025-09-01T11:02:13+08:00", "channel": "2", "method": "4",
        "lines": [{"sub_order_id": order_id + "-T1", "platform_sub_order_id": "ZR202509011000001-1", "status": "paid",
                   "amount_fen": 5_600_000, "receiving_unit": "1101050000", "fee_item_code": "10119"},
                  {"sub_order_id": order_id + "-N1", "platform_sub_order_id": "ZR202509011000001-2", "status": "paid",
                   "amount_fen": 8_000, "receiving_unit": "110105001", "fee_item_code": "103040100101"}],
    }
    ex["payment.failed", "inbound"] = {
        "order_id": order_id, "platform_order_id": "ZR202509011000001", "reason_code": "expired",
        "reason": "订单已失效", "failed_at": "2025-09-03T00:00:05+08:00",
    }
    ex["payment.refunded", "inbound"] = {
        "order_id": order_id, "refund_id": "RF20250905001", "total_fen": 8_000, "whole": False,
        "lines": [{"sub_order_id": order_id + "-N1", "amount_fen": 8_000}],
        "refunded_at": "2025-09-05T10:00:00+08:00",
    }
    ex["settlement.ready", "inbound"] = {
        "settlement_date": "2025-09-01", "format": "csv",
        "file": _doc("doc_stl20250901", hashlib.sha256(SETTLEMENT_EXAMPLE_FILE).hexdigest(), "text/csv",
                     len(SETTLEMENT_EXAMPLE_FILE)),
        "totals": {"payment_count": 2, "payment_fen": 11_208_000, "refund_count": 0, "refund_fen": 0},
    }

    # ---- bank -----------------------------------------------------------------------------
    ex["mortgage.requested", "inbound"] = {
        "request_id": "CCB-SZ-20250901-0001", "kind": "transfer_with_mortgage", "unit_code": SZ_UNIT,
        "mortgagee": dict(CCB_SZ),
        "package": {
            "package_id": "PKG-SZ-2025-0001", "mode": "staged", "sender_role": "new_mortgagee",
            "transfer": {"contract_number": "SZ-HT-2025-0789", "price_fen": 420_000_000,
                         "parties": [_sz_buyer(), _sz_seller()]},
            "old_mortgage": {"mortgagee": dict(CMB_SZ), "proof_number": "粤(2019)深圳市不动产证明第0123456号",
                             "outstanding_fen": 150_000_000},
            "new_mortgage": {
                "mortgagee": dict(CCB_SZ),
                "mortgagors": [{"role": "obligor", "name": "王五", "id_type": "resident_id",
                                "id_number": "440305198507150013", "phone": "13600136000"}],
                "terms": {"mortgage_type": "general", "secured_amount_fen": 250_000_000, "debt_start": "2025-09-10",
                          "debt_end": "2055-09-09", "rank": 2, "contract_number": "CCB-DY-2025-0001",
                          "loan_contract_number": "CCB-JK-2025-0001"},
            },
            "escrow": {"escrow_reference": "ZJJG-SZ-2025-0001", "bank": dict(CCB_SZ), "amount_fen": 170_000_000},
            "consents": [{"party_role": "obligee", "document": _example_doc("doc_C0nsent001"),
                          "signed_at": "2025-09-01T14:30:00+08:00"}],
        },
        "documents": [{"kind": "mortgage_contract", "title": "抵押合同",
                       "document": _example_doc("doc_C0ntr4ct01")}],
        "requested_at": "2025-09-01T15:00:00+08:00",
    }
    ex["mortgage.registered", "outbound"] = {
        "request_id": "CCB-SZ-20250901-0001", "case_id": "PKG_PKG-SZ-2025-0001", "registry_case_id": "SZ2025-100045",
        "unit_code": SZ_UNIT, "kind": "transfer_with_mortgage", "package_id": "PKG-SZ-2025-0001",
        "proof": {"kind": "registration_proof", "number": "粤(2025)深圳市不动产证明第0456789号",
                  "e_certificate_id": "ECERT-440300-2025-0456789",
                  "e_certificate": _doc("doc_Ecert45678", "e848caf1bb00ee22e35a150f0125f4f2f5a17902feda6748f8f4a2245e3e9168",
                                        "application/ofd", 88_412)},
        "rank": 2, "booked_at": "2025-09-04T10:20:00+08:00",
    }
    ex["preregistration.shared", "outbound"] = {
        "case_id": "GZ2025-020001", "unit_code": GZ_UNIT, "kind": "presale_mortgage",
        "proof": {"kind": "registration_proof", "number": "粤(2025)广州市不动产证明第0098765号"},
        "obligees": [{"role": "obligee", "name": "郑九", "id_type": "resident_id", "id_number": "440106197811204523",
                      "share": "100%"}],
        "mortgagee": dict(ICBC_GZ), "secured_amount_fen": 300_000_000, "contract_number": "GZ-YS-2025-0001",
        "price_fen": 450_000_000, "booked_at": "2025-09-05T09:00:00+08:00",
    }

    # ---- utility --------------------------------------------------------------------------
    utility_ref = {"case_id": bj_case, "unit_code": BJ_UNIT}
    ex["utility.transfer_requested", "outbound"] = {
        "request_id": "UT-110105-BJ2025-000123-water-1", **utility_ref, "utility": "water",
        "address": "北京市朝阳区某街道1号院1号楼1单元101", "account_number": "0101234567",
        "old_holder": {"name": "张三", "id_number_masked": "110105********002X"},
        "new_holder": {"name": "李四", "id_type": "resident_id", "id_number": "110108198805123373",
                       "phone": "13900139000"},
        "certificate_number": "京(2025)朝阳区不动产权第0012345号", "booked_at": "2025-09-02T16:45:00+08:00",
        "attempt": 1,
    }
    ex["utility.transfer_completed", "inbound"] = {
        "request_id": "UT-110105-BJ2025-000123-water-1", **utility_ref, "utility": "water",
        "account_number": "0101234567",
        "completed_at": "2025-09-03T09:15:00+08:00",
    }
    ex["utility.transfer_failed", "inbound"] = {
        "request_id": "UT-110105-BJ2025-000123-electricity-1", **utility_ref, "utility": "electricity",
        "reason_code": "arrears", "reason": "原户主有欠费未结清", "retryable": True,
        "failed_at": "2025-09-03T09:20:00+08:00",
    }

    # ---- court ----------------------------------------------------------------------------
    ex["seizure.ordered", "inbound"] = _seizure()
    ex["seizure.forwarded", "outbound"] = {
        **_seizure(), "court_partner_id": "bj-chaoyang-court", "waiting_list_expected": False,
        "document_links": [_link("doc_R8aT3vYc2n", "2025-09-04T10:00:02+08:00"),
                           _link("doc_R8aT3vYc2p", "2025-09-04T10:00:02+08:00")],
        "received_at": "2025-09-03T10:00:02+08:00"}
    ex["seizure.receipt", "outbound"] = {
        "order_number": "(2025)京0105执1234号", "unit_code": BJ_UNIT, "action": "seize", "status": "recorded",
        "restriction_id": "CF-110105-2025-0007", "rank": 1, "recorded_at": "2025-09-03T15:00:00+08:00",
        "valid_until": "2028-09-02", "case_id": "CF-3F2A9C41D07B65E8A1C4",
        "receipt_at": "2025-09-03T15:00:05+08:00",
    }
    ex["inquiry.requested", "inbound"] = _inquiry()
    ex["inquiry.forwarded", "outbound"] = {**_inquiry(), "requester_kind": "court",
                                           "requester_partner_id": "bj-chaoyang-court",
                                           "requester_name": "北京市朝阳区人民法院",
                                           "requester_uscc": "111101050000000017",
                                           "document_links": [_link("doc_Q1w2E3r4T5", "2025-09-05T14:20:01+08:00")],
                                           "received_at": "2025-09-04T14:20:01+08:00"}
    ex["inquiry.answered", "inbound"] = _answer()
    ex["inquiry.answered", "outbound"] = {**_answer(), "city": "110000"}
    ex["restriction.flagged", "outbound"] = {
        "change": "raised", "unit_code": BJ_UNIT, "case_id": bj_case,
        "restriction": {"restriction_type": "seizure", "restriction_id": "CF-110105-2025-0007",
                        "seizure_order_number": "(2025)京0105执1234号", "seizure_kind": "seize", "rank": 1,
                        "binding": True, "valid_until": "2028-09-02"},
        "blocked": True,
        "active_flags": [{"restriction_type": "seizure", "restriction_id": "CF-110105-2025-0007",
                          "seizure_order_number": "(2025)京0105执1234号"}],
        "flagged_at": "2025-09-03T15:00:06+08:00",
    }

    # ---- five cities ------------------------------------------------------------------------
    ex["relay.collected", "inbound"] = {
        **_relay_base(),
        "documents": [{"kind": "contract", "title": "存量房买卖合同", "document": _example_doc("doc_C0ntr4ct01")},
                      {"kind": "identity_document", "title": "身份证明", "document": _example_doc("doc_1dCard0001")}],
    }
    ex["relay.requested", "outbound"] = {
        **_relay_base(),
        "documents": [
            {"kind": "contract", "title": "存量房买卖合同", "document": _example_doc("doc_C0ntr4ct01"),
             "download_url": "https://hub-documents.example.com/doc_C0ntr4ct01?X-Amz-Expires=900&X-Amz-Signature=abc123",
             "url_expires_at": "2025-09-05T10:15:02+08:00"},
            {"kind": "identity_document", "title": "身份证明", "document": _example_doc("doc_1dCard0001"),
             "download_url": "https://hub-documents.example.com/doc_1dCard0001?X-Amz-Expires=900&X-Amz-Signature=def456",
             "url_expires_at": "2025-09-05T10:15:02+08:00"},
        ],
        "office_partner_id": "sh-office-pudong", "received_at": "2025-09-05T10:00:02+08:00",
    }
    ex["relay.accepted", "inbound"] = {
        "relay_id": "SH-RC-2025-0001", "attempt": 1, "registry_case_id": "SZ2025-200301",
        "expected_completion": "2025-09-12", "accepted_at": "2025-09-05T14:00:00+08:00",
    }
    ex["relay.rejected", "inbound"] = {
        "relay_id": "SH-RC-2025-0001", "attempt": 1,
        "reasons": [{"code": "scan_unreadable", "message": "买卖合同扫描件第3页不清晰"}],
        "resubmittable": True, "rejected_at": "2025-09-05T14:00:00+08:00",
    }
    ex["relay.originals_received", "inbound"] = {
        "relay_id": "SH-RC-2025-0001", "registry_case_id": "SZ2025-200301", "tracking_number": "1180123456789",
        "complete": True, "missing": [], "received_at": "2025-09-08T11:00:00+08:00",
    }
    ex["relay.completed", "inbound"] = {
        "relay_id": "SH-RC-2025-0001", "registry_case_id": "SZ2025-200301",
        "certificates": [{"kind": "ownership_certificate", "number": "粤(2025)深圳市不动产权第0567890号",
                          "holder_name": "周七", "e_certificate_id": "ECERT-440300-2025-0567890"}],
        "return_shipment": {"courier": "EMS", "tracking_number": "1180987654321",
                            "sent_at": "2025-09-10T16:00:00+08:00"},
        "completed_at": "2025-09-10T15:00:00+08:00",
    }
    ex["relay.status", "outbound"] = {
        "relay_id": "SH-RC-2025-0001", "attempt": 1, "status": "accepted", "registry_city": "440300",
        "registry_case_id": "SZ2025-200301", "status_at": "2025-09-05T14:00:01+08:00",
    }
    ex["assist.requested", "inbound"] = _assist()
    ex["assist.requested", "outbound"] = {**_assist(), "office_partner_id": "gz-office-tianhe",
                                          "received_at": "2025-09-06T10:10:01+08:00"}
    ex["assist.session_opened", "inbound"] = _session()
    ex["assist.session_opened", "outbound"] = {**_session(), "registry_city": "330100"}
    return ex
