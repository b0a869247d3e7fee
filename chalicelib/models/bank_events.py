"""Banks (flow 2): online mortgage registration and 带押过户 (transfer with the mortgage still on).

`mortgage.requested.kind`:
- `first` / `change` / `transfer` / `release`: 抵押权首次/变更/转移/注销登记 of one unit; the sender is
  the mortgagee (`mortgagee`, checked USCC). change, transfer and release name the existing mortgage's
  proof number (不动产登记证明号); transfer also names the previous mortgagee.
- `transfer_with_mortgage`: one of the three 带押过户 packages in `package` (domain_cn.md §5.2):
  `combined` (transfer + old release + new mortgage), `staged` (transfer + new mortgage in second
  rank, funds in escrow, old released after payoff: `escrow` required) and `same_bank_change`
  (transfer + change of the existing mortgage, old and new mortgagee the same bank).
  A package is one case that waits for every bank's consent: each bank involved sends its own
  `mortgage.requested` with the same `package.package_id` and its `sender_role`; the hub files the
  application with the registry once the old and the new mortgagee have both sent theirs (one bank
  in the role `both` when it is old and new mortgagee at once) and their package terms agree.
  Each bank's request carries its own borrower's signed consent (`package.consents`, a verified
  document): the new mortgagee the buyer's (party_role obligee), the old mortgagee the seller's
  (obligor), a bank in the role `both` both. The door refuses a request without them
  (`consent_missing`); see chalicelib/flows/package.py.

`case_id` in what the hub sends back (mortgage.registered, registration.result) is the hub's case id,
the one a bank reads at GET /v1/cases/{case_id}; the registry's own case number is `registry_case_id`.
"""
from __future__ import annotations

from chalicelib.models.common import (Annotated, CaseId, CertificateRef, DocumentRef, Fen, Field, HubModel,
                                      Institution, Literal, MortgageTerms, Number, Optional, Party, Ref, Role, Scan,
                                      StrictInt, Timestamp, UnitCode, check_unique, model_validator, rule_error)


class OldMortgage(HubModel):
    """The mortgage on the unit today (the seller's loan)."""

    mortgagee: Institution
    proof_number: Number = Field(description="不动产登记证明号 of the existing mortgage")
    outstanding_fen: Optional[Fen] = Field(None, description="remaining loan to be paid off")


class NewMortgage(HubModel):
    """The buyer's mortgage (or, for same_bank_change, the existing mortgage as changed)."""

    mortgagee: Institution
    mortgagors: Annotated[list[Party], Field(min_length=1, max_length=20)]
    terms: MortgageTerms


class Escrow(HubModel):
    """资金监管: down payment and loan held until the old loan is paid off (staged package)."""

    escrow_reference: Ref
    bank: Institution
    amount_fen: Fen


class TransferPart(HubModel):
    """The sale inside a package."""

    contract_number: Number
    price_fen: Fen
    parties: Annotated[list[Party], Field(min_length=2, max_length=50)]

    @model_validator(mode="after")
    def _roles(self) -> "TransferPart":
        if {p.role for p in self.parties} != {"obligee", "obligor"}:
            raise rule_error("parties_roles", "a transfer needs at least one obligee and one obligor", "parties")
        return self


class Consent(HubModel):
    """A borrower's signed consent to the package (买方/卖方同意书), uploaded as a document first."""

    party_role: Role = Field(description="obligee: the buyer (new mortgagor); obligor: the seller (old mortgagor)")
    document: DocumentRef
    signed_at: Timestamp


class MortgagePackage(HubModel):
    """A 带押过户 package (one case, several registrations, every bank's consent)."""

    package_id: Ref
    mode: Literal["combined", "staged", "same_bank_change"]
    sender_role: Literal["old_mortgagee", "new_mortgagee", "both"]
    transfer: TransferPart
    old_mortgage: OldMortgage
    new_mortgage: NewMortgage
    escrow: Optional[Escrow] = None
    consents: Annotated[list[Consent], Field(
        default_factory=list, max_length=2,
        description="the sending bank's borrower's consent: new_mortgagee → obligee, old_mortgagee → obligor, "
                    "both → both (required at the door)")]

    @model_validator(mode="after")
    def _rules(self) -> "MortgagePackage":
        check_unique((c.party_role for c in self.consents), "consents", "duplicate_value")
        same_bank = self.old_mortgage.mortgagee.uscc == self.new_mortgage.mortgagee.uscc
        if self.mode == "staged" and self.escrow is None:
            raise rule_error("escrow_required", "a staged package names its escrow", "escrow")
        if self.mode == "staged" and self.new_mortgage.terms.rank == 1:
            raise rule_error("rank_conflict", "in a staged package the new mortgage ranks after the old one",
                             "new_mortgage.terms.rank")
        if self.mode == "same_bank_change" and not same_bank:
            raise rule_error("same_bank_mismatch", "same_bank_change needs the same mortgagee old and new",
                             "new_mortgage.mortgagee.uscc")
        if self.sender_role == "both" and not same_bank:
            raise rule_error("sender_role_mismatch", "role both needs the same mortgagee old and new",
                             "sender_role")
        return self


