"""Authorization, measured (issue 6): every route of app.py against every partner, as the party, a
stranger and another city's partner of the same kind; every cell that must be denied is denied.

The cells come from data, so a new route, kind or event type shows up as a missing cell:
- routes: `ROUTES` must equal app.py's routes, each with the tests that hold its cells;
- partner kinds: `chalicelib.models.kinds.PARTNER_KINDS`; the directory below has every kind in two
  cities (partners_doc of tests/support.py, plus a city office in two cities, a Beijing utility and
  a Beijing notary), and the families together have a party of every kind;
- event types: `EVENT_SPECS` (inbound): every type against every partner whose kind may not send it
  (403), and every type a party sends in a family's flow (except `OWN_FACTS`).

Reads (`/v1/cases`, `/v1/relays`, `/v1/inquiries`, `/v1/audit/...`): one rule, the same 404 as for a
reference that does not exist for anyone who does not take part (never a 403 that tells it exists).
Writes: the cases are built through the flows with the flow tests' own helpers (tests/test_*_flow.py),
and every event a party sends is first (and again after) sent, byte for byte the same, by every other
partner that may send that type: each copy must be refused with 403/422, with nothing stored and
nothing delivered. Every partner is on the canonical mapping here, so a copy can only fail for who
sends it. Every signed POST is also tried against every other partner's path (401).

The figures go to build/reliability/authorization.json: cells checked, cells that must be denied,
leaks (a cell that must be denied and answered 2xx, stored something or showed data), existence
revealed (denied, but not with the not-found answer) and over-denials (a party refused).
Rerun: `.venv/bin/python -m pytest -q -n 2 -p no:cacheprovider tests/test_authorization_matrix.py`.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import boto3
import pytest
from standardwebhooks import Webhook

from chalicelib.models.examples import SZ_UNIT
from chalicelib.models.kinds import PARTNER_KINDS
from tests.support import envelope, new_secret, partners_doc, secret_of, sign_request
from tests.test_audit_log import Audited
from tests.test_inquiry_flow import ORDER
from tests.test_inquiry_flow import answer as inquiry_answer
from tests.test_inquiry_flow import inquiry
from tests.test_mortgage_flow import CMB, ICBC, OLD_PROOF, Banks, terms
from tests.test_notary_flow import CERTIFICATE, KINSHIP, Notaries, booked, notarization
from tests.test_relay_flow import (PDF, PDF2, Relays, accepted, assist, collected, completed, originals, rejected,
                                   session, start, unit_of)
from tests.test_seizure_flow import (BJ_UNIT, SUBJECT, Courts, recorded, release, seized, seizure_case_id,
                                     transfer_to_cleared)
from tests.test_transfer_flow import NOW, application, assessment, bill_for
from tests.test_utility_flow import Utilities, completed as utility_done, failed as utility_failed

REPO = Path(__file__).resolve().parent.parent
REPORT = REPO / "build" / "reliability" / "authorization.json"
COMMAND = ".venv/bin/python -m pytest -q -n 2 -p no:cacheprovider tests/test_authorization_matrix.py"

# --------------------------------------------------------------------------------------------------
# the routes of app.py, each with what holds its cells

PUBLIC, SIGNED_WRITE, SIGNED_READ, OPERATOR = "public", "signed write", "signed read", "operator"
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/v1/catalog"): PUBLIC,
    ("GET", "/v1/openapi.json"): PUBLIC,
    ("GET", "/console"): PUBLIC,  # static files and the public sign-in settings: no data, no secret
    ("GET", "/console/{name}"): PUBLIC,
    ("POST", "/v1/partners/{partner_id}/events"): SIGNED_WRITE,
    ("POST", "/v1/partners/{partner_id}/documents"): SIGNED_WRITE,
    ("GET", "/v1/cases/{case_id}"): SIGNED_READ,
    ("GET", "/v1/relays/{relay_id}"): SIGNED_READ,
    ("GET", "/v1/inquiries/{inquiry_id}"): SIGNED_READ,
    ("GET", "/v1/audit/checkpoint"): SIGNED_READ,
    ("GET", "/v1/audit/inclusion/{ref}"): SIGNED_READ,
    ("GET", "/v1/audit/inclusion/{ref}/{tree_size}"): SIGNED_READ,
    ("GET", "/v1/audit/consistency/{first}/{second}"): SIGNED_READ,
    ("GET", "/v1/ops/{resource}"): OPERATOR,
    ("GET", "/v1/ops/{resource}/{ref}"): OPERATOR,
    ("POST", "/v1/ops/{resource}/{ref}"): OPERATOR,
    ("POST", "/v1/ops/{resource}/{ref}/{action}"): OPERATOR,
}
EVENTS, DOCUMENTS = "/v1/partners/{partner_id}/events", "/v1/partners/{partner_id}/documents"
# What a subject is read through; the audit routes are read for the leaves of every subject.
READ_ROUTE = {"case": "/v1/cases/{case_id}", "relay": "/v1/relays/{relay_id}",
              "inquiry": "/v1/inquiries/{inquiry_id}", "assist": None}
INCLUSION, INCLUSION_AT = "/v1/audit/inclusion/{ref}", "/v1/audit/inclusion/{ref}/{tree_size}"
CHECKPOINT, CONSISTENCY = "/v1/audit/checkpoint", "/v1/audit/consistency/{first}/{second}"
SAMPLE = {"partner_id": "sz-registry", "case_id": "AUTH-NONE-1", "relay_id": "RC-NONE-1", "inquiry_id": "INQ-NONE-1",
          "ref": "evt_none", "tree_size": "1", "first": "0", "second": "1", "name": "index.html",
          "resource": "session", "action": "replay"}


def concrete(template: str, **values: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), SAMPLE[m.group(1)])), template)


# The one inbound type no party sends for another: a platform's settlement file is about its own
# ledger, so the same file from another platform is that platform's own (tests/test_transfer_flow.py).
OWN_FACTS = {"settlement.ready"}
# A type whose id is the first sender's: an inquiry id another asker sent first is its own inquiry,
# so the copies are sent after the party's (and must then be refused: the id is in use).
FIRST_COME = {"inquiry.requested"}


# --------------------------------------------------------------------------------------------------
# the partner directory: every kind in two cities, all on the canonical mapping

EXTRA_PARTNERS = [("sz-office", "city_office", "440300", {}), ("bj-office", "city_office", "110000", {}),
                  ("bj-water", "utility", "110000", {"utility": "water"}), ("bj-notary", "notary", "110000", {})]


def matrix_partners(endpoint_base: str) -> dict:
    doc = partners_doc(endpoint_base)
    for record in doc["partners"]:
        record["mapping"] = "canonical"
    doc["partners"] += [{"id": pid, "kind": kind, "city": city, "secrets": [new_secret()], "mapping": "canonical",
                         "endpoint": f"{endpoint_base}/{pid}", **extra} for pid, kind, city, extra in EXTRA_PARTNERS]
    return doc


@pytest.fixture
def partners(tmp_path, monkeypatch, receiver):
    """Overrides conftest's: the matrix directory, read from a partners file."""
    from chalicelib.settings import reset_settings

    doc = matrix_partners(f"http://127.0.0.1:{receiver.port}")
    path = tmp_path / "partners.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setenv("HUB_PARTNER_SOURCE", "file")
    monkeypatch.setenv("HUB_PARTNERS", str(path))
    monkeypatch.setenv("HUB_AUDIT_RUN_SECONDS", "0")
    reset_settings()
    return doc


