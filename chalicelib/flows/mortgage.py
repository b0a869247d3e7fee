"""Flow 2, banks (part 1): online mortgage registration from the bank's own system (Jinan's 58 banks
online, Hangzhou's 31), the hub's index of registered mortgages, and pre-registration results
(Taizhou: the 预告登记 proof is the basis of the loan approval). The 带押过户 packages are in
`chalicelib/flows/package.py`; what both share (the case, filing, answers, the index) is here.

    bank ── mortgage.requested (first | change | transfer | release) ─→ hub
        └─ application.requested (source_kind bank, download links) ─→ the registry of the unit's city
    registry ── registration.booked | application.rejected (request_id) ─→ hub
        └─ mortgage.registered (the proof, its e-certificate) | registration.result rejected ─→ the bank
    registry ── registration.booked (service preregistration, with its facts) ─→ hub
        └─ preregistration.shared ─→ the buyer's bank (the bank partner whose uscc is buyer_bank's)
                                     and the tax bureau of the unit's city
    registry ── restriction.recorded (mortgage: recorded | released) ─→ the mortgage index

The case: one per bank request, `MTG_<bank partner id>_<request_id>` (`MTG__<hash of the two>` when
that is not a valid case id), and the unit code; `doc["flow"] == "mortgage"`, `doc["kind"]` the
request's kind. A package is one case too (`PKG_<package_id>`, kind transfer_with_mortgage). The
document holds references only, never names, ID numbers or phones (those travel in the events and in
the application filed): who asked (`requests`: role → bank partner id, its request id, the event,
a digest of the content, the document references), the mortgage's proof numbers, rank and amount,
the filing, the registry's decision (certificate numbers, reason codes) or the hub's own refusal.
The hub's request id (`application.requested.request_id`) is the case id; it is indexed
(`cases.index_ref("request", …)`, the index the notary flow uses too) before the application leaves,
so the registry's answers (which carry `request_id`) find the case. Handlers and door checks here
ignore cases that are not of this flow; the transfer flow ignores these (its `flow` check on
bookings; a rejection without `case_id` is not its own). Participants (who may read the case at
GET /v1/cases/{case_id}): the registry and the bank(s) of the case, nobody else; `case_id` in what
the banks get back is this hub case id, `registry_case_id` the registry's own number.

Door checks of mortgage.requested (422, nothing stored): the sending bank is not the mortgagee it
names (`mortgagee_not_sender`: the partner record's uscc, which a bank partner must have); no registry
serves the unit's city (`no_route_target`); a document is not the sender's verified upload
(`document_not_verified`, with the verifier's reason); the request id was used for other content
(`request_conflict`; the same content again, under any webhook-id, is accepted and changes nothing).
A change, transfer or release must act on a mortgage the index knows, on this unit, held by the
sender (change, release) or by `previous_mortgagee` (transfer): otherwise `unknown_mortgage` (the same
answer whether the proof number is unknown, of another unit or of another bank, so a bank learns
nothing of other banks' mortgages); a released or superseded one: `mortgage_released` /
`mortgage_superseded`; one another application is acting on: `mortgage_pending`. The registry's
answers: a request id not filed with the sender, or another unit (`unknown_request`); an answer that
contradicts the one recorded (`application_already_decided`); a repeat is accepted and changes nothing.

The mortgage index (`mortgage_proof#<proof number>` / `index` in the cases table): unit, mortgagee
uscc (when known), rank, state registered | released | superseded, and `pending`, the case whose
application is acting on it (claimed with a conditional write before the application leaves, so two
requests racing past the door cannot both reach the registry; the loser is refused on the stream and
its bank told `registration.result` rejected with the reason). It learns from the bookings the hub
relays (first → registered; change, transfer → old superseded, new registered; release → released;
packages per mode) and from registries' `restriction.recorded` of mortgages. Facts may arrive in any
order: a release is never undone by a late "recorded".

Results: a booking → `mortgage.registered` to the bank, with the proof the registry issued (the
registration proof, preferring one not the old number and naming the bank; the proof with its
e-certificate reference as the registry sent it); a release gets the same, the proof being what the
registry issued for it, else the released proof number. A booking with no registration proof at all
→ `registration.result` booked with the certificate numbers. A rejection → `registration.result`
rejected with the registry's reasons. Time limit: stage `registration` (service mortgage), the
registry's, from the filing to its answer. Before the application leaves, every document is checked
again and given a short-lived download link; one no longer verified is never sent: the case is
refused (`document_not_verified`) and the bank told.

Pre-registration: the registry's `registration.booked` with service preregistration carries its facts
(`preregistration`: kind, the buyer's bank, amount, contract number, price). It is shared once per
(registry case number, unit) (a marker item in that case's partition, not a case record): the same
`preregistration.shared` to the buyer's bank and to the city's tax bureau. A bank named that is not a
partner, or a city without a tax bureau, is a dead letter operators see.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib import aws, cases, documents, restrictions
from chalicelib.cases import UNCHANGED, Case
from chalicelib.errors import HubError
from chalicelib.flows import answers, checks, digest, handles, iso, now_iso, send, views
from chalicelib.flows.relay import link_ttl_s
from chalicelib.identifiers import city_of
from chalicelib.observability import logger, metrics
from chalicelib.partners import get_directory
from chalicelib.settings import get_settings

FLOW = "mortgage"
PACKAGE = "transfer_with_mortgage"
MORTGAGEE = "mortgagee"  # the role of the one bank of a single request
REGISTRATION_STEP = {"first": "mortgage_first", "change": "mortgage_change", "transfer": "mortgage_transfer",
                     "release": "mortgage_release"}
REGISTERED, RELEASED, SUPERSEDED = "registered", "released", "superseded"
_CASE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # models.common.CaseId


def request_digest(data: dict[str, Any]) -> str:
    """What tells a repeat from new content: the request without its id and its time stamp."""
    return digest({k: v for k, v in data.items() if k not in ("request_id", "requested_at")})


def hub_case_id(prefix: str, readable: str, *parts: str) -> str:
    """`<prefix>_<readable>` when that is a valid case id, else `<prefix>__<hash of parts>` (a readable
    id never has `__` there: partner, request and package ids start with a letter or digit)."""
    text = f"{prefix}_{readable}"
    if _CASE_ID.fullmatch(text):
        return text
    return f"{prefix}__{hashlib.sha256(chr(31).join(parts).encode()).hexdigest()[:32]}"


def request_case_id(partner_id: str, request_id: str) -> str:
    """The case of a bank's single request (partner ids never contain `_`, so two banks' keys never meet)."""
    return hub_case_id("MTG", f"{partner_id}_{request_id}", partner_id, request_id)


def refuse(code: str, message: str, field: str, detail: str) -> HubError:
    return HubError(422, code, message, [{"field": field, "code": code, "message": detail}])


def registries_of(unit_code: str) -> list:
    return get_directory().find("registry", city=city_of(unit_code))


def banks_with(uscc: str) -> list:
    """The bank partners whose record carries this USCC (normally one), sorted by id."""
    return [p for p in get_directory().find("bank") if p.uscc == uscc]


def scans_of(data: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(field, scan) of every document a bank's request points at: its scans, then its consents."""
    found = [(f"data.documents.{i}.document", scan) for i, scan in enumerate(data.get("documents", []))]
    for i, consent in enumerate((data.get("package") or {}).get("consents", [])):
        found.append((f"data.package.consents.{i}.document",
                      {"kind": "other", "title": f"consent of the {consent['party_role']} (带押过户同意书)",
                       "document": consent["document"]}))
    return found


