"""Five cities (flow 6): "remote collect, local handle" relays and "out-of-town assistance".

Remote collect: the office of city A (`city_office`) verifies identity and intention (evidence
references), uploads the scans (documents, never inline), mails the originals and sends
`relay.collected`; the hub sends `relay.requested` to the registry of the city owning the unit (B),
with short-lived links to the scans and their SHA-256; B answers `relay.accepted` / `relay.rejected`
/ `relay.originals_received` / `relay.completed`; each answer reaches A as `relay.status`.

Assistance: A sends `assist.requested`; the hub forwards it to B's registry under the same type
name (`assist.requested`, outbound); B answers `assist.session_opened` with the guided session's
link; the hub hands it back to A under the same type name (`assist.session_opened`, outbound).
A relay or assistance request for a unit in the office's own city is refused (`relay_to_own_city`).
"""
from __future__ import annotations

from chalicelib.identifiers import city_of
from chalicelib.models.common import (Annotated, CaseId, CertificateRef, CityCode, Courier, Day, DocumentRef, Field,
                                      HubModel, Literal, Name, Optional, Party, Reason, Ref, RelayService, Scan,
                                      StrictBool, StrictInt, Text, Timestamp, UnitCode, Url, model_validator,
                                      rule_error)


class Evidence(HubModel):
    """One check of identity or intention done by the collecting office (a reference, not the media)."""

    applicant_index: Annotated[StrictInt, Field(ge=0, le=49, description="index into applicants")]
    purpose: Literal["identity", "intention"]
    method: Literal["face_check", "recorded_confirmation", "in_person_check"]
    result: Literal["passed", "failed"]
    checked_at: Timestamp
    reference: Ref = Field(description="the office's record of the check (face-check id, recording id)")
    document: Optional[DocumentRef] = Field(None, description="e.g. the recorded confirmation")


def _check_evidence(applicants: list[Party], evidence: list[Evidence], purposes: tuple[str, ...]) -> None:
    for item in evidence:
        if item.applicant_index >= len(applicants):
            raise rule_error("evidence_applicant_unknown", "applicant_index points past the applicants", "evidence")
    passed = {(e.applicant_index, e.purpose) for e in evidence if e.result == "passed"}
    for index in range(len(applicants)):
        for purpose in purposes:
            if (index, purpose) not in passed:
                raise rule_error("evidence_missing", f"every applicant needs a passed {purpose} check", "evidence")


def _not_own_city(unit_code: str, office_city: str) -> None:
    if city_of(unit_code) == office_city:
        raise rule_error("relay_to_own_city", "the unit is in the office's own city: handle it locally",
                         "unit_code")


class _RelayCase(HubModel):
    relay_id: Ref = Field(description="the collecting office's relay reference (kept across resubmissions)")
    attempt: Annotated[StrictInt, Field(ge=1, le=20)] = 1
    service: RelayService
    unit_code: UnitCode
    office_city: CityCode = Field(description="city of the collecting office (A)")
    office_name: Optional[Name] = None
    applicants: Annotated[list[Party], Field(min_length=1, max_length=50)]
    evidence: Annotated[list[Evidence], Field(min_length=1, max_length=200)]
    originals: Optional[Courier] = Field(None, description="courier and tracking number of the mailed originals")
    remarks: Optional[Text] = None
    collected_at: Timestamp

    def _relay_rules(self) -> None:
        _not_own_city(self.unit_code, self.office_city)
        _check_evidence(self.applicants, self.evidence, ("identity", "intention"))
        if self.service != "inquiry" and self.originals is None:
            raise rule_error("originals_required", "the originals are mailed: give courier and tracking number",
                             "originals")


class RelayCollected(_RelayCase):
    """city_office → hub: materials collected and verified for a unit of another city (异地代收)."""

    documents: Annotated[list[Scan], Field(min_length=1, max_length=100)]

    @model_validator(mode="after")
    def _rules(self) -> "RelayCollected":
        self._relay_rules()
        return self


class RelayDocument(HubModel):
    """A scan with a short-lived download link made by the hub."""

    kind: Literal["application_form", "identity_document", "ownership_certificate", "contract", "power_of_attorney",
                  "marital_status", "tax_document", "notarial_certificate", "court_document", "mortgage_contract",
                  "other"]
    title: Optional[Text] = None
    document: DocumentRef
    download_url: Url
    url_expires_at: Timestamp


class RelayRequested(_RelayCase):
    """hub → registry of the unit's city (B): handle this remotely collected case."""

    documents: Annotated[list[RelayDocument], Field(min_length=1, max_length=100)]
    office_partner_id: Ref
    received_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "RelayRequested":
        self._relay_rules()
        return self