# --------------------------------------------------------------------------------------------------
# counting cells

OK, LEAK, REVEALED, OVER_DENIED, WRONG_ANSWER = "ok", "leak", "existence_revealed", "over_denied", "wrong_answer"


class Tally:
    """Cells of one test: (route, relation, must be denied, verdict) counted; every verdict but `ok` a failure."""

    def __init__(self, section: str):
        self.section = section
        self.counts: Counter = Counter()
        self.failures: list[str] = []
        self.state_changes = 0  # batches of refused requests after which the hub's tables differed

    def changed(self, detail: str) -> None:
        self.state_changes += 1
        self.failures.append(f"state changed by refused requests: {detail}"[:400])

    def cell(self, route: str, relation: str, must_deny: bool, verdict: str, detail: str = "") -> None:
        self.counts[route, relation, must_deny, verdict] += 1
        if verdict != OK:
            self.failures.append(f"{verdict}: {route} as {relation}: {detail}"[:400])

    def figures(self) -> dict[str, Any]:
        def total(pick: Callable[[tuple], bool]) -> int:
            return sum(n for key, n in self.counts.items() if pick(key))

        def breakdown(index: int) -> dict[str, dict[str, int]]:
            names = sorted({key[index] for key in self.counts})
            return {name: {"cells": total(lambda k: k[index] == name),
                           "must_deny": total(lambda k: k[index] == name and k[2]),
                           "leaks": total(lambda k: k[index] == name and k[3] == LEAK)} for name in names}

        return {"cells": total(lambda k: True), "must_deny": total(lambda k: k[2]),
                "denied_as_required": total(lambda k: k[2] and k[3] == OK),
                "leaks": total(lambda k: k[3] == LEAK), "existence_revealed": total(lambda k: k[3] == REVEALED),
                "over_denied": total(lambda k: k[3] == OVER_DENIED),
                "wrong_answers": total(lambda k: k[3] == WRONG_ANSWER),
                "refusals_that_changed_state": self.state_changes,
                "by_route": breakdown(0), "by_relation": breakdown(1)}

    def finish(self) -> None:
        """Record the figures (even of a failing run), then fail on any cell that was not right."""
        record(self.section, self.figures())
        assert not self.failures, f"{len(self.failures)} cells wrong:\n" + "\n".join(self.failures[:40])


def record(section: str, figures: dict[str, Any]) -> None:
    """Merge one test's figures into the report; xdist workers write it in turn (an exclusive lock)."""
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with open(REPORT, "a+", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        text = fh.read()
        found = json.loads(text) if text.strip() else {}
        sections = {**found.get("sections", {}), section: figures}
        keys = ("cells", "must_deny", "denied_as_required", "leaks", "existence_revealed", "over_denied",
                "wrong_answers", "refusals_that_changed_state")
        totals = {key: sum(s[key] for s in sections.values()) for key in keys}
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"command": COMMAND, "totals": totals, "sections": sections}, indent=1, sort_keys=True))


def signed_get(hub, doc: dict, partner_id: str, path: str, claim: str | None = None, signed_path: str | None = None,
               nonce: str | None = None, timestamp: int | None = None) -> tuple[int, dict]:
    """A partner's signed read (chalicelib/reads.py), signed with its own secret; `claim` puts another
    partner's id in hub-partner-id, `signed_path` signs another path than the one requested."""
    nonce = nonce or f"read_{uuid.uuid4().hex}"
    stamp = int(time.time()) if timestamp is None else timestamp
    signature = Webhook(secret_of(doc, partner_id)).sign(nonce, datetime.fromtimestamp(stamp, tz=timezone.utc),
                                                         f"GET {signed_path or path}")
    response = hub.http.get(path, headers={"hub-partner-id": claim or partner_id, "webhook-id": nonce,
                                           "webhook-timestamp": str(stamp), "webhook-signature": signature})
    return response.status_code, json.loads(response.body)


# --------------------------------------------------------------------------------------------------
# relations


@dataclass
class Subject:
    """A case, relay, inquiry or assistance request a family builds, and who takes part in it."""

    route: str  # a key of READ_ROUTE
    ref: str
    unit: str | None
    parties: frozenset[str]
    # Parties that may not read it: the utilities asked for a transfer are not participants of the case
    # (chalicelib/flows/utility.py: the read carries amounts); they see only their own audit leaves.
    not_readers: frozenset[str] = frozenset()
    events: dict[str, str] = field(default_factory=dict)  # event id -> sender
    deliveries: set[str] = field(default_factory=set)

    @property
    def readers(self) -> frozenset[str]:
        return self.parties - self.not_readers


def relation(partner: dict, parties: frozenset[str], directory: dict[str, dict]) -> str:
    """party; other_city_same_kind (a partner of a party's kind, in another city than that party);
    stranger (another kind, or the same kind in the same city taking no part)."""
    if partner["id"] in parties:
        return "party"
    if any(directory[p]["kind"] == partner["kind"] and directory[p]["city"] != partner["city"] for p in parties):
        return "other_city_same_kind"
    return "stranger"


def write_relation(partner: dict, sender: str, subject: Subject | None, directory: dict[str, dict]) -> str:
    """How a partner that copies a party's event stands to it: another party of the same subject, or
    a partner of the sender's kind in another city, or a stranger (same kind and city, or another kind)."""
    if subject is not None and partner["id"] in subject.parties:
        return "other_party"
    return relation(partner, frozenset({sender}), directory)