def request_entry(stored: Any) -> dict[str, Any]:
    """What a case keeps of a bank's request: references, no personal data."""
    data = stored.data
    return {"partner_id": stored.partner_id, "request_id": data["request_id"], "uscc": data["mortgagee"]["uscc"],
            "event_id": stored.event_id, "received_at": stored.received_at, "digest": request_digest(data),
            "scans": [{"field": field, "scan": scan} for field, scan in scans_of(data)]}


def _institution_party(institution: dict[str, Any], role: str) -> dict[str, Any]:
    return {"role": role, "name": institution["name"], "id_type": "uscc", "id_number": institution["uscc"]}


# ---------------------------------------------------------------- the mortgage index

def _index_key(proof_number: str) -> dict[str, Any]:
    return {"pk": {"S": f"mortgage_proof#{proof_number}"}, "sk": {"S": "index"}}


def _dynamo() -> Any:
    return aws.client("dynamodb")


def mortgage_of(proof_number: str) -> dict[str, Any] | None:
    """What the hub knows of a registered mortgage, by its proof number (不动产登记证明号)."""
    item = _dynamo().get_item(TableName=get_settings().cases_table, Key=_index_key(proof_number),
                              ConsistentRead=True).get("Item")
    if not item:
        return None
    found = {"proof_number": proof_number, "unit_code": item["unit_code"]["S"], "state": item["mortgage_state"]["S"]}
    for name in ("mortgagee_uscc", "pending"):
        if name in item:
            found[name] = item[name]["S"]
    if "mortgage_rank" in item:
        found["rank"] = int(item["mortgage_rank"]["N"])
    if "staged" in item:
        found["staged"] = json.loads(item["staged"]["S"])
    return found


