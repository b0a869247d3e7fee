"""Registry events: applications, bookings (登簿), restrictions, results, supervision (flows 1, 4, 5, 7)."""
from __future__ import annotations

from chalicelib.models.common import (Annotated, CaseId, CertificateRef, CityCode, Code, Day, Decimal2,
                                      DocumentRef, Fen, Field, HubModel, Institution, Literal, MortgageTerms, Name,
                                      Number, Optional, Party, PartnerKind, PayerMode, PropertyUse, Reason, Ref,
                                      RegistrationStep, Scan, Service, SnakeCode, StrictBool, StrictInt, Text,
                                      Timestamp, UnitCode, Url, Uscc, UtilityType, check_total, check_unique,
                                      model_validator, rule_error)

RestrictionType = Literal["seizure", "mortgage", "preregistration", "objection", "residence_right", "easement"]
SeizureKind = Literal["seize", "waiting_list", "pre_seizure", "waiting_list_pre_seizure"]


def _roles_present(parties: list[Party], field: str = "parties") -> None:
    roles = {p.role for p in parties}
    if roles != {"obligee", "obligor"}:
        raise rule_error("parties_roles", "a transfer needs at least one obligee and one obligor", field)


class UtilityAccount(HubModel):
    """A utility account of the unit, as the applicants gave it at the window (水电气过户)."""

    utility: UtilityType
    account_number: Code


class ApplicationSubmitted(HubModel):
    """registry → hub: an application accepted at the one window (一窗受理); starts the parallel flow.

    `location` (坐落) and `utility_accounts` are what the consented utilities get after booking
    (utility.transfer_requested): an account is given only for a consented utility.
    """

    case_id: CaseId
    unit_code: UnitCode
    service: Service
    property_use: PropertyUse
    floor_area_m2: Decimal2 = Field(description="building area in m², decimal string")
    price_fen: Fen
    contract_number: Optional[Number] = None
    parties: Annotated[list[Party], Field(min_length=1, max_length=50)]
    payer_mode: PayerMode
    utilities_consented: Annotated[list[UtilityType], Field(default_factory=list, max_length=6)]
    location: Optional[Text] = Field(None, description="坐落, the unit's address as registered")
    utility_accounts: Annotated[list[UtilityAccount], Field(default_factory=list, max_length=6)]
    land_revenue_fen: Optional[Fen] = Field(None, description="土地收益/出让金 for allocated land (non-tax)")
    extra_certificates: Annotated[StrictInt, Field(ge=0, le=100)] = 0
    registration_fee_fen: Optional[Fen] = Field(None, description="the fee as the registry states it, if it does")
    small_business_exempt: StrictBool = False
    half_rate: StrictBool = Field(False, description="half fee: correction, objection, change of the holder's name "
                                                     "or ID, split or merge by the same holder")
    submitted_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "ApplicationSubmitted":
        check_unique(self.utilities_consented, "utilities_consented", "duplicate_value")
        check_unique((a.utility for a in self.utility_accounts), "utility_accounts", "duplicate_value")
        if any(a.utility not in self.utilities_consented for a in self.utility_accounts):
            raise rule_error("utility_not_consented", "an account is given only for a consented utility",
                             "utility_accounts")
        if self.service == "transfer":
            _roles_present(self.parties)
        return self


class NotarizationRef(HubModel):
    certificate_number: Number = Field(description="公证书编号")
    matter: Literal["inheritance", "gift"]
    document: DocumentRef


class ApplicationMortgage(HubModel):
    mortgagee: Institution
    terms: Optional[MortgageTerms] = None
    existing_proof_number: Optional[Number] = Field(None, description="不动产登记证明号 of the existing mortgage")


class ApplicationPackage(HubModel):
    mode: Literal["combined", "staged", "same_bank_change"]
    package_id: Ref
    escrow_reference: Optional[Ref] = None


class LinkedScan(Scan):
    """A scan the hub hands to a registry, with a short-lived download link when the hub holds the bytes."""

    download_url: Optional[Url] = None
    url_expires_at: Optional[Timestamp] = None

    @model_validator(mode="after")
    def _link(self) -> "LinkedScan":
        if (self.download_url is None) != (self.url_expires_at is None):
            raise rule_error("link_incomplete", "download_url and url_expires_at go together", "url_expires_at")
        return self