# --------------------------------------------------------------------------------------------------
# a flow test's helpers, watched


class Watched:
    """Mixed in before a flow test's helper class (Relays and its subclasses): every event a party
    sends is copied by every other partner that may send its type, before (except FIRST_COME) and
    after the party's own send, and signed by the party against every other partner's path; every
    upload is signed against every other partner's path. Each copy must be refused, storing and
    delivering nothing. Events and deliveries are attributed to the subject being built."""

    def __init__(self, hub, partners, tally: Tally):
        super().__init__(hub, partners)
        self.tally = tally
        self.directory = {p["id"]: p for p in partners["partners"]}
        self.current: Subject | None = None
        self.sent_types: set[str] = set()

    # -- AWS state that a refused request must leave as it was
    def snapshot(self) -> dict[str, int]:
        from chalicelib.settings import get_settings

        s = get_settings()
        client = boto3.client("dynamodb")
        return {name: client.scan(TableName=name, Select="COUNT")["Count"]
                for name in (s.events_table, s.deliveries_table, s.cases_table, s.documents_table)}

    def delivery_ids(self) -> set[str]:
        from chalicelib.settings import get_settings

        items = boto3.client("dynamodb").scan(TableName=get_settings().deliveries_table,
                                              ProjectionExpression="delivery_id")["Items"]
        return {i["delivery_id"]["S"] for i in items}

    @contextlib.contextmanager
    def about(self, subject: Subject):
        before = self.delivery_ids()
        self.current = subject
        try:
            yield subject
        finally:
            self.current = None
            subject.deliveries |= self.delivery_ids() - before

    # -- signed POSTs
    def signed_post(self, signer: str, path_partner: str, route: str, body: str) -> tuple[int, dict, str]:
        headers = sign_request(secret_of(self.partners, signer), body)
        response = self.hub.http.post(concrete(route, partner_id=path_partner), body=body.encode(), headers=headers)
        return response.status_code, json.loads(response.body or b"{}"), headers["webhook-id"]

    def refuse(self, signer: str, path_partner: str, route: str, body: str, relation_: str, allowed: tuple[int, ...],
               detail: str) -> None:
        """One write cell that must be denied: an allowed refusal status and nothing stored under its webhook-id."""
        from chalicelib import event_store

        status, answer, msg_id = self.signed_post(signer, path_partner, route, body)
        stored = route == EVENTS and event_store.get(path_partner, msg_id) is not None
        code = answer.get("error", {}).get("code")
        verdict = LEAK if 200 <= status < 300 or stored else OK if status in allowed else WRONG_ANSWER
        self.tally.cell(f"POST {route}", relation_, True, verdict, f"{detail}: {status} {code}")

    def forged_paths(self, signer: str, route: str, body: str, detail: str) -> None:
        for other in self.directory:
            if other != signer:
                self.refuse(signer, other, route, body, "forged_path", (401,),
                            f"{signer} signing for {other}: {detail}")

    def copies(self, sender: str, event_type: str, data: dict, when: str) -> None:
        from chalicelib.models import EVENT_SPECS

        senders = EVENT_SPECS[event_type, "inbound"].senders
        body = envelope(event_type, data)
        before = self.snapshot()
        for other in self.directory.values():
            if other["id"] != sender and other["kind"] in senders:
                self.refuse(other["id"], other["id"], EVENTS, body,
                            write_relation(other, sender, self.current, self.directory), (403, 422),
                            f"{other['id']} copying {sender}'s {event_type} ({when})")
        self.pump()
        after = self.snapshot()
        if after != before:
            self.tally.changed(f"copies of {sender}'s {event_type} ({when}): {before} -> {after}")

    def deny(self, signer: str, event_type: str, data: dict, detail: str) -> None:
        """A crafted attempt by a partner that is not the party (e.g. a bank releasing another's mortgage
        in its own name): refused with 403/422, nothing stored, nothing delivered."""
        before = self.snapshot()
        self.refuse(signer, signer, EVENTS, envelope(event_type, data),
                    relation(self.directory[signer], self.current.parties, self.directory) + "_crafted",
                    (403, 422), detail)
        self.pump()
        if self.snapshot() != before:
            self.tally.changed(detail)

    # -- the helpers' own sends and uploads, watched
    def send(self, partner_id: str, event_type: str, data: dict) -> dict:
        if event_type not in FIRST_COME:
            self.copies(partner_id, event_type, data, "before")
        before = self.snapshot()
        self.forged_paths(partner_id, EVENTS, envelope(event_type, data), event_type)
        if self.snapshot() != before:
            self.tally.changed(f"{partner_id}'s {event_type} signed for other paths")
        answer = super().send(partner_id, event_type, data)
        self.tally.cell(f"POST {EVENTS}", "party", False, OK)
        self.sent_types.add(event_type)
        if self.current is not None:
            self.current.events[answer["event_id"]] = partner_id
        self.copies(partner_id, event_type, data, "after")
        return answer

    def upload(self, partner_id: str, data: bytes = PDF, *args, **kwargs) -> dict:
        import hashlib

        body = json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                           "media_type": kwargs.get("media_type", "application/pdf")})
        before = self.snapshot()
        self.forged_paths(partner_id, DOCUMENTS, body, "upload slot")
        if self.snapshot() != before:
            self.tally.changed(f"{partner_id}'s upload slot signed for other paths")
        reference = super().upload(partner_id, data, *args, **kwargs)
        self.tally.cell(f"POST {DOCUMENTS}", "party", False, OK)
        return reference

    def get(self, partner_id: str, path: str, **kwargs: Any) -> tuple[int, dict]:
        return signed_get(self.hub, self.partners, partner_id, path, **kwargs)

    # the audit log, as tests/test_audit_log.py drives it
    deliveries = Audited.deliveries
    deliver = Audited.deliver
    sequence = Audited.sequence


def world_of(helper: type, hub, partners, tally: Tally) -> Any:
    return type(f"Watched{helper.__name__}", (Watched, helper), {})(hub, partners, tally)


# --------------------------------------------------------------------------------------------------
# the families: cases built through the flows, with the flow tests' helpers

BJ_PARTIES = frozenset({"bj-registry", "bj-tax", "bj-fiscal", "bj-pay"})
SZ_PARTIES = frozenset({"sz-registry", "sz-tax", "sz-fiscal", "sz-ccb-govpay"})
SZ_UTILITIES = frozenset({"sz-water", "sz-power", "sz-gas"})