def record_mortgage(proof_number: str, unit_code: str, source_event_id: str, *, state: str = REGISTERED,
                    mortgagee_uscc: str | None = None, rank: int | None = None) -> None:
    """A fact about a mortgage (idempotent, order-proof): registered never undoes released or superseded."""
    names = {"#s": "mortgage_state"}
    values: dict[str, Any] = {":u": {"S": unit_code}, ":state": {"S": state}, ":e": {"S": source_event_id}}
    sets = ["unit_code = if_not_exists(unit_code, :u)"]
    if state == REGISTERED:
        sets += ["#s = if_not_exists(#s, :state)", "registered_by = if_not_exists(registered_by, :e)"]
        if mortgagee_uscc:
            sets.append("mortgagee_uscc = :m")
            values[":m"] = {"S": mortgagee_uscc}
        if rank is not None:
            sets.append("mortgage_rank = :r")
            values[":r"] = {"N": str(rank)}
        expression = "SET " + ", ".join(sets)
    else:
        sets += ["#s = :state", "closed_by = :e"]
        expression = "SET " + ", ".join(sets) + " REMOVE pending"
    _dynamo().update_item(TableName=get_settings().cases_table, Key=_index_key(proof_number),
                          UpdateExpression=expression, ExpressionAttributeNames=names, ExpressionAttributeValues=values)


def _problem_of(found: dict[str, Any] | None, case_key: str | None = None) -> str | None:
    if found is None:
        return "unknown_mortgage"
    if found["state"] == RELEASED:
        return "mortgage_released"
    if found["state"] == SUPERSEDED:
        return "mortgage_superseded"
    if found.get("pending") and found["pending"] != case_key:
        return "mortgage_pending"
    return None


MORTGAGE_PROBLEMS = {
    "unknown_mortgage": "No registered mortgage with this proof number, on this unit, of this bank.",
    "mortgage_released": "This mortgage was released.",
    "mortgage_superseded": "This proof number was replaced by a later registration of the mortgage.",
    "mortgage_pending": "Another application is acting on this mortgage; wait for its answer.",
}


def require_mortgage(proof_number: str, unit_code: str, holder_uscc: str, field: str,
                     must_be_known: bool = True) -> dict[str, Any] | None:
    """The live mortgage a request acts on, or the 422 that says why not. With `must_be_known` False a
    mortgage the index has never heard of passes (None); one it knows must still agree."""
    found = mortgage_of(proof_number)
    if found is None and not must_be_known:
        return None
    if found is not None and (found["unit_code"] != unit_code or
                              (found.get("mortgagee_uscc") and found["mortgagee_uscc"] != holder_uscc)):
        found = None  # the same answer as for an unknown one: nothing about other units or banks
    problem = _problem_of(found)
    if problem:
        raise refuse(problem, MORTGAGE_PROBLEMS[problem], field, problem.replace("_", " "))
    return found


def claim_mortgage(proof_number: str, case_key: str) -> str | None:
    """Take the mortgage for this case's application (one conditional write): None, or why not."""
    try:
        _dynamo().update_item(
            TableName=get_settings().cases_table, Key=_index_key(proof_number), UpdateExpression="SET pending = :k",
            ConditionExpression="#s = :registered AND (attribute_not_exists(pending) OR pending = :k)",
            ExpressionAttributeNames={"#s": "mortgage_state"},
            ExpressionAttributeValues={":k": {"S": case_key}, ":registered": {"S": REGISTERED}})
        return None
    except Exception as exc:
        if not aws.is_conditional_check_failure(exc):
            raise
    return _problem_of(mortgage_of(proof_number), case_key) or "mortgage_pending"


def unclaim_mortgage(proof_number: str, case_key: str) -> None:
    try:
        _dynamo().update_item(TableName=get_settings().cases_table, Key=_index_key(proof_number),
                              UpdateExpression="REMOVE pending", ConditionExpression="pending = :k",
                              ExpressionAttributeValues={":k": {"S": case_key}})
    except Exception as exc:
        if not aws.is_conditional_check_failure(exc):
            raise