class MortgageRequested(HubModel):
    """bank → hub: a mortgage registration (first, change, transfer, release) or a 带押过户 package."""

    request_id: Ref
    kind: Literal["first", "change", "transfer", "release", "transfer_with_mortgage"]
    unit_code: UnitCode
    mortgagee: Institution = Field(description="the sending bank (抵押权人), checked USCC")
    mortgagors: Annotated[list[Party], Field(default_factory=list, max_length=20)]
    terms: Optional[MortgageTerms] = None
    existing_proof_number: Optional[Number] = Field(None, description="不动产登记证明号 of the existing mortgage")
    previous_mortgagee: Optional[Institution] = Field(None, description="for kind transfer: the assigning bank")
    package: Optional[MortgagePackage] = None
    documents: Annotated[list[Scan], Field(default_factory=list, max_length=100)]
    requested_at: Timestamp

    @model_validator(mode="after")
    def _rules(self) -> "MortgageRequested":
        kind = self.kind
        if kind in ("first", "change", "transfer"):
            if self.terms is None:
                raise rule_error("terms_required", f"kind {kind} needs the mortgage terms", "terms")
            if not self.mortgagors:
                raise rule_error("mortgagors_required", f"kind {kind} needs the mortgagors", "mortgagors")
        if kind in ("change", "transfer", "release") and self.existing_proof_number is None:
            raise rule_error("existing_proof_required", f"kind {kind} names the existing mortgage",
                             "existing_proof_number")
        if kind == "transfer" and self.previous_mortgagee is None:
            raise rule_error("previous_mortgagee_required", "kind transfer names the previous mortgagee",
                             "previous_mortgagee")
        if kind == "release" and self.terms is not None:
            raise rule_error("terms_not_allowed", "a release carries no mortgage terms", "terms")
        if kind == "transfer_with_mortgage":
            package = self.package
            if package is None:
                raise rule_error("package_required", "kind transfer_with_mortgage needs its package", "package")
            expected = {"old_mortgagee": {package.old_mortgage.mortgagee.uscc},
                        "new_mortgagee": {package.new_mortgage.mortgagee.uscc},
                        "both": {package.old_mortgage.mortgagee.uscc}}[package.sender_role]
            if self.mortgagee.uscc not in expected:
                raise rule_error("mortgagee_role_mismatch", "mortgagee is not the bank of package.sender_role",
                                 "mortgagee.uscc")
        elif self.package is not None:
            raise rule_error("package_not_allowed", "only kind transfer_with_mortgage carries a package", "package")
        return self


class MortgageRegistered(HubModel):
    """hub → bank: the mortgage registration was booked; the proof (不动产登记证明) and its e-certificate."""

    request_id: Ref = Field(description="the bank's mortgage.requested request_id")
    case_id: CaseId = Field(description="the hub's case id (GET /v1/cases/{case_id})")
    registry_case_id: Optional[CaseId] = Field(None, description="the registry's case number of the booking")
    unit_code: UnitCode
    kind: Literal["first", "change", "transfer", "release", "transfer_with_mortgage"]
    package_id: Optional[Ref] = None
    proof: CertificateRef
    rank: Optional[Annotated[StrictInt, Field(ge=1, le=99)]] = None
    booked_at: Timestamp


class PreregistrationShared(HubModel):
    """hub → bank (and tax): a pre-registration (预告登记) was booked.

    kind: 预售商品房买卖预告 presale_purchase, 其它不动产买卖预告 other_purchase, 预售商品房抵押权预告
    presale_mortgage, 其它不动产抵押权预告 other_mortgage.
    """

    case_id: CaseId
    unit_code: UnitCode
    kind: Literal["presale_purchase", "other_purchase", "presale_mortgage", "other_mortgage"]
    proof: CertificateRef
    obligees: Annotated[list[Party], Field(min_length=1, max_length=50)]
    mortgagee: Optional[Institution] = Field(None, description="the buyer's bank: the mortgagee of a mortgage "
                                             "pre-registration, the lender the buyer applies to for a purchase one")
    secured_amount_fen: Optional[Fen] = None
    contract_number: Optional[Number] = None
    price_fen: Optional[Fen] = Field(None, description="the contract's total price (Taizhou: the proof records it)")
    booked_at: Timestamp


__all__ = ["MortgageRequested", "MortgageRegistered", "PreregistrationShared", "MortgagePackage", "Consent"]