def build_transfer(w) -> list[Subject]:
    """The one-window transfer in Beijing, closed; another rejected by its registry; a Shenzhen case,
    its payment failed and a refund held; a Shenzhen case under the Beijing case's number: each city's
    partners see their own case of that number only. (Bills and receipts name no unit: the sender's
    city tells the cases of one number apart, so the copied ones are of cases with their own numbers.)"""
    bj = Subject("case", "AUTH-T1", BJ_UNIT, BJ_PARTIES)
    with w.about(bj):
        transfer_to_cleared(w, "AUTH-T1")
        [bill] = w.sent("nontax.bill_requested", "bj-fiscal", case_id="AUTH-T1")
        w.send("bj-fiscal", "nontax.receipt_issued", {
            "case_id": "AUTH-T1", "bill_no": f"B-{bill['request_id']}", "payment_code": "PC1",
            "receipt_number": "0012345678", "total_fen": bill["total_fen"], "issued_at": NOW()})
        w.send("bj-registry", "registration.booked", {
            "case_id": "AUTH-T1", "unit_code": BJ_UNIT, "service": "transfer", "booked_at": NOW(),
            "certificates": [{"kind": "ownership_certificate", "number": "京(2026)朝阳区不动产权第0012345号"}]})
    refused = Subject("case", "AUTH-T3", BJ_UNIT, BJ_PARTIES)
    with w.about(refused):
        w.send("bj-registry", "application.submitted", application("AUTH-T3", "each_pays_own"))
        w.send("bj-registry", "application.rejected", {
            "case_id": "AUTH-T3", "unit_code": BJ_UNIT, "resubmittable": False, "rejected_at": NOW(),
            "reasons": [{"code": "missing_material", "message": "缺少完税证明"}]})

    def here(data: dict) -> dict:
        return {**data, "unit_code": SZ_UNIT}

    sz = Subject("case", "AUTH-T2", SZ_UNIT, SZ_PARTIES)
    with w.about(sz):
        w.send("sz-registry", "application.submitted", here(application("AUTH-T2", "obligee_pays_all")))
        for request in w.sent("nontax.bill_requested", "sz-fiscal", case_id="AUTH-T2"):
            w.send("sz-fiscal", "nontax.bill_issued", bill_for(request))
        w.send("sz-tax", "tax.assessed", here(assessment("AUTH-T2")))
        [order] = w.sent("payment.order_requested", "sz-ccb-govpay", case_id="AUTH-T2")
        w.send("sz-ccb-govpay", "payment.failed", {"order_id": order["order_id"], "reason_code": "expired",
                                                   "failed_at": NOW()})
        line = order["tax_lines"][0]
        w.send("sz-ccb-govpay", "payment.refunded", {
            "order_id": order["order_id"], "refund_id": "R-AUTH-1", "total_fen": line["amount_fen"], "whole": False,
            "lines": [{"sub_order_id": line["sub_order_id"], "amount_fen": line["amount_fen"]}], "refunded_at": NOW()})
    same_number = Subject("case", "AUTH-T1", SZ_UNIT, SZ_PARTIES)
    with w.about(same_number):
        w.send("sz-registry", "application.submitted", here(application("AUTH-T1", "obligee_pays_all")))
    return [bj, refused, sz, same_number]


def build_utility(w) -> list[Subject]:
    """A booked Shenzhen transfer asks its three utilities; each answers its own request."""
    case = Subject("case", "AUTH-UT", SZ_UNIT, SZ_PARTIES | SZ_UTILITIES, not_readers=SZ_UTILITIES)
    with w.about(case):
        asked = w.book("AUTH-UT")
        w.send("sz-water", "utility.transfer_completed", utility_done(asked["water"]))
        w.send("sz-power", "utility.transfer_failed", utility_failed(asked["electricity"]))
        w.send("sz-gas", "utility.transfer_completed", utility_done(asked["gas"]))
    return [case]


def build_mortgage(w) -> list[Subject]:
    """CCB's first mortgage (booked), a change (rejected) and the release (booked); CMB and ICBC try
    to release it in their own names."""
    proof = "粤(2026)深圳市不动产证明第0000901号"
    first = Subject("case", "MTG_sz-ccb_CCB-AUTH-1", SZ_UNIT, frozenset({"sz-ccb", "sz-registry"}))
    with w.about(first):
        w.register_first("sz-ccb", proof, request_id="CCB-AUTH-1")
    change = Subject("case", "MTG_sz-ccb_CCB-AUTH-2", SZ_UNIT, frozenset({"sz-ccb", "sz-registry"}))
    with w.about(change):
        request = w.request("sz-ccb", "change", existing_proof_number=proof, terms=terms(contract="DY-AUTH-2"),
                            request_id="CCB-AUTH-2")
        w.send("sz-ccb", "mortgage.requested", request)
        w.send("sz-registry", "application.rejected", w.reject(w.filed(request, "sz-ccb")))
    done = Subject("case", "MTG_sz-ccb_CCB-AUTH-3", SZ_UNIT, frozenset({"sz-ccb", "sz-registry"}))
    with w.about(done):
        for bank in ("sz-cmb", "bj-icbc"):
            w.deny(bank, "mortgage.requested", w.request(bank, "release", existing_proof_number=proof),
                   f"{bank} releasing sz-ccb's mortgage in its own name")
        request = w.request("sz-ccb", "release", existing_proof_number=proof, request_id="CCB-AUTH-3")
        w.send("sz-ccb", "mortgage.requested", request)
        w.send("sz-registry", "registration.booked",
               w.booking(w.filed(request, "sz-ccb"), ["粤(2026)深圳市不动产证明第0000902号"]))
    return [first, change, done]


def build_package(w) -> list[Subject]:
    """A combined 带押过户 package: CCB (new) and CMB (old) consent, the registry books; ICBC consents
    as the old bank of a package that names CMB."""
    w.record_mortgage(OLD_PROOF, CMB)  # the registry's record of the seller's mortgage: no case of it
    package = Subject("case", "PKG_PKG-AUTH-1", SZ_UNIT, frozenset({"sz-ccb", "sz-cmb", "sz-registry"}))
    with w.about(package):
        w.send("sz-ccb", "mortgage.requested", w.package("sz-ccb", "new_mortgagee", package_id="PKG-AUTH-1"))
        w.deny("bj-icbc", "mortgage.requested",
               w.package("bj-icbc", "old_mortgagee", package_id="PKG-AUTH-1", old_bank=ICBC),
               "bj-icbc consenting as the old bank of a package that names sz-cmb")
        w.send("sz-cmb", "mortgage.requested", w.package("sz-cmb", "old_mortgagee", package_id="PKG-AUTH-1"))
        [filed] = w.package_filed("PKG-AUTH-1")
        w.send("sz-registry", "registration.booked",
               w.booking(filed, ["粤(2026)深圳市不动产证明第0000903号"], ownership=True))
    return [package]