def link_staged(proof_number: str, link: dict[str, Any]) -> None:
    """A staged package was booked behind this mortgage: its release after payoff carries the package."""
    _dynamo().update_item(TableName=get_settings().cases_table, Key=_index_key(proof_number),
                          UpdateExpression="SET staged = :link",
                          ExpressionAttributeValues={":link": {"S": json.dumps(link, separators=(",", ":"))}})


def claimed_proofs(doc: dict[str, Any]) -> list[str]:
    """The mortgages this case's application acts on (and so claims)."""
    if doc["kind"] == PACKAGE:
        return [doc["old_mortgage"]["proof_number"]] if doc["mode"] in ("combined", "same_bank_change") else []
    proof = doc["mortgage"].get("existing_proof_number")
    return [proof] if proof else []


# ---------------------------------------------------------------- clocks

def _subject(case: Case) -> str:
    from chalicelib import clocks

    if case.doc["kind"] == PACKAGE:
        return clocks.subject_key("package", case.doc["package_id"])
    return clocks.case_subject(case.case_id, case.unit_code)


def start_clock(case: Case, stage: str, at: float, responsible_id: str | None, instance: str | None = None) -> None:
    from chalicelib import clocks

    clocks.start(_subject(case), stage, service=case.doc["service"], city=case.doc["city"],
                 responsible_partner_id=responsible_id, started_at=datetime.fromtimestamp(at, tz=timezone.utc),
                 detail={"case_id": case.case_id, "unit_code": case.unit_code}, instance=instance)


def stop_clock(case: Case, stage: str, at: float, instance: str | None = None) -> None:
    from chalicelib import clocks

    clocks.stop(_subject(case), stage, datetime.fromtimestamp(at, tz=timezone.utc), instance=instance)


def registration_stage(doc: dict[str, Any]) -> str:
    return "package_registration" if doc["kind"] == PACKAGE else "registration"


# ---------------------------------------------------------------- filing, refusing, telling the banks

def tell_banks(case: Case, source_event_id: str, purpose: str, outcome: str, *, roles: tuple[str, ...] | None = None,
               certificates: list[dict[str, Any]] | None = None, reasons: list[dict[str, Any]] | None = None,
               decided_at: str | None = None) -> None:
    """`registration.result` to each bank of the case (or of `roles`), under its own request id."""
    for role, entry in sorted(case.doc["requests"].items()):
        if roles is not None and role not in roles:
            continue
        bank = get_directory().get(entry["partner_id"])
        send(source_event_id, f"{purpose}-{role}", "registration.result", {
            "case_id": case.case_id, "reference": entry["request_id"], "unit_code": case.unit_code,
            "service": case.doc["service"], "outcome": outcome, "certificates": certificates or [],
            "reasons": reasons or [], "decided_at": decided_at or now_iso()}, [bank] if bank else [], case.ref)


def refuse_case(case: Case, source_event_id: str, reasons: list[dict[str, Any]]) -> Case:
    """The hub will not file this case (a mortgage taken meanwhile, a document no longer verified):
    recorded once, the claims let go, every bank of the case told why. Nothing reaches the registry."""
    def record(c: Case) -> Any:
        if c.doc.get("refusal") or c.doc.get("decision"):
            return UNCHANGED
        c.doc["refusal"] = {"event_id": source_event_id, "at": time.time(), "reasons": reasons}
        return None

    case, _ = cases.update(case.case_id, case.unit_code, record)
    refusal = case.doc.get("refusal")
    if refusal is None:
        return case
    for proof in claimed_proofs(case.doc):
        unclaim_mortgage(proof, case.key_text)
    tell_banks(case, refusal["event_id"], "refused", "rejected", reasons=refusal["reasons"])
    logger.warning("bank application refused on the stream",
                   extra={"case_key": case.key_text, "codes": [r["code"] for r in refusal["reasons"]]})
    metrics.add_metric(name="BankApplicationsRefused", unit="Count", value=1)
    return case


def _linked(case: Case) -> list[dict[str, Any]]:
    """Every document of every bank of the case, checked again (still that bank's verified upload),
    with a short-lived download link, as relays and notarizations are handed over."""
    ttl = link_ttl_s()
    scans = [(item["field"], item["scan"], entry["partner_id"])
             for _role, entry in sorted(case.doc["requests"].items()) for item in entry["scans"]]
    for field, scan, owner in scans:
        documents.require_verified_upload(scan["document"], field=field, partner_id=owner)
    expires_at = (datetime.now(timezone.utc) + timedelta(seconds=ttl)).isoformat()
    return [{**scan, "download_url": documents.download_url(scan["document"]["document_id"], ttl),
             "url_expires_at": expires_at} for _field, scan, _owner in scans]