class ApplicationRequested(HubModel):
    """hub → registry: an application filed on behalf of a notary or a bank (incl. 带押过户 packages).

    `registrations` lists the registrations combined under one application, in the order they are
    to be done (e.g. transfer, mortgage_release, mortgage_first for the combined package).
    """

    request_id: Ref
    source_kind: Literal["notary", "bank"]
    source_reference: Ref = Field(description="notarization_id or the bank's request_id")
    unit_code: UnitCode
    service: Service
    registrations: Annotated[list[RegistrationStep], Field(min_length=1, max_length=5)]
    parties: Annotated[list[Party], Field(min_length=1, max_length=50)]
    property_use: Optional[PropertyUse] = None
    price_fen: Optional[Fen] = None
    notarization: Optional[NotarizationRef] = None
    mortgages: Annotated[list[ApplicationMortgage], Field(default_factory=list, max_length=3)]
    package: Optional[ApplicationPackage] = None
    documents: Annotated[list[LinkedScan], Field(default_factory=list, max_length=100)]
    requested_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "ApplicationRequested":
        check_unique(self.registrations, "registrations", "duplicate_value")
        if self.source_kind == "notary" and self.notarization is None:
            raise rule_error("notarization_required", "an application from a notary carries its notarization",
                             "notarization")
        return self


class ApplicationRejected(HubModel):
    """registry → hub: the registry refused an application (one the hub filed, or a submitted case)."""

    request_id: Optional[Ref] = Field(None, description="application.requested request_id, when the hub filed it")
    case_id: Optional[CaseId] = None
    unit_code: UnitCode
    reasons: Annotated[list[Reason], Field(min_length=1, max_length=20)]
    resubmittable: StrictBool = False
    rejected_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "ApplicationRejected":
        if self.request_id is None and self.case_id is None:
            raise rule_error("reference_required", "request_id or case_id is required", "request_id")
        return self


class RegistrationBooked(HubModel):
    """registry → hub: the case was entered in the register (登簿), with the certificates issued."""

    case_id: CaseId
    request_id: Optional[Ref] = Field(None, description="application.requested request_id, when the hub filed it")
    unit_code: UnitCode
    service: Service
    registrations: Annotated[list[RegistrationStep], Field(default_factory=list, max_length=5)]
    certificates: Annotated[list[CertificateRef], Field(min_length=1, max_length=50)]
    obligees: Annotated[list[Party], Field(default_factory=list, max_length=50)]
    preregistration: Optional["PreregistrationFacts"] = Field(
        None, description="service preregistration only (and required there): what the buyer's bank and tax get")
    booked_at: Timestamp

    @model_validator(mode="after")
    def _preregistration(self) -> "RegistrationBooked":
        if self.service == "preregistration":
            if self.preregistration is None:
                raise rule_error("preregistration_required", "a pre-registration booking gives its facts",
                                 "preregistration")
            if not self.obligees:
                raise rule_error("obligees_required", "a pre-registration booking names its obligees", "obligees")
        elif self.preregistration is not None:
            raise rule_error("preregistration_not_allowed", "only service preregistration carries these facts",
                             "preregistration")
        return self


class PreregistrationFacts(HubModel):
    """A booked pre-registration (预告登记): its kind and what the buyer's bank and tax need of it
    (Taizhou: the proof, with contract number and price, is the basis of the loan approval)."""

    kind: Literal["presale_purchase", "other_purchase", "presale_mortgage", "other_mortgage"]
    buyer_bank: Optional[Institution] = Field(None, description="the mortgagee of a mortgage pre-registration, or "
                                                                "the bank the buyer applies to for the loan")
    secured_amount_fen: Optional[Fen] = None
    contract_number: Optional[Number] = None
    price_fen: Optional[Fen] = None


class RestrictionRecorded(HubModel):
    """registry → hub: a restriction on a unit was recorded or lifted (查封, 抵押, 预告, 异议…)."""

    unit_code: UnitCode
    restriction_type: RestrictionType
    action: Literal["recorded", "released", "renewed"]
    restriction_id: Ref = Field(description="the registry's record number")
    case_id: Optional[CaseId] = None
    seizure_order_number: Optional[Number] = Field(None, description="court order (文书号) this records, if any")
    seizure_kind: Optional[SeizureKind] = None
    rank: Optional[Annotated[StrictInt, Field(ge=1, le=999)]] = Field(None, description="顺位 / 轮候 position")
    holder_name: Optional[Name] = Field(None, description="mortgagee, court or objector")
    holder_uscc: Optional[Uscc] = Field(None, description="the holder's unified social credit code, when it is an "
                                                          "institution (the mortgagee of a mortgage)")
    proof_number: Optional[Number] = Field(None, description="不动产登记证明号")
    valid_from: Optional[Day] = None
    valid_until: Optional[Day] = None
    recorded_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "RestrictionRecorded":
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise rule_error("date_order", "valid_until must not be before valid_from", "valid_until")
        return self