def build_notary(w) -> list[Subject]:
    from chalicelib.flows.notary import case_id_for

    case = Subject("case", case_id_for("sz-notary", "NZ-AUTH-1"), SZ_UNIT, frozenset({"sz-notary", "sz-registry"}))
    with w.about(case):
        certificate, kinship = w.upload("sz-notary", CERTIFICATE), w.upload("sz-notary", KINSHIP)
        w.send("sz-notary", "notarization.completed", notarization("NZ-AUTH-1", certificate, [kinship]))
        [request] = w.filed()
        w.send("sz-registry", "registration.booked", booked(request))
    return [case]


def build_seizure(w) -> list[Subject]:
    """bj-court seizes a Beijing unit and releases it; sz-court tries to release it in its own name."""
    order, restriction = "(2026)京0105执保901号", "CF-110105-2026-0901"
    case = Subject("case", seizure_case_id(order), BJ_UNIT, frozenset({"bj-court", "bj-registry"}))
    with w.about(case):
        seized(w, order, restriction)
        other = release("(2026)粤0305执保901号", order, papers=w.papers("sz-court"))
        other["court"] = {"name": "深圳市中级人民法院", "uscc": w.directory["sz-court"]["uscc"]}
        w.deny("sz-court", "seizure.ordered", other, "sz-court releasing bj-court's seizure in its own name")
        w.send("bj-court", "seizure.ordered", release("(2026)京0105执保901号之一", order, papers=w.papers("bj-court")))
        w.send("bj-registry", "restriction.recorded", recorded("(2026)京0105执保901号之一", restriction,
                                                               action="released", kind=None, rank=None,
                                                               valid_until=None))
    return [case]


def build_inquiry(w) -> list[Subject]:
    """A court's inquiry about a Beijing unit and a bank's about a person in Shenzhen, each answered."""
    court = Subject("inquiry", "INQ-AUTH-1", BJ_UNIT, frozenset({"bj-court", "bj-registry"}))
    with w.about(court):
        w.send("bj-court", "inquiry.requested", inquiry("INQ-AUTH-1", document=w.upload("bj-court", ORDER)))
        w.send("bj-registry", "inquiry.answered", inquiry_answer("INQ-AUTH-1"))
    bank = Subject("inquiry", "INQ-AUTH-2", None, frozenset({"sz-ccb", "sz-registry"}))
    with w.about(bank):
        w.send("sz-ccb", "inquiry.requested", inquiry("INQ-AUTH-2", basis="owner_consent", unit_code=None,
                                                      subject=SUBJECT))
        w.send("sz-registry", "inquiry.answered", inquiry_answer("INQ-AUTH-2", unit_code=SZ_UNIT))
    return [court, bank]


def build_relay(w) -> list[Subject]:
    """bj-office relays a Shenzhen unit: rejected, resubmitted, accepted, originals, completed; and an
    assisted online session for another Shenzhen unit."""
    relay = Subject("relay", "RC-AUTH-1", unit_of("440300"), frozenset({"bj-office", "sz-registry"}))
    with w.about(relay):
        start(w, "110000", "440300", "RC-AUTH-1")
        w.send("sz-registry", "relay.rejected", rejected("RC-AUTH-1"))
        w.send("bj-office", "relay.collected",
               collected("110000", unit_of("440300"), "RC-AUTH-1", [w.upload("bj-office", PDF2)], attempt=2))
        w.send("sz-registry", "relay.accepted", accepted("RC-AUTH-1", attempt=2))
        w.send("sz-registry", "relay.originals_received", originals("RC-AUTH-1"))
        w.send("sz-registry", "relay.completed", completed("RC-AUTH-1"))
    helped = Subject("assist", "AS-AUTH-1", unit_of("440300"), frozenset({"bj-office", "sz-registry"}))
    with w.about(helped):
        w.send("bj-office", "assist.requested", assist("110000", unit_of("440300"), "AS-AUTH-1"))
        w.send("sz-registry", "assist.session_opened", session("AS-AUTH-1"))
    return [relay, helped]


@dataclass(frozen=True)
class Family:
    helper: type
    build: Callable[[Any], list[Subject]]
    party_kinds: frozenset[str]  # checked against the subjects built
    writes: frozenset[str]  # the inbound types its parties send, checked against what they sent
    reads: frozenset[str] = frozenset({"case"})  # the READ_ROUTE keys of its subjects, checked likewise


FAMILIES: dict[str, Family] = {
    "transfer": Family(Courts, build_transfer, frozenset({"registry", "tax", "fiscal", "payment"}), frozenset({
        "application.submitted", "nontax.bill_issued", "tax.assessed", "payment.succeeded", "tax.cleared",
        "nontax.receipt_issued", "registration.booked", "application.rejected", "payment.failed",
        "payment.refunded"})),
    "utility": Family(Utilities, build_utility, frozenset({"registry", "tax", "fiscal", "payment", "utility"}),
                      frozenset({"application.submitted", "registration.booked", "utility.transfer_completed",
                                 "utility.transfer_failed"})),
    "mortgage": Family(Banks, build_mortgage, frozenset({"bank", "registry"}), frozenset({
        "mortgage.requested", "registration.booked", "application.rejected"})),
    "package": Family(Banks, build_package, frozenset({"bank", "registry"}), frozenset({
        "restriction.recorded", "mortgage.requested", "registration.booked"})),
    "notary": Family(Notaries, build_notary, frozenset({"notary", "registry"}), frozenset({
        "notarization.completed", "registration.booked"})),
    "seizure": Family(Courts, build_seizure, frozenset({"court", "registry"}), frozenset({
        "seizure.ordered", "restriction.recorded"})),
    "inquiry": Family(Courts, build_inquiry, frozenset({"court", "bank", "registry"}), frozenset({
        "inquiry.requested", "inquiry.answered"}), frozenset({"inquiry"})),
    "relay": Family(Relays, build_relay, frozenset({"city_office", "registry"}), frozenset({
        "relay.collected", "relay.rejected", "relay.accepted", "relay.originals_received", "relay.completed",
        "assist.requested", "assist.session_opened"}), frozenset({"relay", "assist"})),
}