def file_application(case: Case, source_event_id: str, application: dict[str, Any]) -> bool:
    """File a bank's application (single or package) with the registry of the unit's city: the one
    place the hub sends `application.requested` for a bank. Idempotent (deterministic delivery ids).

    A seizure recorded on the unit is flagged to the registry with the application, and any recorded
    later while it is open (chalicelib/restrictions.py). The documents are checked again first: one that
    is no longer verified is never sent; the case is refused and its banks told why. True when filed."""
    if case.doc.get("refusal"):
        refuse_case(case, case.doc["refusal"]["event_id"], case.doc["refusal"]["reasons"])  # a re-run tells again
        return False
    try:
        linked = _linked(case)
    except HubError as exc:
        refuse_case(case, source_event_id, [{
            "code": "document_not_verified",
            "message": "; ".join(f"{d['field']}: {d['code']}" for d in exc.details)[:500] or exc.message}])
        return False
    registries = [p for p in (get_directory().get(pid) for pid in case.doc["registry_partner_ids"]) if p]
    cases.index_ref(answers.REQUEST_REF, case.doc["hub_request_id"], case.case_id, case.unit_code)  # before any answer
    for registry in registries:
        restrictions.watch(case.unit_code, case.key_text, FLOW, registry.id, source_event_id,
                           request_id=case.doc["hub_request_id"])
    send(source_event_id, "application", "application.requested",
         {**application, "request_id": case.doc["hub_request_id"], "source_kind": "bank",
          "unit_code": case.unit_code, "documents": linked, "requested_at": now_iso()}, registries, case.ref)
    start_clock(case, registration_stage(case.doc), case.doc["filed"]["at"],
                registries[0].id if len(registries) == 1 else None)
    logger.info("bank application filed", extra={"case_key": case.key_text, "kind": case.doc["kind"],
                                                  "registries": len(registries)})
    metrics.add_metric(name="BankApplicationsFiled", unit="Count", value=1)
    return True


# ---------------------------------------------------------------- the registry's answers

def decided_case(stored: Any, package: bool | None = None) -> Case | None:
    """The case of this flow (a package, a single request, or either) a registry's answer names by request id."""
    case = answers.filed_case(stored.data.get("request_id"), FLOW)
    if case is None:
        return None
    return case if package is None or (case.doc["kind"] == PACKAGE) == package else None


def decide(case: Case, outcome: str, decision: dict[str, Any]) -> Case:
    """Record the registry's first answer; a later, different one changes nothing (first wins)."""
    def record(c: Case) -> Any:
        if c.doc.get("decision"):
            return UNCHANGED
        c.doc["decision"] = {"outcome": outcome, **decision}
        return None

    case, _ = cases.update(case.case_id, case.unit_code, record)
    restrictions.unwatch(case.unit_code, case.key_text)  # decided: no longer an open application
    return case


def booking_of(stored: Any) -> dict[str, Any]:
    data = stored.data
    return {"event_id": stored.event_id, "registry_case_id": data["case_id"], "decided_at": data["booked_at"],
            "certificates": [{k: c[k] for k in ("kind", "number", "e_certificate_id") if k in c}
                             for c in data["certificates"]]}


def new_proof(certificates: list[dict[str, Any]], old_number: str | None, holder_name: str | None
              ) -> dict[str, Any] | None:
    """The registration proof a booking issued for the mortgage: one that is not the old number and
    names the bank, else not the old number, else any proof; None when the booking has no proof."""
    proofs = [c for c in certificates if c["kind"] == "registration_proof"]
    fresh = [c for c in proofs if c["number"] != old_number]
    for pool in ([c for c in fresh if c.get("holder_name") == holder_name], fresh, proofs):
        if pool:
            return pool[0]
    return None


