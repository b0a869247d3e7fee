"""Courts and inquiries (flow 5): seizure orders, receipts, registration-fact inquiries.

Seizure vocabulary (domain_cn.md §5.1, CFLX): 查封 seize, 轮候查封 waiting_list, 预查封 pre_seizure,
轮候预查封 waiting_list_pre_seizure; 续封 is the action `renew`, 解封 the action `release`.
"""
from __future__ import annotations

from chalicelib.models.common import (Annotated, CaseId, CityCode, Code, Day, Decimal2, DocumentRef, Fen, Field,
                                      HubModel, IdType, Literal, Name, Number, Optional, Person, PropertyUse, Ref,
                                      Share, StrictBool, StrictInt, Text, Timestamp, UnitCode, Url, Uscc,
                                      check_id_number, field_validator, model_validator, rule_error)
from chalicelib.models.registry_events import RestrictionFlag, RestrictionType, SeizureKind


class Court(HubModel):
    name: Name
    court_code: Optional[Code] = Field(None, description="法院代码")
    uscc: Optional[Uscc] = None


class Officer(HubModel):
    """A court officer serving the order (送达人) or asking (承办人)."""

    name: Name
    badge_number: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{1,32}$", description="执行公务证号")]
    phone: Optional[Annotated[str, Field(pattern=r"^[0-9-]{7,20}$")]] = None


class SeizureOrdered(HubModel):
    """court → hub: an order to seize, release or renew the seizure of a unit (查封/解封/续封)."""

    order_number: Number = Field(description="执行裁定书文号, e.g. (2025)京0105执1234号")
    action: Literal["seize", "release", "renew"]
    seizure_kind: Optional[SeizureKind] = Field(None, description="required for seize")
    court: Court
    unit_code: UnitCode
    subject: Optional[Person] = Field(None, description="被执行人, the person whose right is seized")
    legal_document: DocumentRef = Field(description="裁定书")
    assistance_notice: Optional[DocumentRef] = Field(None, description="协助执行通知书")
    original_order_number: Optional[Number] = Field(None, description="the seizure released or renewed")
    valid_from: Optional[Day] = None
    valid_until: Optional[Day] = None
    amount_fen: Optional[Fen] = Field(None, description="执行标的")
    officers: Annotated[list[Officer], Field(min_length=1, max_length=5)]
    ordered_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "SeizureOrdered":
        if self.action == "seize" and self.seizure_kind is None:
            raise rule_error("seizure_kind_required", "a seize order names its seizure kind", "seizure_kind")
        if self.action in ("release", "renew") and self.original_order_number is None:
            raise rule_error("original_order_required", "a release or renewal names the original order",
                             "original_order_number")
        if self.action in ("seize", "renew"):
            if self.valid_from is None or self.valid_until is None:
                raise rule_error("validity_required", "a seize or renew order gives valid_from and valid_until",
                                 "valid_until")
            if self.valid_until <= self.valid_from:
                raise rule_error("date_order", "valid_until must be after valid_from", "valid_until")
        return self


class DocumentLink(HubModel):
    """A short-lived download link the hub made for a verified document an event refers to."""

    document_id: Ref
    download_url: Url
    url_expires_at: Timestamp


class SeizureForwarded(SeizureOrdered):
    """hub → registry of the unit's city: a court's order, with who sent it and when it arrived.

    `waiting_list_expected`: the hub's restriction index holds another seizure of the unit, so this
    seize order is expected to queue behind it (轮候). `document_links`: the ruling and the assistance
    notice, verified uploads of the court, each with a short-lived download link.
    """

    court_partner_id: Ref
    waiting_list_expected: Optional[StrictBool] = None
    document_links: Annotated[list[DocumentLink], Field(default_factory=list, max_length=5)]
    received_at: Timestamp


class SeizureReceipt(HubModel):
    """hub → court: what the registry did with the order (回执)."""

    order_number: Number
    unit_code: UnitCode
    action: Literal["seize", "release", "renew"]
    status: Literal["forwarded", "recorded", "waiting_list", "released", "renewed", "refused"]
    restriction_id: Optional[Ref] = Field(None, description="the registry's record number")
    rank: Optional[Annotated[StrictInt, Field(ge=1, le=999)]] = Field(None, description="轮候 position")
    recorded_at: Optional[Timestamp] = None
    valid_until: Optional[Day] = None
    reason: Optional[Text] = Field(None, description="why it was refused")
    case_id: Optional[CaseId] = Field(None, description="the hub's number of this seizure: GET /v1/cases/{case_id}")
    receipt_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "SeizureReceipt":
        if self.status == "refused" and self.reason is None:
            raise rule_error("reason_required", "a refusal gives its reason", "reason")
        if self.status in ("recorded", "waiting_list", "released", "renewed") and self.recorded_at is None:
            raise rule_error("recorded_at_required", "a recorded status gives recorded_at", "recorded_at")
        return self


InquiryScope = Literal["ownership", "mortgage", "seizure", "preregistration", "objection", "all"]


class LegalBasis(HubModel):
    """Why the asker may know: an investigation order number, an assistance notice, a consent…"""

    kind: Literal["investigation_order", "assistance_notice", "court_ruling", "owner_consent", "loan_application"]
    number: Number
    document: Optional[DocumentRef] = None