# --------------------------------------------------------------------------------------------------
# read cells


def _shown(route: str, body: dict) -> set:
    """The units a successful read shows."""
    if route == "case":
        return {c["unit_code"] for c in body["cases"]}
    return {body[route]["unit_code"]}


def read_cells(w, subjects: list[Subject]) -> None:
    """Every partner reads every subject on its route: a reader gets it (its own case of that number
    only), anyone else the answer it gets for a reference that does not exist. Then signatures that
    are not the reader's: another partner's id claimed, a signature over another path, none."""
    missing = {"case": "AUTH-NONE-1", "relay": "RC-NONE-1", "inquiry": "INQ-NONE-1"}
    groups: dict[tuple[str, str], list[Subject]] = {}
    for subject in subjects:
        if READ_ROUTE[subject.route]:
            groups.setdefault((subject.route, subject.ref), []).append(subject)
    for (route, ref), group in groups.items():
        template = READ_ROUTE[route]
        placeholder = re.search(r"\{(\w+)\}", template).group(1)
        path, absent = concrete(template, **{placeholder: ref}), concrete(template, **{placeholder: missing[route]})
        parties = frozenset().union(*(s.parties for s in group))
        readers = frozenset().union(*(s.readers for s in group))
        for partner in w.directory.values():
            expected = {s.unit for s in group if partner["id"] in s.readers}
            relation_ = relation(partner, parties, w.directory)
            status, body = w.get(partner["id"], path)
            if expected:
                shown = _shown(route, body) if status == 200 else None
                verdict = OK if shown == expected else LEAK if shown and shown - expected else OVER_DENIED
                w.tally.cell(f"GET {template}", relation_, False, verdict, f"{partner['id']} {path}: {status} {shown}")
                continue
            not_found = w.get(partner["id"], absent)
            leak = 200 <= status < 300 or ref in json.dumps(body, ensure_ascii=False)
            verdict = LEAK if leak else OK if (status, body) == not_found and status == 404 else REVEALED
            w.tally.cell(f"GET {template}", relation_, True, verdict,
                         f"{partner['id']} {path}: {status} {body} vs {not_found}")
        reader = sorted(readers)[0]
        for partner in w.directory.values():
            if partner["id"] not in readers:
                status, body = w.get(partner["id"], path, claim=reader)
                w.tally.cell(f"GET {template}", "impersonation", True, _unauthenticated(status),
                             f"{partner['id']} as {reader}: {status}")
        status, _ = w.get(reader, path, signed_path=absent)
        w.tally.cell(f"GET {template}", "signature_for_another_path", True, _unauthenticated(status),
                     f"{reader}: {status}")
        status = w.hub.http.get(path).status_code
        w.tally.cell(f"GET {template}", "unsigned", True, OK if status == 400 else _unauthenticated(status),
                     f"unsigned: {status}")


def _unauthenticated(status: int) -> str:
    return OK if status == 401 else LEAK if 200 <= status < 300 else WRONG_ANSWER


def audit_cells(w, subjects: list[Subject]) -> int:
    """Inclusion proofs of every leaf of every subject (events on /inclusion/{ref}, delivery outcomes on
    /inclusion/{ref}/{tree_size}): to the partner the leaf names and the subject's readers; to anyone
    else the answer for a leaf that does not exist. A dead letter that found no receiver (partner "-",
    chalicelib/delivery.record_unroutable_id) names no partner but carries its case: it stands on the
    case's timeline, so its proof is the case's readers' too. Returns the tree size."""
    from chalicelib.audit import log

    w.deliver()
    w.sequence()
    size = log.read_head().size
    final = {i["delivery_id"]["S"]: i["partner_id"]["S"] for i in w.deliveries()
             if i["state"]["S"] in ("delivered", "dead")}
    for subject in subjects:
        leaves = [(INCLUSION, ref, sender) for ref, sender in sorted(subject.events.items())]
        leaves += [(INCLUSION_AT, ref, final[ref]) for ref in sorted(subject.deliveries) if ref in final]
        assert leaves, subject
        for template, ref, named in leaves:
            path = concrete(template, ref=ref, tree_size=str(size))
            absent = concrete(template, ref="evt_none", tree_size=str(size))
            for partner in w.directory.values():
                allowed = partner["id"] == named or partner["id"] in subject.readers
                relation_ = "named_in_leaf" if partner["id"] == named else \
                    relation(partner, subject.parties, w.directory)
                status, body = w.get(partner["id"], path)
                if allowed:
                    verdict = OK if status == 200 and body["ref"] == ref and body["leaves"] else OVER_DENIED
                    w.tally.cell(f"GET {template}", relation_, False, verdict,
                                 f"{partner['id']} {path}: {status} {body}")
                    continue
                not_found = w.get(partner["id"], absent)
                verdict = LEAK if 200 <= status < 300 else OK if (status, body) == not_found else REVEALED
                w.tally.cell(f"GET {template}", relation_, True, verdict, f"{partner['id']} {path}: {status} {body}")
    return size


# --------------------------------------------------------------------------------------------------
# the tests


def test_every_route_kind_and_event_type_has_its_cells():
    """The matrix is generated from app.py's routes, the partner kinds and the event specs: a route,
    kind or inbound type without cells fails here instead of passing unchecked."""
    import app
    from chalicelib.models import EVENT_SPECS

    assert {(method, path) for path, entries in app.app.routes.items() for method in entries} == set(ROUTES)
    reads = {path for (method, path), kind in ROUTES.items() if kind == SIGNED_READ}
    covered = {READ_ROUTE[r] for family in FAMILIES.values() for r in family.reads} - {None}
    assert reads == covered | {INCLUSION, INCLUSION_AT, CHECKPOINT, CONSISTENCY}

    directory = matrix_partners("http://127.0.0.1:9")["partners"]
    for kind in PARTNER_KINDS:  # every kind in two cities: each has an "other city, same kind" cell
        assert len({p["city"] for p in directory if p["kind"] == kind}) >= 2, kind
    assert set().union(*(f.party_kinds for f in FAMILIES.values())) == set(PARTNER_KINDS)
    inbound = {name for name, direction in EVENT_SPECS if direction == "inbound"}
    assert set().union(*(f.writes for f in FAMILIES.values())) | OWN_FACTS == inbound
    assert FIRST_COME <= inbound and OWN_FACTS <= inbound


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_only_parties_read_and_write_their_cases(hub, partners, name):
    family = FAMILIES[name]
    tally = Tally(f"family:{name}")
    w = world_of(family.helper, hub, partners, tally)
    subjects = family.build(w)
    assert w.sent_types == family.writes, "the family's writes changed: update FAMILIES"
    assert {w.directory[p]["kind"] for s in subjects for p in s.parties} == family.party_kinds
    assert {s.route for s in subjects} == family.reads
    read_cells(w, subjects)
    size = audit_cells(w, subjects)
    if name == "transfer":  # checkpoints and consistency proofs hold only sizes and hashes: any partner
        for partner in w.directory:
            for path in (CHECKPOINT, concrete(CONSISTENCY, first="1", second=str(size))):
                status, body = w.get(partner, path)
                tally.cell(f"GET {CONSISTENCY if 'consistency' in path else CHECKPOINT}", "any_partner", False,
                           OK if status == 200 else OVER_DENIED, f"{partner} {path}: {status} {body}")
    tally.finish()