def numbers_only(certificates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Certificates as a party that holds none of them may see them: kind and number."""
    return [{"kind": c["kind"], "number": c["number"]} for c in certificates]


@answers.files_applications(FLOW)
def _filed_with(case: Case, _request_id: str) -> tuple[list[str], str | None]:
    """A bank's case files one application: its registries, and the outcome of its decision."""
    return case.doc["registry_partner_ids"], (case.doc.get("decision") or {}).get("outcome")


@checks("registration.booked")
def _check_preregistration(partner: Any, data: dict[str, Any]) -> None:
    """A pre-registration booked on the registry's own is its city's (answers to the hub's filings:
    answers.py)."""
    if data["service"] == "preregistration" and city_of(data["unit_code"]) != partner.city:
        raise refuse("unit_outside_partner_city", "The unit belongs to another city's registry.", "data.unit_code",
                     "the unit code's city is not the sender's city")


@handles("application.rejected")
def on_application_rejected(stored: Any) -> None:
    """A rejection of a bank's application, single or package: every bank of the case is told."""
    case = decided_case(stored)
    if case is None:
        return
    data = stored.data
    case = decide(case, "rejected", {"event_id": stored.event_id, "decided_at": data["rejected_at"],
                                     "reasons": data["reasons"], "resubmittable": data["resubmittable"]})
    stop_clock(case, registration_stage(case.doc), stored.received_at)
    if case.doc["decision"]["event_id"] != stored.event_id:
        return  # decided by another event (a repeat, or a contradicting answer that lost)
    for proof in claimed_proofs(case.doc):
        unclaim_mortgage(proof, case.key_text)
    tell_banks(case, stored.event_id, "result", "rejected", reasons=data["reasons"], decided_at=data["rejected_at"])
    logger.info("bank application rejected", extra={"case_key": case.key_text})


# ---------------------------------------------------------------- single requests

@checks("mortgage.requested")
def _check_request(partner: Any, data: dict[str, Any]) -> str | None:
    """Every request: the sender is the mortgagee, a registry serves the unit, the documents are the
    sender's verified uploads. A single request also: its id, and the mortgage it acts on."""
    if not partner.uscc or partner.uscc != data["mortgagee"]["uscc"]:
        raise refuse("mortgagee_not_sender", "The mortgagee named is not the sending bank.", "data.mortgagee.uscc",
                     "must be the unified social credit code of the sending bank")
    if not registries_of(data["unit_code"]):
        raise refuse("no_route_target", "No registry partner serves the unit's city.", "data.unit_code",
                     "no registry partner in the unit code's city")
    for field, scan in scans_of(data):
        documents.require_verified_upload(scan["document"], field=field, partner_id=partner.id)
    if data["kind"] == PACKAGE:
        return None  # flows/package.py
    case_id = request_case_id(partner.id, data["request_id"])
    for case in cases.find(case_id):
        if case.unit_code != data["unit_code"] or case.doc["requests"][MORTGAGEE]["digest"] != request_digest(data):
            raise refuse("request_conflict", "This request id was used for another request; use a new one.",
                         "data.request_id", "in use for other content")
        return case.key_text  # the same request again: accepted, changes nothing
    if data["kind"] != "first":
        holder = (data["previous_mortgagee"] if data["kind"] == "transfer" else data["mortgagee"])["uscc"]
        require_mortgage(data["existing_proof_number"], data["unit_code"], holder, "data.existing_proof_number")
    return f"{case_id}#{data['unit_code']}"


@handles("mortgage.requested")
def on_mortgage_requested(stored: Any) -> None:
    data = stored.data
    if data["kind"] == PACKAGE:
        return
    case_id, unit_code = request_case_id(stored.partner_id, data["request_id"]), data["unit_code"]
    registries = [p.id for p in registries_of(unit_code)]
    terms = data.get("terms") or {}
    create = {
        "case_id": case_id, "unit_code": unit_code, "city": city_of(unit_code), "flow": FLOW, "kind": data["kind"],
        "service": "mortgage", "hub_request_id": case_id, "requests": {MORTGAGEE: request_entry(stored)},
        "registry_partner_ids": registries, "participants": sorted({stored.partner_id, *registries}),
        "mortgage": {"existing_proof_number": data.get("existing_proof_number"),
                     "mortgagee_uscc": data["mortgagee"]["uscc"], "mortgagee_name": data["mortgagee"]["name"],
                     "previous_mortgagee_uscc": (data.get("previous_mortgagee") or {}).get("uscc"),
                     "rank": terms.get("rank"), "secured_amount_fen": terms.get("secured_amount_fen"),
                     "mortgage_type": terms.get("mortgage_type")},
        "filed": {"event_id": stored.event_id, "at": stored.received_at}, "decision": None, "refusal": None,
    }
    case, _ = cases.update(case_id, unit_code, lambda c: None if c.is_new else UNCHANGED, create=create)
    if case.doc["requests"][MORTGAGEE]["event_id"] != stored.event_id or case.doc.get("decision"):
        return  # the same request again (the event that made the case files it), or answered already
    if len(cases.find(case_id)) > 1:  # the same request id raced past the door for two units
        refuse_case(case, stored.event_id, [{"code": "request_conflict",
                                             "message": "This request id was used for another request."}])
        return
    old = case.doc["mortgage"]["existing_proof_number"]
    problem = claim_mortgage(old, case.key_text) if old and not case.doc.get("refusal") else None
    if problem:
        refuse_case(case, stored.event_id, [{"code": problem, "message": MORTGAGE_PROBLEMS[problem]}])
        return
    file_application(case, stored.event_id, _single_application(data, old))


def _single_application(data: dict[str, Any], old: str | None) -> dict[str, Any]:
    """One mortgage registration: the bank (抵押权人) as obligee, the mortgagors (and, for a transfer,
    the assigning bank) as obligors; a release of a mortgage a staged package was booked behind
    carries that package and its escrow reference."""
    parties = [_institution_party(data["mortgagee"], "obligee")]
    if data["kind"] == "transfer":
        parties.append(_institution_party(data["previous_mortgagee"], "obligor"))
    parties += [{**m, "role": "obligor"} for m in data.get("mortgagors", [])]
    mortgage = {"mortgagee": data["mortgagee"], "terms": data.get("terms"), "existing_proof_number": old}
    application = {"source_reference": data["request_id"], "service": "mortgage",
                   "registrations": [REGISTRATION_STEP[data["kind"]]], "parties": parties,
                   "mortgages": [{k: v for k, v in mortgage.items() if v is not None}]}
    staged = (mortgage_of(old) or {}).get("staged") if old and data["kind"] == "release" else None
    if staged:
        application["package"] = {k: v for k, v in (("mode", "staged"), ("package_id", staged["package_id"]),
                                                     ("escrow_reference", staged.get("escrow_reference"))) if v}
    return application


@handles("registration.booked")
def on_registration_booked(stored: Any) -> None:
    _share_preregistration(stored)
    case = decided_case(stored, package=False)
    if case is None:
        return
    data = stored.data
    case = decide(case, "booked", booking_of(stored))
    stop_clock(case, "registration", stored.received_at)
    if case.doc["decision"]["event_id"] != stored.event_id:
        return
    mortgage, kind = case.doc["mortgage"], case.doc["kind"]
    old = mortgage["existing_proof_number"]
    proof = new_proof(data["certificates"], old, mortgage["mortgagee_name"])
    if kind == "release":
        record_mortgage(old, case.unit_code, stored.event_id, state=RELEASED)
        proof = proof or {"kind": "registration_proof", "number": old}
        _note_staged_release(old, case, stored)
    elif proof is not None and proof["number"] != old:
        if old:
            record_mortgage(old, case.unit_code, stored.event_id, state=SUPERSEDED)
        record_mortgage(proof["number"], case.unit_code, stored.event_id, mortgagee_uscc=mortgage["mortgagee_uscc"],
                        rank=mortgage["rank"])
    elif old:
        unclaim_mortgage(old, case.key_text)  # the registry kept the proof number
    entry = case.doc["requests"][MORTGAGEE]
    if proof is None:
        tell_banks(case, stored.event_id, "result", "booked", certificates=numbers_only(data["certificates"]),
                   decided_at=data["booked_at"])
        return
    send_registered(case, stored, entry, proof, mortgage["rank"], "registered")


def send_registered(case: Case, stored: Any, entry: dict[str, Any], proof: dict[str, Any], rank: int | None,
                    purpose: str) -> None:
    bank = get_directory().get(entry["partner_id"])
    send(stored.event_id, purpose, "mortgage.registered", {
        "request_id": entry["request_id"], "case_id": case.case_id, "registry_case_id": stored.data["case_id"],
        "unit_code": case.unit_code, "kind": case.doc["kind"], "package_id": case.doc.get("package_id"),
        "proof": proof, "rank": rank, "booked_at": stored.data["booked_at"]}, [bank] if bank else [], case.ref)
    metrics.add_metric(name="MortgagesRegistered", unit="Count", value=1)


def _note_staged_release(proof_number: str, release: Case, stored: Any) -> None:
    """The old mortgage of a staged package is released (after payoff): the package case shows it."""
    link = (mortgage_of(proof_number) or {}).get("staged")
    package = cases.load(link["case_id"], link["unit_code"]) if link else None
    if package is None:
        return

    def record(c: Case) -> Any:
        if c.doc.get("old_mortgage_released"):
            return UNCHANGED
        c.doc["old_mortgage_released"] = {"case_id": release.case_id, "event_id": stored.event_id,
                                          "booked_at": stored.data["booked_at"]}
        return None

    cases.update(package.case_id, package.unit_code, record)


# ---------------------------------------------------------------- the register's facts

@handles("restriction.recorded")
def on_restriction_recorded(stored: Any) -> None:
    """A registry records or lifts a mortgage: the index learns it (with the mortgagee's uscc, if given)."""
    data = stored.data
    if data["restriction_type"] != "mortgage" or not data.get("proof_number") or data["action"] == "renewed":
        return
    sender = get_directory().get(stored.partner_id)
    if sender is None or sender.city != city_of(data["unit_code"]):
        logger.warning("mortgage record for a unit of another city ignored", extra={"event_id": stored.event_id})
        return
    if data["action"] == "recorded":
        record_mortgage(data["proof_number"], data["unit_code"], stored.event_id,
                        mortgagee_uscc=data.get("holder_uscc"), rank=data.get("rank"))
    else:
        record_mortgage(data["proof_number"], data["unit_code"], stored.event_id, state=RELEASED)


def _share_preregistration(stored: Any) -> None:
    """A booked pre-registration: the same preregistration.shared to the buyer's bank and to tax, once."""
    data = stored.data
    facts = data.get("preregistration")
    if data["service"] != "preregistration" or not facts:
        return
    case_id, unit_code = data["case_id"], data["unit_code"]
    marker = {"event_id": stored.event_id, "unit_code": unit_code, "at": time.time()}
    if not cases.put_once(case_id, unit_code, "shared", "preregistration", marker):
        if not any(m.get("event_id") == stored.event_id for m in cases.items(case_id, unit_code, "shared")):
            return  # shared by an earlier booking event (the same fact under another webhook-id)
    proof = new_proof(data["certificates"], None, None) or data["certificates"][0]
    shared = {"case_id": case_id, "unit_code": unit_code, "kind": facts["kind"], "proof": proof,
              "obligees": data["obligees"], "mortgagee": facts.get("buyer_bank"),
              "secured_amount_fen": facts.get("secured_amount_fen"), "contract_number": facts.get("contract_number"),
              "price_fen": facts.get("price_fen"), "booked_at": data["booked_at"]}
    shared = {k: v for k, v in shared.items() if v is not None}
    ref = (case_id, unit_code)
    if facts.get("buyer_bank"):
        send(stored.event_id, "preregistration-bank", "preregistration.shared", shared,
             banks_with(facts["buyer_bank"]["uscc"]), ref)
    send(stored.event_id, "preregistration-tax", "preregistration.shared", shared,
         get_directory().find("tax", city=city_of(unit_code)), ref)
    metrics.add_metric(name="PreregistrationsShared", unit="Count", value=1)


# ---------------------------------------------------------------- the read

def stage(doc: dict[str, Any]) -> str:
    """Where a bank's case stands, derived from its facts."""
    if doc.get("refusal"):
        return "refused"
    if doc.get("decision"):
        return doc["decision"]["outcome"]
    if doc.get("closed"):
        return "timed_out"
    if doc.get("filed"):
        return "filed"
    return "awaiting_consent"


@views(FLOW)
def view(case: Case) -> dict[str, Any]:
    """For the registry and the case's bank(s): requests, mortgage facts, filing, answer and the
    timeline; never names, ID numbers or phones."""
    doc = case.doc
    decision = doc.get("decision") or {}
    shown = {
        "case_id": case.case_id, "unit_code": case.unit_code, "city": doc["city"], "flow": doc["flow"],
        "kind": doc["kind"], "service": doc["service"], "stage": stage(doc), "participants": doc["participants"],
        "requests": [{"role": role, "partner_id": e["partner_id"], "request_id": e["request_id"],
                      "received_at": iso(e["received_at"]), "documents": len(e["scans"])}
                     for role, e in sorted(doc["requests"].items())],
        "filed_at": iso(doc["filed"]["at"]) if doc.get("filed") else None,
        "decision": {"outcome": decision["outcome"], "registry_case_id": decision.get("registry_case_id"),
                     "decided_at": decision.get("decided_at"),
                     "certificate_numbers": [c["number"] for c in decision.get("certificates", [])],
                     "reasons": [r["code"] for r in decision.get("reasons", [])]} if decision else None,
        "refusal": [r["code"] for r in doc["refusal"]["reasons"]] if doc.get("refusal") else None,
        "timeline": cases.timeline(case.case_id, case.unit_code),
    }
    if doc["kind"] == PACKAGE:
        from chalicelib.flows.package import package_view

        shown["package"] = package_view(doc)
    else:
        shown["mortgage"] = {k: v for k, v in doc["mortgage"].items() if k != "mortgagee_name"}
    return shown
