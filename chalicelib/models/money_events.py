"""Tax, non-tax, payment and settlement events (DOMAIN.md "Money", flow 1; domain_cn.md §3-§4).

The hub never computes a tax: it carries the tax bureau's assessment lines, each naming its payer,
tax item, collecting authority, treasury and budget subject. Sums that must hold are checked at the
door (`total_mismatch`). A payment result that does not match its order is *not* refused here: the
ledger holds it for review (DOMAIN.md), so `payment.succeeded` has no sum rule.
"""
from __future__ import annotations

from chalicelib.models.common import (Annotated, CaseId, Code, Count, Day, DocumentRef, Fen, Field, HubModel, Literal,
                                      Name, Number, Optional, Party, Payer, PropertyUse, Ref, Decimal2, Rate, Service,
                                      StrictBool, StrictInt, Text, Timestamp, UnitCode, Url, check_total,
                                      check_unique, model_validator, rule_error)

TaxItemCode = Annotated[str, Field(pattern=r"^[0-9]{5}$", description="征收项目代码, e.g. 10119 deed tax")]


# --------------------------------------------------------------------------------------------
# Tax bureau

class TaxAssessmentRequested(HubModel):
    """hub → tax: assess the taxes of a registered transaction (核税)."""

    case_id: CaseId
    unit_code: UnitCode
    service: Service
    property_use: PropertyUse
    floor_area_m2: Decimal2
    price_fen: Fen
    contract_number: Optional[Number] = None
    parties: Annotated[list[Party], Field(min_length=1, max_length=50)]
    requested_at: Timestamp


class TaxLine(HubModel):
    line_id: Ref
    tax_item_code: TaxItemCode
    tax_name: Optional[Name] = None
    payer_role: Literal["obligee", "obligor"]
    taxable_base_fen: Fen
    rate: Rate = Field(description='decimal string, e.g. "0.01"')
    amount_fen: Fen
    tax_ticket_no: Code = Field(description="电子税票号码 (dzsphm)")
    treasury_code: Code = Field(description="收款国库代码 (skgkDm)")
    budget_subject: Code = Field(description="预算科目代码 (yskmDm)")
    collecting_authority: Code = Field(description="征收机关代码 (zsswjgDm)")
    due_date: Optional[Day] = None


class TaxAssessed(HubModel):
    """tax → hub: the assessment (核定), one line per tax and payer; total_fen = sum of lines."""

    case_id: CaseId
    unit_code: UnitCode
    assessment_id: Ref
    lines: Annotated[list[TaxLine], Field(min_length=1, max_length=100)]
    total_fen: Fen
    assessed_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "TaxAssessed":
        check_unique((line.line_id for line in self.lines), "lines.line_id", "duplicate_line")
        check_total(self.total_fen, (line.amount_fen for line in self.lines))
        return self


class ClearedLine(HubModel):
    tax_ticket_no: Code
    amount_fen: Fen


class TaxCleared(HubModel):
    """tax → hub: taxes paid into the treasury (完税), with the certificate number and ticket type."""

    case_id: CaseId
    unit_code: UnitCode
    assessment_id: Ref
    certificate_no: Number = Field(description="完税证明号 (wszmh)")
    ticket_type: Name = Field(description="票证种类 (pzzl)")
    lines: Annotated[list[ClearedLine], Field(min_length=1, max_length=100)]
    total_fen: Fen
    cleared_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "TaxCleared":
        check_total(self.total_fen, (line.amount_fen for line in self.lines))
        return self


class TaxBookingShared(HubModel):
    """hub → tax: the case was booked (登簿); closes the tax loop for the assessment."""

    case_id: CaseId
    unit_code: UnitCode
    assessment_id: Optional[Ref] = None
    tax_certificate_no: Optional[Number] = Field(None, description="完税证明号 the registry checked")
    certificate_numbers: Annotated[list[Number], Field(min_length=1, max_length=50)]
    obligees: Annotated[list[Party], Field(default_factory=list, max_length=50)]
    booked_at: Timestamp


# --------------------------------------------------------------------------------------------
# Fiscal non-tax system (非税)

class FeeLine(HubModel):
    """A non-tax line, e.g. registration fee (登记费) or an extra certificate (工本费)."""

    line_id: Ref
    fee_item_code: Code = Field(description="收费项目编码 (执收项目)")
    fee_item_name: Optional[Name] = None
    quantity: Annotated[StrictInt, Field(ge=1, le=10_000)] = 1
    unit_price_fen: Fen
    amount_fen: Fen

    @model_validator(mode="after")
    def _amount(self) -> "FeeLine":
        if self.amount_fen != self.unit_price_fen * self.quantity:
            raise rule_error("line_amount_mismatch", "amount_fen must equal unit_price_fen times quantity",
                             "amount_fen")
        return self


def _fee_rules(model) -> None:
    check_unique((line.line_id for line in model.lines), "lines.line_id", "duplicate_line")
    check_total(model.total_fen, (line.amount_fen for line in model.lines))


class NontaxBillRequested(HubModel):
    """hub → fiscal: open the non-tax bill (电子非税收入一般缴款书) for a case's fees."""

    request_id: Ref
    case_id: CaseId
    unit_code: UnitCode
    receiving_unit: Optional[Code] = Field(None, description="执收单位编码 (the registration agency)")
    payer: Payer
    lines: Annotated[list[FeeLine], Field(min_length=1, max_length=50)]
    total_fen: Fen
    combined_payment: StrictBool = Field(True, description="税费同缴: paid with the taxes in one order")
    requested_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "NontaxBillRequested":
        _fee_rules(self)
        return self