class RelayAccepted(HubModel):
    """registry → hub: B accepted the relay under its own case number."""

    relay_id: Ref
    attempt: Annotated[StrictInt, Field(ge=1, le=20)] = 1
    registry_case_id: CaseId
    expected_completion: Optional[Day] = None
    accepted_at: Timestamp


class RelayRejected(HubModel):
    """registry → hub: B refused the relay; A may resubmit (same relay_id, next attempt)."""

    relay_id: Ref
    attempt: Annotated[StrictInt, Field(ge=1, le=20)] = 1
    reasons: Annotated[list[Reason], Field(min_length=1, max_length=20)]
    resubmittable: StrictBool = True
    rejected_at: Timestamp


class RelayOriginalsReceived(HubModel):
    """registry → hub: the mailed originals arrived at B (complete, or what is missing)."""

    relay_id: Ref
    registry_case_id: Optional[CaseId] = None
    tracking_number: Optional[Annotated[str, Field(pattern=r"^[A-Za-z0-9-]{6,40}$")]] = None
    complete: StrictBool
    missing: Annotated[list[Text], Field(default_factory=list, max_length=50)]
    received_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "RelayOriginalsReceived":
        if self.complete and self.missing:
            raise rule_error("missing_not_allowed", "complete originals list nothing missing", "missing")
        if not self.complete and not self.missing:
            raise rule_error("missing_required", "incomplete originals list what is missing", "missing")
        return self


class RelayCompleted(HubModel):
    """registry → hub: B finished the case (booked, or answered for an inquiry)."""

    relay_id: Ref
    registry_case_id: CaseId
    certificates: Annotated[list[CertificateRef], Field(default_factory=list, max_length=50)]
    result_document: Optional[DocumentRef] = Field(None, description="e.g. the inquiry result")
    return_shipment: Optional[Courier] = Field(None, description="certificates mailed back to the applicant")
    completed_at: Timestamp


class RelayStatus(HubModel):
    """hub → city_office (A): where its relay stands, after each answer of B (or the hub's refusal)."""

    relay_id: Ref
    attempt: Annotated[StrictInt, Field(ge=1, le=20)] = 1
    status: Literal["forwarded", "accepted", "rejected", "originals_received", "completed", "refused"]
    registry_city: CityCode
    registry_case_id: Optional[CaseId] = None
    reasons: Annotated[list[Reason], Field(default_factory=list, max_length=20)]
    resubmittable: Optional[StrictBool] = None
    missing: Annotated[list[Text], Field(default_factory=list, max_length=50)]
    certificates: Annotated[list[CertificateRef], Field(default_factory=list, max_length=50)]
    return_shipment: Optional[Courier] = None
    status_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "RelayStatus":
        if self.status in ("rejected", "refused") and not self.reasons:
            raise rule_error("reasons_required", "a rejection or refusal gives its reasons", "reasons")
        return self


class AssistRequested(HubModel):
    """city_office → hub: an applicant at office A wants to apply online to B with guidance (跨城全程网办)."""

    assist_id: Ref
    service: RelayService
    unit_code: UnitCode
    office_city: CityCode
    office_name: Optional[Name] = None
    applicants: Annotated[list[Party], Field(min_length=1, max_length=50)]
    evidence: Annotated[list[Evidence], Field(min_length=1, max_length=200)]
    channel: Literal["web", "app", "video"] = "web"
    requested_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "AssistRequested":
        _not_own_city(self.unit_code, self.office_city)
        _check_evidence(self.applicants, self.evidence, ("identity",))
        return self


class AssistRequestedOut(AssistRequested):
    """hub → registry of the unit's city: open a guided online session for this applicant."""

    office_partner_id: Ref
    received_at: Timestamp


class AssistSessionOpened(HubModel):
    """registry → hub: the guided online session is open; its link, valid until session_expires_at."""

    assist_id: Ref
    session_url: Url
    session_expires_at: Timestamp
    registry_case_id: Optional[CaseId] = None
    instructions: Optional[Text] = None
    opened_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "AssistSessionOpened":
        if self.session_expires_at <= self.opened_at:
            raise rule_error("date_order", "session_expires_at must be after opened_at", "session_expires_at")
        return self


class AssistSessionOpenedOut(AssistSessionOpened):
    """hub → city_office: the link of the session B opened, and B's city."""

    registry_city: CityCode


__all__ = ["RelayCollected", "RelayRequested", "RelayAccepted", "RelayRejected", "RelayOriginalsReceived",
           "RelayCompleted", "RelayStatus", "AssistRequested", "AssistRequestedOut", "AssistSessionOpened",
           "AssistSessionOpenedOut", "Evidence", "RelayDocument"]
