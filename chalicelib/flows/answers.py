"""The registry's answers to applications (`registration.booked`, `application.rejected`).

Several flows act on them (a one-window transfer, an application the hub filed for a bank or a
notary, the utilities after a booked transfer), each through its own door check and handler. This
module holds the rule they share: an answer about an application the hub does not know is refused
at the door (422), as any other fact about an unknown case is, rather than accepted and stranded.

- with `request_id`: an application the hub filed (`cases.index_ref("request", …)`); the owning
  flow's check then verifies the registry and the unit (notary.py, mortgage.py);
- without: a one-window case of the registry's city (flows/transfer.py);
- a pre-registration the registry booked on its own (`service: preregistration`) is news for the
  buyer's bank and tax (flows/mortgage.py), so it needs no case here.
"""
from __future__ import annotations

from typing import Any

from chalicelib import cases
from chalicelib.errors import HubError
from chalicelib.flows import checks

REQUEST_REF = "request"


def _unknown(code: str, field: str, message: str) -> HubError:
    return HubError(422, code, message, [{"field": field, "code": code, "message": "not known to the hub"}])


@checks("registration.booked", "application.rejected")
def check_known_application(partner: Any, data: dict[str, Any]) -> str | None:
    if data.get("request_id"):
        if cases.case_of_ref(REQUEST_REF, data["request_id"]) is None:
            raise _unknown("unknown_request", "data.request_id", "No application with this request id was filed.")
        return None  # the flow that filed it checks the rest and finds the case
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
