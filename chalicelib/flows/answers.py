"""The registry's answers to applications (`registration.booked`, `application.rejected`).

Several flows act on them (a one-window transfer, an application the hub filed for a bank or a
notary, the utilities after a booked transfer), each through its own door check and handler. This
module holds the rule they share: an answer about an application the hub does not know is refused
at the door (422), as any other fact about an unknown case is, rather than accepted and stranded.

- with `request_id`: an application the hub filed (`cases.index_ref("request", …)`) for the flow
  that registered how it files (`@files_applications`: notary.py, mortgage.py); the registry, the
  unit, the outcome and the e-certificates are checked here, with one look-up of the case, and the
  flow's handlers find the case with `filed_case`;
- without: a one-window case of the registry's city (flows/transfer.py);
- a pre-registration the registry booked on its own (`service: preregistration`) is news for the
  buyer's bank and tax (flows/mortgage.py), so it needs no case here.
"""
from __future__ import annotations

from typing import Any, Callable

from chalicelib import cases, documents
from chalicelib.cases import Case
from chalicelib.errors import HubError
from chalicelib.flows import checks

REQUEST_REF = "request"

# flow -> filing(case, request_id): whom that application was filed with and the outcome recorded for it
# (None while open), or None when the case filed no such request.
_FILINGS: dict[str, Callable[[Case, str], tuple[list[str], str | None] | None]] = {}


def files_applications(flow: str) -> Callable:
    """Register how `flow` records the applications it files, so the registry's answers to them are
    checked here."""
    def register(filing: Callable[[Case, str], tuple[list[str], str | None] | None]) -> Callable:
        _FILINGS[flow] = filing
        return filing
    return register


def _unknown(code: str, field: str, message: str) -> HubError:
    return HubError(422, code, message, [{"field": field, "code": code, "message": "not known to the hub"}])


@checks("registration.booked", "application.rejected")
def check_known_application(partner: Any, data: dict[str, Any]) -> str | None:
    if data.get("request_id"):
        ref = cases.case_of_ref(REQUEST_REF, data["request_id"])
        if ref is None:
            raise _unknown("unknown_request", "data.request_id", "No application with this request id was filed.")
        case = cases.load(*ref)
        filing = _FILINGS.get(case.doc.get("flow")) if case else None
        return _check_filed_answer(partner, data, case, filing) if filing else None
    if data.get("service") == "preregistration" and "booked_at" in data:
        return None
    case = cases.load(data["case_id"], data["unit_code"]) if data.get("case_id") else None
    if case is None or case.doc.get("city") != partner.city:
        # Another city's case gets the same answer as a case that does not exist.
        raise _unknown("unknown_case", "data.case_id", "No case with this number and unit in your city.")
    decided = "booked" if case.doc.get("booking") else "rejected" if case.doc.get("rejected") else None
    if decided and decided != ("booked" if "booked_at" in data else "rejected"):
        raise HubError(422, "application_already_decided", f"The application was {decided} already.",
                       [{"field": "data.case_id", "code": "application_already_decided",
                         "message": f"recorded as {decided}"}])
    return case.key_text


def filed_case(request_id: str | None, flow: str) -> Case | None:
    """The case of `flow` that filed the application `request_id`; None for none, or another flow's."""
    ref = cases.case_of_ref(REQUEST_REF, request_id) if request_id else None
    case = cases.load(*ref) if ref else None
    return case if case is not None and case.doc.get("flow") == flow else None


def _check_filed_answer(partner: Any, data: dict[str, Any], case: Case,
                        filing: Callable[[Case, str], tuple[list[str], str | None] | None]) -> str:
    """A registry's answer to an application a flow filed: its case key. An answer from another
    registry, or about another unit, gets the same 422 as an unknown request; one contradicting the
    outcome recorded is refused; an e-certificate must be the registry's own verified upload, since
    what the applicant gets must be the real one."""
    found = filing(case, data["request_id"])
    if found is None or partner.id not in found[0] or data["unit_code"] != case.unit_code:
        raise HubError(422, "unknown_request", "No application with this request id was filed with you for this unit.",
                       [{"field": "data.request_id", "code": "unknown_request",
                         "message": "not an application the hub filed with this registry"}])
    recorded = found[1]
    if recorded not in (None, "booked" if "booked_at" in data else "rejected"):
        raise HubError(422, "application_already_decided", f"The application was {recorded} already.",
                       [{"field": "data.request_id", "code": "application_already_decided",
                         "message": f"recorded as {recorded}"}])
    for i, certificate in enumerate(data.get("certificates", [])):
        if certificate.get("e_certificate"):
            documents.require_verified_upload(certificate["e_certificate"], partner_id=partner.id,
                                              field=f"data.certificates.{i}.e_certificate")
    return case.key_text
