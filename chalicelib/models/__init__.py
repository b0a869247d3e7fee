"""What an event is: the canonical `data` model of every event type, and who may send or receive it.

The single source of truth for event types. The catalog (`chalicelib.catalog`) is generated from it.

Event type names and directions
-------------------------------
Most type names travel one way: partner → hub (inbound) or hub → partner (outbound). Three names
travel both ways, with a different shape in each direction:

    assist.requested       inbound from city_office   outbound to registry    (+ office_partner_id, received_at)
    assist.session_opened  inbound from registry      outbound to city_office (+ registry_city)
    inquiry.answered       inbound from registry      outbound to court, bank (+ city)

So a spec is identified by the pair (type, direction):

- `EVENT_SPECS[(type, direction)]` is the complete registry, one `EventTypeSpec` per pair.
- `INBOUND_TYPES[type]` / `OUTBOUND_TYPES[type]` index it by name for one direction.
- `EVENT_TYPES[type]` (the name-keyed view of ARCHITECTURE.md) is the *inbound* spec where the name
  has one, else the outbound spec. For a two-way name it is therefore what a partner sends; ask
  `OUTBOUND_TYPES` or `get_spec(type, "outbound")` for what the hub sends under that name.
- `TWO_WAY_TYPES` lists the names that have both.

A spec's `senders` are the partner kinds that may send it (inbound; `()` for outbound) and its
`receivers` the kinds the hub sends it to (outbound; `()` for inbound). `case.overdue` goes to
whichever kind is responsible for the late stage, so its receivers are every kind.

`validate_data(type, data, direction=None)` validates canonical data. With `direction=None` it
uses `EVENT_TYPES[type]` (so for the ingest path: the inbound model); pass `"outbound"` when
building what the hub sends. Failures raise `HubError(422, "invalid_data", ..., details)`, each
detail `{"field": "data.<path>", "code": <pydantic error type or a stable business-rule code>,
"message": ...}`: never the input value, never pydantic's `input` or `ctx`.

Import cost (this package is on the cold-start path): importing it imports neither pydantic nor any
model module. `EventTypeSpec.model` imports the model's module on first access, and models are
declared with `defer_build=True`, so pydantic builds a validator only when it is first used.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from chalicelib.errors import HubError
from chalicelib.models.examples import build_examples
from chalicelib.models.kinds import PARTNER_KINDS, UTILITY_TYPES

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel, ValidationError

__all__ = [
    "EVENT_TYPES", "EVENT_SPECS", "INBOUND_TYPES", "OUTBOUND_TYPES", "TWO_WAY_TYPES", "EventTypeSpec",
    "PARTNER_KINDS", "UTILITY_TYPES", "inbound_types_for_kind", "outbound_types_for_kind", "get_spec",
    "validate_data", "error_details",
]

Direction = Literal["inbound", "outbound"]
_MODEL_CACHE: dict[str, type] = {}


def _load_model(ref: str) -> type[BaseModel]:
    model = _MODEL_CACHE.get(ref)
    if model is None:
        module, _, name = ref.partition(":")
        model = getattr(importlib.import_module(f"chalicelib.models.{module}"), name)
        _MODEL_CACHE[ref] = model
    return model


@dataclass(frozen=True)
class EventTypeSpec:
    """One event type in one direction.

    `model` (the pydantic class of the canonical `data`) is resolved from `model_ref`
    ("<module>:<Class>" under chalicelib.models) on first access, so that importing this package
    builds no model: a cold start pays only for the models it validates.
    """

    type: str
    direction: Direction
    senders: tuple[str, ...]
    receivers: tuple[str, ...]
    model_ref: str = field(repr=False)
    description: str
    example: dict[str, Any] = field(repr=False, compare=False)

    @property
    def model(self) -> type[BaseModel]:
        return _load_model(self.model_ref)


_IN: list[tuple[str, tuple[str, ...], str, str]] = [
    ("application.submitted", ("registry",), "registry_events:ApplicationSubmitted",
     "An application accepted at the one window (一窗受理); starts assessment, billing and payment in parallel."),
    ("application.rejected", ("registry",), "registry_events:ApplicationRejected",
     "The registry refused an application (one the hub filed for a notary or bank, or a submitted case)."),
    ("registration.booked", ("registry",), "registry_events:RegistrationBooked",
     "The case was entered in the register (登簿), with the certificates and e-certificates issued."),
    ("restriction.recorded", ("registry",), "registry_events:RestrictionRecorded",
     "A restriction (seizure, mortgage, pre-registration, objection…) was recorded, renewed or lifted on a unit."),
    ("tax.assessed", ("tax",), "money_events:TaxAssessed",
     "The tax bureau's assessment (核税): one line per tax and payer; total_fen equals the sum of the lines."),
    ("tax.cleared", ("tax",), "money_events:TaxCleared",
     "Taxes paid into the treasury (完税), with certificate number and ticket type for the two-way check."),
    ("nontax.bill_issued", ("fiscal",), "money_events:NontaxBillIssued",
     "The non-tax bill (非税缴款书) with its payment code (缴款码), receiving unit and fee lines."),
    ("nontax.receipt_issued", ("fiscal",), "money_events:NontaxReceiptIssued",
     "The electronic non-tax receipt issued once the bill is paid."),
    ("payment.succeeded", ("payment",), "money_events:PaymentSucceeded",
     "A combined order was paid; status per sub-order. A result that does not match its order is held for review."),
    ("payment.failed", ("payment",), "money_events:PaymentFailed",
     "A combined order could not be paid (expired, cancelled, declined)."),
    ("payment.refunded", ("payment",), "money_events:PaymentRefunded",
     "A whole or partial refund, per sub-order; total_fen equals the sum of the lines."),
    ("settlement.ready", ("payment",), "money_events:SettlementReady",
     "The day's settlement file (对账文件) is uploaded as a document, with its header totals."),
    ("mortgage.requested", ("bank",), "bank_events:MortgageRequested",
     "A bank's mortgage registration (first, change, transfer, release) or its part of a 带押过户 package "
     "(combined, staged with escrow, same-bank change)."),
    ("utility.transfer_completed", ("utility",), "utility_events:UtilityTransferCompleted",
     "The utility moved the unit's account to the new owner."),
    ("utility.transfer_failed", ("utility",), "utility_events:UtilityTransferFailed",
     "The utility could not move the account (holder mismatch, arrears…)."),
    ("notarization.completed", ("notary",), "registry_events:NotarizationCompleted",
     "A notarized inheritance or gift with its e-notarial certificate; the hub files the application for it."),
    ("seizure.ordered", ("court",), "court_events:SeizureOrdered",
     "A court orders the seizure (查封, 轮候, 预查封), release (解封) or renewal (续封) of a unit."),
    ("inquiry.requested", ("court", "bank"), "court_events:InquiryRequested",
     "A court or bank asks for a unit's (or a person's) registration facts, with the legal basis."),
    ("inquiry.answered", ("registry",), "court_events:InquiryAnswered",
     "The registry's answer to an inquiry: found (records), not found or refused."),
    ("relay.collected", ("city_office",), "relay_events:RelayCollected",
     "An office of city A collected and verified a case for a unit of city B (异地代收、本地办理)."),
    ("assist.requested", ("city_office",), "relay_events:AssistRequested",
     "An office of city A asks city B for a guided online session for an applicant (跨城全程网办)."),
    ("relay.accepted", ("registry",), "relay_events:RelayAccepted",
     "City B's registry accepted a relay under its own case number."),
    ("relay.rejected", ("registry",), "relay_events:RelayRejected",
     "City B's registry rejected a relay, with reasons; the office may resubmit."),
    ("relay.originals_received", ("registry",), "relay_events:RelayOriginalsReceived",
     "City B's registry received the mailed originals (complete or not)."),
    ("relay.completed", ("registry",), "relay_events:RelayCompleted",
     "City B's registry completed the relayed case."),
    ("assist.session_opened", ("registry",), "relay_events:AssistSessionOpened",
     "City B's registry opened the guided online session; its link and expiry."),
]

_OUT: list[tuple[str, tuple[str, ...], str, str]] = [
    ("tax.assessment_requested", ("tax",), "money_events:TaxAssessmentRequested",
     "Asks the city's tax bureau to assess the taxes of a transaction."),
    ("tax.booking_shared", ("tax",), "money_events:TaxBookingShared",
     "Tells the tax bureau the case was booked (closes the loop)."),
    ("nontax.bill_requested", ("fiscal",), "money_events:NontaxBillRequested",
     "Asks the fiscal non-tax system for the fee bill of a case."),
    ("payment.order_requested", ("payment",), "money_events:PaymentOrderRequested",
     "One combined order (税费同缴): a tax group and a non-tax group of sub-orders, each to its own receiver."),
    ("application.requested", ("registry",), "registry_events:ApplicationRequested",
     "An application filed with the registry on behalf of a notary or a bank (incl. 带押过户 packages)."),
    ("nontax.receipt_shared", ("registry",), "money_events:NontaxReceiptIssued",
     "The e-receipt of a paid non-tax bill, passed to the registry: the payer's channel."),
    ("case.ready_to_book", ("registry",), "registry_events:CaseReadyToBook",
     "Taxes cleared, fees and taxes paid and split: the case may be booked; restriction flags to look at."),
    ("seizure.forwarded", ("registry",), "court_events:SeizureForwarded",
     "A court's seizure, release or renewal order, forwarded to the registry that owns the unit."),
    ("relay.requested", ("registry",), "relay_events:RelayRequested",
     "A remotely collected case relayed to the registry of the unit's city, with short-lived links to the scans."),
    ("assist.requested", ("registry",), "relay_events:AssistRequestedOut",
     "An office of another city asks for a guided online session for an applicant."),
    ("inquiry.forwarded", ("registry",), "court_events:InquiryForwarded",
     "A court's or bank's inquiry, forwarded to the registry with who asks."),
    ("mortgage.registered", ("bank",), "bank_events:MortgageRegistered",
     "The bank's mortgage registration was booked: the proof and its e-certificate."),
    ("preregistration.shared", ("bank", "tax"), "bank_events:PreregistrationShared",
     "A pre-registration (预告登记) was booked; sent to the buyer's bank (and tax)."),
    ("utility.transfer_requested", ("utility",), "utility_events:UtilityTransferRequested",
     "After a booked transfer, asks each consented utility of the city to move the account."),
    ("registration.result", ("notary", "bank", "city_office"), "registry_events:RegistrationResult",
     "What became of an application a notary, bank or city office started: booked or rejected."),
    ("seizure.receipt", ("court",), "court_events:SeizureReceipt",
     "The receipt (回执) for a court's order: forwarded, recorded, queued, released, renewed or refused."),
    ("inquiry.answered", ("court", "bank"), "court_events:InquiryAnsweredOut",
     "The registry's answer to a court's or bank's inquiry, with the answering city."),
    ("relay.status", ("city_office",), "relay_events:RelayStatus",
     "Where a relay stands after each answer of the other city's registry."),
    ("assist.session_opened", ("city_office",), "relay_events:AssistSessionOpenedOut",
     "The link of the guided online session the other city's registry opened."),
    ("restriction.flagged", ("registry",), "court_events:RestrictionFlagged",
     "A seizure is recorded on a unit with an open application (or the flag is lifted): look before booking."),
    ("case.overdue", PARTNER_KINDS, "registry_events:CaseOverdue",
     "A stage passed its time limit (效能监管); sent to the partner responsible for the late stage."),
]


def _build() -> dict[tuple[str, str], EventTypeSpec]:
    examples = build_examples()
    specs: dict[tuple[str, str], EventTypeSpec] = {}
    for name, senders, model_ref, description in _IN:
        specs[name, "inbound"] = EventTypeSpec(name, "inbound", senders, (), model_ref, description,
                                               examples[name, "inbound"])
    for name, receivers, model_ref, description in _OUT:
        specs[name, "outbound"] = EventTypeSpec(name, "outbound", (), receivers, model_ref, description,
                                                examples[name, "outbound"])
    return specs


EVENT_SPECS: dict[tuple[str, str], EventTypeSpec] = _build()
INBOUND_TYPES: dict[str, EventTypeSpec] = {t: s for (t, d), s in EVENT_SPECS.items() if d == "inbound"}
OUTBOUND_TYPES: dict[str, EventTypeSpec] = {t: s for (t, d), s in EVENT_SPECS.items() if d == "outbound"}
EVENT_TYPES: dict[str, EventTypeSpec] = {**OUTBOUND_TYPES, **INBOUND_TYPES}
TWO_WAY_TYPES: frozenset[str] = frozenset(INBOUND_TYPES) & frozenset(OUTBOUND_TYPES)

_INBOUND_BY_KIND: dict[str, frozenset[str]] = {
    kind: frozenset(t for t, s in INBOUND_TYPES.items() if kind in s.senders) for kind in PARTNER_KINDS
}
_OUTBOUND_BY_KIND: dict[str, frozenset[str]] = {
    kind: frozenset(t for t, s in OUTBOUND_TYPES.items() if kind in s.receivers) for kind in PARTNER_KINDS
}


def inbound_types_for_kind(kind: str) -> frozenset[str]:
    """The type names a partner of this kind may send (empty for an unknown kind)."""
    return _INBOUND_BY_KIND.get(kind, frozenset())


def outbound_types_for_kind(kind: str) -> frozenset[str]:
    """The type names the hub may send to a partner of this kind."""
    return _OUTBOUND_BY_KIND.get(kind, frozenset())


def get_spec(type_name: str, direction: str | None = None) -> EventTypeSpec:
    """The spec of (type, direction); direction None → EVENT_TYPES[type]. HubError 422 if there is none."""
    spec = EVENT_TYPES.get(type_name) if direction is None else EVENT_SPECS.get((type_name, direction))
    if spec is None:
        raise HubError(422, "unknown_event_type", "No such event type in this direction.",
                       [{"field": "type", "code": "unknown_event_type",
                         "message": "not an event type of the catalog" if direction is None
                         else f"not an {direction} event type of the catalog"}])
    return spec


# --------------------------------------------------------------------------------------------
# Validation with safe error details

MAX_DETAILS = 50
# Pydantic error types whose message can repeat (part of) the input: replaced by a fixed message.
_ECHOING_TYPES = {"union_tag_invalid": "Input tag is not one of the expected tags",
                  "value_error": "Invalid value", "assertion_error": "Invalid value"}


def _message(error: dict[str, Any]) -> str:
    fixed = _ECHOING_TYPES.get(error["type"])
    if fixed:
        return fixed
    msg = str(error.get("msg", ""))
    value = error.get("input")
    # Belt and braces: any message that happens to contain the (scalar) input is replaced.
    if isinstance(value, (str, int, float)) and not isinstance(value, bool) and len(str(value)) >= 4:
        if str(value) in msg:
            return f"Invalid value ({error['type']})"
    return msg


def error_details(exc: ValidationError, prefix: str = "data") -> list[dict[str, str]]:
    """`details` for a HubError from a pydantic ValidationError, without values."""
    details: list[dict[str, str]] = []
    for error in exc.errors(include_url=False, include_context=True, include_input=True):
        loc = [str(part) for part in error.get("loc", ())]
        if error["type"] == "extra_forbidden" and loc:
            # The name of an unknown key is the sender's text (it may be an ID number): never echo it.
            loc[-1] = "<unknown key>"
        ctx = error.get("ctx") or {}
        rule_field = ctx.get("rule_field") if isinstance(ctx, dict) else None
        if isinstance(rule_field, str) and rule_field:
            loc.extend(rule_field.split("."))
        details.append({"field": ".".join(p for p in [prefix, *loc] if p) or "body", "code": str(error["type"]),
                        "message": "unknown field" if error["type"] == "extra_forbidden" else _message(error)})
        if len(details) >= MAX_DETAILS:
            break
    return details


def validate_data(type_name: str, data: Any, direction: str | None = None) -> BaseModel:
    """Validate canonical `data` of an event type; returns the model instance or raises HubError(422)."""
    spec = get_spec(type_name, direction)
    if not isinstance(data, dict):
        raise HubError(422, "invalid_data", f"data of {type_name} must be a JSON object.",
                       [{"field": "data", "code": "model_type", "message": "Input should be an object"}])
    from pydantic import ValidationError

    model = spec.model
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = error_details(exc)
    # Raised outside the except block: no chained ValidationError (which would carry the input).
    raise HubError(422, "invalid_data", f"data does not match the {type_name} schema.", details)