class TaxClearance(HubModel):
    assessment_id: Ref
    certificate_no: Number
    ticket_type: Name


class PaidOrder(HubModel):
    order_id: Ref
    total_fen: Fen
    paid_at: Timestamp


class ReceiptRef(HubModel):
    bill_no: Code
    receipt_number: Code


class RestrictionFlag(HubModel):
    restriction_type: RestrictionType
    restriction_id: Ref
    seizure_order_number: Optional[Number] = None


class CaseReadyToBook(HubModel):
    """hub → registry: taxes cleared (two-way check), fees paid and split; the case may be booked.

    `restriction_flags` lists restrictions recorded on the unit since submission (e.g. a seizure):
    the registry must look before booking.
    """

    case_id: CaseId
    unit_code: UnitCode
    tax: Optional[TaxClearance] = None
    payments: Annotated[list[PaidOrder], Field(default_factory=list, max_length=10)]
    total_paid_fen: Fen
    nontax_receipts: Annotated[list[ReceiptRef], Field(default_factory=list, max_length=10)]
    restriction_flags: Annotated[list[RestrictionFlag], Field(default_factory=list, max_length=20)]
    ready_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "CaseReadyToBook":
        check_total(self.total_paid_fen, (p.total_fen for p in self.payments), "total_paid_fen",
                    what="the payments")
        return self


class RegistrationResult(HubModel):
    """hub → notary, bank, city_office: what became of the application they started."""

    case_id: Optional[CaseId] = None
    reference: Ref = Field(description="the receiver's own reference: notarization_id, request_id or relay_id")
    unit_code: UnitCode
    service: Service
    outcome: Literal["booked", "rejected"]
    certificates: Annotated[list[CertificateRef], Field(default_factory=list, max_length=50)]
    reasons: Annotated[list[Reason], Field(default_factory=list, max_length=20)]
    decided_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "RegistrationResult":
        if self.outcome == "booked" and not self.certificates:
            raise rule_error("certificates_required", "a booked result lists its certificates", "certificates")
        if self.outcome == "rejected" and not self.reasons:
            raise rule_error("reasons_required", "a rejected result gives its reasons", "reasons")
        return self


class StageLimit(HubModel):
    value: Annotated[StrictInt, Field(ge=1, le=100_000)]
    unit: Literal["minutes", "hours", "calendar_days", "working_days"]


class CaseOverdue(HubModel):
    """hub → the partner responsible for a late stage (效能监管): the stage, its limit and due time."""

    subject: Literal["case", "relay", "inquiry", "package"] = "case"
    subject_id: Ref = Field(description="case_id, relay_id, inquiry_id or package_id")
    case_id: Optional[CaseId] = None
    unit_code: Optional[UnitCode] = None
    city: CityCode
    service: Optional[Service] = None
    stage: SnakeCode = Field(description="e.g. tax_assessment, payment, booking, relay_acceptance")
    limit: StageLimit
    started_at: Timestamp
    due_at: Timestamp
    responsible_kind: PartnerKind
    responsible_partner_id: Optional[Ref] = None
    detected_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "CaseOverdue":
        if self.due_at < self.started_at:
            raise rule_error("date_order", "due_at must not be before started_at", "due_at")
        return self


class NotarizationCompleted(HubModel):
    """notary → hub: a notarized inheritance or gift, with the e-notarial certificate (hash-checked)."""

    notarization_id: Ref
    certificate_number: Number = Field(description="公证书编号")
    matter: Literal["inheritance", "gift"]
    notary_office: Institution
    notary_name: Optional[Name] = None
    unit_code: UnitCode
    property_use: PropertyUse
    floor_area_m2: Optional[Decimal2] = None
    parties: Annotated[list[Party], Field(min_length=2, max_length=50,
                                          description="obligees: heirs or donees; obligors: decedent or donor")]
    certificate: DocumentRef = Field(description="the electronic notarial certificate")
    documents: Annotated[list[Scan], Field(default_factory=list, max_length=100)]
    notarized_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "NotarizationCompleted":
        _roles_present(self.parties)
        return self


__all__ = [
    "ApplicationSubmitted", "ApplicationRequested", "ApplicationRejected", "RegistrationBooked",
    "RestrictionRecorded", "CaseReadyToBook", "RegistrationResult", "CaseOverdue", "NotarizationCompleted",
    "RestrictionType", "SeizureKind",
]