def test_event_types_from_kinds_that_may_not_send_them_are_refused(hub, partners):
    """Every inbound type's catalog example, from every partner: a kind the spec does not list gets
    403 event_type_not_allowed with nothing stored; a listed kind is never refused for its kind."""
    from chalicelib import event_store
    from chalicelib.models import EVENT_SPECS

    tally = Tally("event_type_by_kind")
    for (event_type, direction), spec in sorted(EVENT_SPECS.items()):
        if direction != "inbound":
            continue
        body = envelope(event_type, spec.example)
        for partner in partners["partners"]:
            headers = sign_request(partner["secrets"][0], body)
            response = hub.http.post(concrete(EVENTS, partner_id=partner["id"]), body=body.encode(), headers=headers)
            code = json.loads(response.body).get("error", {}).get("code")
            detail = f"{partner['id']} ({partner['kind']}) sending {event_type}: {response.status_code} {code}"
            if partner["kind"] in spec.senders:
                tally.cell(f"POST {EVENTS}", "kind_allowed", False,
                           OVER_DENIED if code == "event_type_not_allowed" else OK, detail)
                continue
            stored = event_store.get(partner["id"], headers["webhook-id"]) is not None
            verdict = LEAK if response.status_code < 300 or stored else \
                OK if (response.status_code, code) == (403, "event_type_not_allowed") else WRONG_ANSWER
            tally.cell(f"POST {EVENTS}", "kind_not_allowed", True, verdict, detail)
    tally.finish()


def test_signed_routes_refuse_requests_that_are_not_a_partners_own(hub, partners):
    """Every signed route (from ROUTES): unsigned 400; an unknown partner, a secret that is not the
    partner's, a stale timestamp 401; a read's nonce used twice 401. Public routes answer anyone."""
    from chalicelib import event_store

    tally = Tally("signatures")
    stranger_secret = new_secret()
    for (method, template), kind in sorted(ROUTES.items()):
        route = f"{method} {template}"
        if kind == PUBLIC:
            status = hub.http.get(concrete(template)).status_code
            tally.cell(route, "anyone", False, OK if status == 200 else OVER_DENIED, f"{status}")
            continue
        if kind == SIGNED_WRITE:
            body = envelope("application.submitted", {}) if template == EVENTS else json.dumps(
                {"sha256": "0" * 64, "size": 10, "media_type": "application/pdf"})
            attempts = {"unsigned": ({}, "sz-registry", 400),
                        "unknown_partner": (sign_request(stranger_secret, body), "no-such-partner", 401),
                        "secret_not_the_partners": (sign_request(stranger_secret, body), "sz-registry", 401),
                        "stale_timestamp": (sign_request(secret_of(partners, "sz-registry"), body,
                                                         timestamp=int(time.time()) - 3600), "sz-registry", 401)}
            for relation_, (headers, path_partner, expected) in attempts.items():
                response = hub.http.post(concrete(template, partner_id=path_partner), body=body.encode(),
                                         headers=headers)
                stored = bool(headers) and event_store.get(path_partner, headers["webhook-id"]) is not None
                verdict = LEAK if response.status_code < 300 or stored else \
                    OK if response.status_code == expected else WRONG_ANSWER
                tally.cell(route, relation_, True, verdict, f"{response.status_code} {response.body[:200]}")
            continue
        if kind == SIGNED_READ:
            path = concrete(template)
            strange = {**partners, "partners": [{"id": "sz-registry", "secrets": [stranger_secret]}]}
            nonce = f"read_{uuid.uuid4().hex}"
            first = signed_get(hub, partners, "sz-registry", path, nonce=nonce)[0]
            cells = [("unsigned", hub.http.get(path).status_code, 400),
                     ("unknown_partner",
                      signed_get(hub, strange, "sz-registry", path, claim="no-such-partner")[0], 401),
                     ("secret_not_the_partners", signed_get(hub, strange, "sz-registry", path)[0], 401),
                     ("stale_timestamp", signed_get(hub, partners, "sz-registry", path,
                                                    timestamp=int(time.time()) - 3600)[0], 401),
                     ("replayed_nonce", signed_get(hub, partners, "sz-registry", path, nonce=nonce)[0], 401)]
            for relation_, status, expected in cells:
                verdict = LEAK if 200 <= status < 300 else OK if status == expected else WRONG_ANSWER
                tally.cell(route, relation_, True, verdict, f"{path}: {status} (first use {first})")
    tally.finish()


def _operator_requests() -> list[tuple[str, str]]:
    """Every operator route the API answers (chalicelib/ops_api.py's tables) and one it does not."""
    from chalicelib import ops_api

    found = [("GET", f"/v1/ops/{resource}" + ("/ref-1" if has_ref else "")) for resource, has_ref in ops_api._GETS]
    for resource, ref, action in ops_api._POSTS:
        path = f"/v1/ops/{resource}/{'ref-1' if ref == '*' else ref}" + (f"/{action}" if action else "")
        found.append(("POST", path))
    return found + [("GET", "/v1/ops/no-such-resource"), ("POST", "/v1/ops/no-such/ref/act")]