class InquiryRequested(HubModel):
    """court or bank → hub: ask for a unit's registration facts, or the units of a person."""

    inquiry_id: Ref
    unit_code: Optional[UnitCode] = None
    subject: Optional[Person] = Field(None, description="whose units (by ID number)")
    scope: Annotated[list[InquiryScope], Field(min_length=1, max_length=6)] = ["all"]
    legal_basis: LegalBasis
    officer: Optional[Officer] = None
    requested_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "InquiryRequested":
        if self.unit_code is None and self.subject is None:
            raise rule_error("inquiry_target_required", "an inquiry names a unit_code or a subject", "unit_code")
        return self


class InquiryForwarded(InquiryRequested):
    """hub → registry: an inquiry, with who asks."""

    requester_kind: Literal["court", "bank"]
    requester_partner_id: Ref
    requester_name: Optional[Name] = None
    requester_uscc: Optional[Uscc] = None
    document_links: Annotated[list[DocumentLink], Field(
        default_factory=list, max_length=1, description="the legal basis document, with a short-lived download link")]
    received_at: Timestamp


class Owner(HubModel):
    name: Name
    id_type: IdType
    id_number: Annotated[str, Field(min_length=1, max_length=40)]
    share: Optional[Share] = None

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, value: str, info) -> str:
        return check_id_number(info.data.get("id_type"), value)


class RecordedRestriction(HubModel):
    restriction_type: RestrictionType
    restriction_id: Ref
    holder_name: Optional[Name] = None
    amount_fen: Optional[Fen] = None
    recorded_at: Optional[Timestamp] = None
    valid_until: Optional[Day] = None


class UnitRecord(HubModel):
    """The registered facts of one unit."""

    unit_code: UnitCode
    location: Optional[Text] = Field(None, description="坐落")
    property_use: Optional[PropertyUse] = None
    floor_area_m2: Optional[Decimal2] = None
    certificate_number: Optional[Number] = None
    owners: Annotated[list[Owner], Field(default_factory=list, max_length=50)]
    restrictions: Annotated[list[RecordedRestriction], Field(default_factory=list, max_length=100)]


class InquiryAnswered(HubModel):
    """registry → hub: the answer to an inquiry (found, not found, refused)."""

    inquiry_id: Ref
    outcome: Literal["found", "not_found", "refused"]
    records: Annotated[list[UnitRecord], Field(default_factory=list, max_length=200)]
    refusal_reason: Optional[Text] = None
    document: Optional[DocumentRef] = Field(None, description="查询结果证明, signed by the registry")
    answered_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "InquiryAnswered":
        if self.outcome == "found" and not self.records:
            raise rule_error("records_required", "a found answer lists its records", "records")
        if self.outcome != "found" and self.records:
            raise rule_error("records_not_allowed", "only a found answer lists records", "records")
        if self.outcome == "refused" and self.refusal_reason is None:
            raise rule_error("reason_required", "a refusal gives its reason", "refusal_reason")
        return self


class InquiryAnsweredOut(InquiryAnswered):
    """hub → court or bank: the registry's answer, with the city whose registry answered."""

    city: CityCode
    document_links: Annotated[list[DocumentLink], Field(
        default_factory=list, max_length=1, description="the registry's result document, with a short-lived link")]


class SeizureFlag(RestrictionFlag):
    """A seizure on the hub's restriction index, as a registry is told of it."""

    seizure_kind: Optional[SeizureKind] = None
    rank: Optional[Annotated[StrictInt, Field(ge=1, le=999)]] = Field(None, description="轮候 position")
    binding: StrictBool = Field(description="recorded as 查封/预查封 (binding); false for a waiting-list seizure")
    valid_until: Optional[Day] = None


class RestrictionFlagged(HubModel):
    """hub → registry: a seizure is recorded on a unit with an open application (raised), or the flag is
    lifted (released, expired): look before booking.

    The application is the registry's own case (`case_id`, one window) or one the hub filed for a bank or
    notary (`request_id`). `blocked` says whether a binding seizure is still on the unit after this
    change; `active_flags` lists every seizure still recorded on it. No personal data.
    """

    change: Literal["raised", "lifted"]
    unit_code: UnitCode
    case_id: Optional[CaseId] = None
    request_id: Optional[Ref] = None
    restriction: SeizureFlag
    lift_reason: Optional[Literal["released", "expired"]] = None
    blocked: StrictBool
    active_flags: Annotated[list[RestrictionFlag], Field(default_factory=list, max_length=20)]
    flagged_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "RestrictionFlagged":
        if self.case_id is None and self.request_id is None:
            raise rule_error("reference_required", "case_id or request_id is required", "case_id")
        if (self.change == "lifted") != (self.lift_reason is not None):
            raise rule_error("lift_reason", "a lifted flag gives its lift_reason, a raised one none", "lift_reason")
        return self


__all__ = ["SeizureOrdered", "SeizureForwarded", "SeizureReceipt", "InquiryRequested", "InquiryForwarded",
           "InquiryAnswered", "InquiryAnsweredOut", "Court", "Officer", "LegalBasis", "UnitRecord", "DocumentLink",
           "SeizureFlag", "RestrictionFlagged"]