class NontaxBillIssued(HubModel):
    """fiscal → hub: the bill, its payment code (缴款码) and receiving unit; total_fen = sum of lines."""

    request_id: Optional[Ref] = None
    case_id: CaseId
    bill_no: Code = Field(description="缴费书编码")
    payment_code: Code = Field(description="缴款码")
    receiving_unit: Code = Field(description="执收单位编码")
    receiving_unit_name: Optional[Name] = None
    lines: Annotated[list[FeeLine], Field(min_length=1, max_length=50)]
    total_fen: Fen
    issued_at: Timestamp
    expires_at: Optional[Timestamp] = None
    payment_url: Optional[Url] = Field(None, description="QR code / payment page of the bill")

    @model_validator(mode="after")
    def _rules(self) -> "NontaxBillIssued":
        _fee_rules(self)
        if self.expires_at is not None and self.expires_at <= self.issued_at:
            raise rule_error("date_order", "expires_at must be after issued_at", "expires_at")
        return self


class NontaxReceiptIssued(HubModel):
    """fiscal → hub: the electronic non-tax receipt (电子票据) once the bill is paid."""

    case_id: CaseId
    bill_no: Code
    payment_code: Code
    receipt_code: Optional[Code] = Field(None, description="票据代码")
    receipt_number: Code = Field(description="票据号码")
    check_code: Optional[Code] = Field(None, description="校验码")
    total_fen: Fen
    document: Optional[DocumentRef] = None
    issued_at: Timestamp


# --------------------------------------------------------------------------------------------
# Payment platform (税费同缴、合一支付)

class OrderTaxLine(HubModel):
    sub_order_id: Ref
    tax_item_code: TaxItemCode
    amount_fen: Fen
    treasury_code: Code
    budget_subject: Code
    collecting_authority: Code
    tax_ticket_no: Code


class OrderNontaxLine(HubModel):
    sub_order_id: Ref
    fee_item_code: Code
    amount_fen: Fen
    receiving_unit: Code
    payment_code: Code


class PaymentOrderRequested(HubModel):
    """hub → payment: one order with a tax group and a non-tax group; total = sum of every line."""

    order_id: Ref
    case_id: CaseId
    payer_role: Literal["obligee", "obligor", "all"]
    payer: Payer
    total_fen: Fen
    currency: Literal["CNY"] = "CNY"
    tax_lines: Annotated[list[OrderTaxLine], Field(default_factory=list, max_length=100)]
    nontax_lines: Annotated[list[OrderNontaxLine], Field(default_factory=list, max_length=100)]
    expires_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "PaymentOrderRequested":
        if not self.tax_lines and not self.nontax_lines:
            raise rule_error("empty_order", "an order needs at least one tax or non-tax line", "tax_lines")
        check_unique([x.sub_order_id for x in self.tax_lines] + [x.sub_order_id for x in self.nontax_lines],
                     "sub_order_id", "duplicate_sub_order")
        check_total(self.total_fen, [x.amount_fen for x in self.tax_lines] + [x.amount_fen for x in self.nontax_lines],
                    what="the tax and non-tax line amounts")
        return self


class PaidLine(HubModel):
    sub_order_id: Ref
    platform_sub_order_id: Optional[Ref] = None
    status: Literal["paid", "failed"]
    amount_fen: Fen
    receiving_unit: Optional[Code] = None
    fee_item_code: Optional[Code] = None


class PaymentSucceeded(HubModel):
    """payment → hub: the order was paid; per sub-order status. Mismatches are held for review."""

    order_id: Ref
    platform_order_id: Ref
    total_fen: Fen
    paid_at: Timestamp
    channel: Optional[Code] = None
    method: Optional[Code] = None
    lines: Annotated[list[PaidLine], Field(min_length=1, max_length=200)]

    @model_validator(mode="after")
    def _rules(self) -> "PaymentSucceeded":
        check_unique((x.sub_order_id for x in self.lines), "lines.sub_order_id", "duplicate_sub_order")
        return self


class PaymentFailed(HubModel):
    """payment → hub: the order could not be paid (expired, cancelled, declined)."""

    order_id: Ref
    platform_order_id: Optional[Ref] = None
    reason_code: Code
    reason: Optional[Text] = None
    failed_at: Timestamp


class RefundLine(HubModel):
    sub_order_id: Ref
    amount_fen: Fen


class PaymentRefunded(HubModel):
    """payment → hub: a whole or partial refund, per sub-order; total_fen = sum of lines."""

    order_id: Ref
    refund_id: Ref
    total_fen: Fen
    whole: StrictBool
    lines: Annotated[list[RefundLine], Field(min_length=1, max_length=200)]
    refunded_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "PaymentRefunded":
        check_unique((x.sub_order_id for x in self.lines), "lines.sub_order_id", "duplicate_sub_order")
        check_total(self.total_fen, (x.amount_fen for x in self.lines))
        return self


class SettlementTotals(HubModel):
    payment_count: Count
    payment_fen: Fen
    refund_count: Count
    refund_fen: Fen


class SettlementReady(HubModel):
    """payment → hub: the day's settlement (对账) file is uploaded; header totals for a first check."""

    settlement_date: Day
    format: Literal["bank_govpay", "csv"]
    file: DocumentRef
    totals: SettlementTotals