def test_operator_routes_open_to_the_operator_token_only(hub, partners, monkeypatch):
    """No partner signature, no partner secret, no wrong or missing token opens /v1/ops; in Cognito
    mode a partner's signature without the authorizer's claims does not either."""
    from chalicelib.settings import reset_settings

    token = "op-" + uuid.uuid4().hex
    monkeypatch.setenv("HUB_OPERATOR_TOKEN", token)
    reset_settings()
    tally = Tally("operators")
    requests_ = _operator_requests()
    by_depth = {1: "/v1/ops/{resource}", 2: "/v1/ops/{resource}/{ref}", 3: "/v1/ops/{resource}/{ref}/{action}"}
    assert {(m, by_depth[len(p.split("/")) - 3]) for m, p in requests_} == {
        key for key, kind in ROUTES.items() if kind == OPERATOR}

    def call(method: str, path: str, headers: dict) -> tuple[int, dict]:
        send = hub.http.get if method == "GET" else hub.http.post
        extra = {} if method == "GET" else {"body": b"{}"}
        response = send(path, headers={"content-type": "application/json", **headers}, **extra)
        return response.status_code, json.loads(response.body or b"{}")

    for method, path in requests_:
        route = f"{method} /v1/ops/..."
        attempts = [("no_token", {}),
                    ("wrong_token", {"hub-operator-token": token[:-1] + "x", "hub-operator": "ops-1"}),
                    ("empty_token", {"hub-operator-token": "", "hub-operator": "ops-1"})]
        for partner in partners["partners"]:
            stamp, nonce = int(time.time()), f"read_{uuid.uuid4().hex}"
            signature = Webhook(partner["secrets"][0]).sign(nonce, datetime.fromtimestamp(stamp, tz=timezone.utc),
                                                            f"{method} {path}")
            attempts.append(("partner_signature", {"hub-partner-id": partner["id"], "webhook-id": nonce,
                                                   "webhook-timestamp": str(stamp), "webhook-signature": signature}))
            attempts.append(("partner_secret_as_token", {"hub-operator-token": partner["secrets"][0],
                                                         "hub-operator": partner["id"]}))
        for relation_, headers in attempts:
            status, body = call(method, path, headers)
            verdict = LEAK if status < 300 else OK if (status, body["error"]["code"]) == (
                401, "operator_unauthenticated") else WRONG_ANSWER
            tally.cell(route, relation_, True, verdict, f"{path}: {status} {body}")
        status, body = call(method, path, {"hub-operator-token": token, "hub-operator": "ops-1"})
        tally.cell(route, "operator", False, OVER_DENIED if status in (401, 403) else OK, f"{path}: {status} {body}")

    monkeypatch.setenv("HUB_OPERATOR_AUTH", "cognito")
    reset_settings()
    for method, path in requests_:
        partner = partners["partners"][0]
        stamp, nonce = int(time.time()), f"read_{uuid.uuid4().hex}"
        signature = Webhook(partner["secrets"][0]).sign(nonce, datetime.fromtimestamp(stamp, tz=timezone.utc),
                                                        f"{method} {path}")
        status, body = call(method, path, {"hub-partner-id": partner["id"], "webhook-id": nonce,
                                           "webhook-timestamp": str(stamp), "webhook-signature": signature,
                                           "hub-operator-token": token})
        verdict = LEAK if status < 300 else OK if status == 401 else WRONG_ANSWER
        tally.cell(f"{method} /v1/ops/... (cognito)", "partner_signature", True, verdict, f"{path}: {status} {body}")
    for name in ("index.html", "sign-in.json"):  # public files: nothing secret in them
        response = hub.http.get(concrete("/console/{name}", name=name))
        text = response.body.decode() if isinstance(response.body, bytes) else str(response.body)
        clean = response.status_code == 200 and token not in text and not any(
            p["secrets"][0] in text for p in partners["partners"])
        tally.cell("GET /console/{name}", "anyone", False, OK if clean else LEAK, f"{name}: {response.status_code}")
    tally.finish()


@pytest.mark.e2e
def test_over_http_a_strangers_read_and_a_cross_partner_write_are_denied(tmp_path):
    """Local mode on a real port: a Beijing case read by a Shenzhen registry and a court gets the
    not-found answer; the other city's tax bureau assessing it, and the right bureau signing for
    another partner's path, are refused; the case's own bureau then assesses it once."""
    from tests.test_e2e import hub_with_partners, http

    def read(hub, doc, partner_id: str, path: str) -> tuple[int, dict]:
        nonce, stamp = f"read_{uuid.uuid4().hex}", int(time.time())
        signature = Webhook(secret_of(doc, partner_id)).sign(nonce, datetime.fromtimestamp(stamp, tz=timezone.utc),
                                                             f"GET {path}")
        return http("GET", hub.url + path, headers={"hub-partner-id": partner_id, "webhook-id": nonce,
                                                    "webhook-timestamp": str(stamp), "webhook-signature": signature})

    def until(check: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = check()
            if found:
                return found
            time.sleep(0.3)
        raise AssertionError(f"local mode never showed {what}")

    with hub_with_partners(tmp_path, matrix_partners) as (hub, doc, receiver):
        status, _ = hub.post_event("bj-registry", secret_of(doc, "bj-registry"), "application.submitted",
                                   application("AUTH-E2E-1", "obligee_pays_all"))
        assert status == 202
        until(lambda: read(hub, doc, "bj-registry", "/v1/cases/AUTH-E2E-1")[0] == 200, "the case to its registry")
        for stranger in ("sz-registry", "bj-court", "bj-water"):
            denied = read(hub, doc, stranger, "/v1/cases/AUTH-E2E-1")
            assert denied == read(hub, doc, stranger, "/v1/cases/AUTH-NONE-1") and denied[0] == 404, denied

        data = assessment("AUTH-E2E-1")
        status, body = hub.post_event("sz-tax", secret_of(doc, "sz-tax"), "tax.assessed", data)
        assert status in (403, 422), body
        body_text = envelope("tax.assessed", data)
        status, body = http("POST", f"{hub.url}/v1/partners/bj-registry/events", body_text.encode(),
                            sign_request(secret_of(doc, "bj-tax"), body_text))
        assert (status, body["error"]["code"]) == (401, "unauthenticated"), body
        assert hub.post_event("bj-tax", secret_of(doc, "bj-tax"), "tax.assessed", data)[0] == 202

        def assessed() -> list[dict]:
            case = read(hub, doc, "bj-registry", "/v1/cases/AUTH-E2E-1")[1]["cases"][0]
            return [t for t in case["timeline"] if t["type"] == "tax.assessed"]

        assert [t["partner_id"] for t in until(assessed, "the assessment in the case")] == ["bj-tax"]
