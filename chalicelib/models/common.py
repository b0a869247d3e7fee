"""Building blocks shared by every canonical event model.

Conventions (see /tmp/shapes.md, DOMAIN.md):
- every model forbids unknown fields and is built lazily (`defer_build`: the core schema is made on
  first validation, so importing the models stays cheap on a Lambda cold start);
- money is `Fen`: a strict integer (no floats, no strings, no bools), 0 <= x <= 2**53 - 1;
- other integers and booleans are strict as well;
- times are `Timestamp` (ISO 8601 string with an offset), dates `Day` (ISO date string);
- identifiers are the annotated types of `chalicelib.identifiers`.

Business rules that span fields raise `rule_error(code, message, field)`: a `PydanticCustomError`
whose type is a stable snake_case code and whose context names the offending field relative to the
model (`validate_data` appends it to the location). No message contains an input value.
"""
from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Optional

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StringConstraints,
                      field_validator, model_validator)
from pydantic import AwareDatetime
from pydantic_core import PydanticCustomError

from chalicelib.identifiers import (CityCode, IdentifierError, ResidentId, UnitCode, Uscc,  # noqa: F401
                                    validate_resident_id, validate_uscc)
from chalicelib.models.kinds import PARTNER_KINDS, UTILITY_TYPES

__all__ = [
    "HubModel", "Fen", "Count", "Timestamp", "Day", "CaseId", "Ref", "Code", "Number", "Name", "Text",
    "Url", "Sha256", "Decimal2", "Rate", "Phone", "Share", "MaskedId", "SnakeCode",
    "Role", "IdType", "Service", "RelayService", "PropertyUse", "PayerMode", "UtilityType", "PartnerKind",
    "CertificateKind", "RegistrationStep", "MortgageType", "PARTNER_KINDS", "UTILITY_TYPES", "MAX_FEN",
    "Person", "Party", "Payer", "Institution", "DocumentRef", "Scan", "Reason", "CertificateRef",
    "MortgageTerms", "Courier", "rule_error", "check_total", "check_unique", "check_id_number", "mask_id_number",
    "UnitCode", "ResidentId", "Uscc", "CityCode", "StrictBool", "StrictInt", "Optional", "Literal",
    "Annotated", "Field", "field_validator", "model_validator",
]


MAX_FEN = 9_007_199_254_740_991  # 2**53 - 1: exact in every JSON parser


class HubModel(BaseModel):
    """Base of every canonical model: unknown fields are refused; schema built on first use."""

    # hide_input_in_errors: str(ValidationError) never shows the input (it may be personal data).
    model_config = ConfigDict(extra="forbid", defer_build=True, hide_input_in_errors=True)


# --------------------------------------------------------------------------------------------
# Scalar types

def _iso_text_only(value: Any) -> Any:
    # JSON carries times as strings; a bare number would be read as a Unix time. Refuse it.
    if isinstance(value, (str, _dt.date)):
        return value
    raise PydanticCustomError("datetime_type", "Input should be an ISO 8601 string")


Fen = Annotated[StrictInt, Field(ge=0, le=MAX_FEN, description="amount in fen (分), integer")]
Count = Annotated[StrictInt, Field(ge=0, le=MAX_FEN)]
Timestamp = Annotated[AwareDatetime, BeforeValidator(_iso_text_only)]
Day = Annotated[_dt.date, BeforeValidator(_iso_text_only)]

CaseId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")]
SnakeCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Number = Annotated[str, StringConstraints(min_length=1, max_length=100)]  # document numbers, may be Chinese
Name = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]{1,2040}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Decimal2 = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,7}(\.[0-9]{1,2})?$")]
Rate = Annotated[str, StringConstraints(pattern=r"^(0|[1-9][0-9]{0,2})(\.[0-9]{1,10})?$")]
Phone = Annotated[str, StringConstraints(pattern=r"^1[0-9]{10}$")]
Share = Annotated[str, StringConstraints(pattern=r"^([0-9]{1,3}(\.[0-9]{1,4})?%|[1-9][0-9]{0,5}/[1-9][0-9]{0,5})$")]
MaskedId = Annotated[str, StringConstraints(pattern=r"^[0-9A-Z]{0,6}\*{4,14}[0-9A-Z]{0,4}$")]

Role = Literal["obligee", "obligor"]
IdType = Literal["resident_id", "uscc", "passport", "other"]
Service = Literal["transfer", "change", "mortgage", "preregistration", "first_registration", "correction",
                  "objection", "cancellation", "seizure", "inquiry"]
RelayService = Literal["transfer", "change", "mortgage", "preregistration", "inquiry"]
PropertyUse = Literal["residential", "non_residential", "parking", "storage"]
PayerMode = Literal["obligee_pays_all", "obligor_pays_all", "each_pays_own"]
UtilityType = Literal["water", "electricity", "gas", "heat", "internet", "cable_tv"]
PartnerKind = Literal["registry", "tax", "fiscal", "payment", "bank", "utility", "notary", "court", "city_office"]
# 不动产权证书 (ownership) / 不动产登记证明 (proof: mortgage, pre-registration, seizure…)
CertificateKind = Literal["ownership_certificate", "registration_proof"]
# The registrations one application can combine (带押过户 combines several, in this order).
RegistrationStep = Literal["first_registration", "transfer", "change", "correction", "objection", "cancellation",
                           "preregistration", "mortgage_first", "mortgage_change", "mortgage_transfer",
                           "mortgage_release"]
MortgageType = Literal["general", "maximum_amount", "construction_in_progress"]  # 一般/最高额/在建建筑物


# --------------------------------------------------------------------------------------------
# Rules

def rule_error(code: str, message: str, field: str | None = None) -> PydanticCustomError:
    """A business-rule failure: stable `code`, a message without values, the field it concerns."""
    return PydanticCustomError(code, message, {"rule_field": field} if field else None)


def check_total(total: int, amounts: Iterable[int], field: str = "total_fen", code: str = "total_mismatch",
                what: str = "the line amounts") -> None:
    if total != sum(amounts):
        raise rule_error(code, f"{field} must equal the sum of {what}", field)


def check_unique(values: Iterable[Any], field: str, code: str = "duplicate_value") -> None:
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise rule_error(code, f"every {field} must be unique", field)
        seen.add(value)


_PASSPORT = re.compile(r"[A-Z0-9]{5,20}")
_OTHER_ID = re.compile(r"[^\s]{2,40}")


def check_id_number(id_type: str | None, value: str) -> str:
    """An ID number checked by its type: GB 11643 for resident IDs, GB 32100 for USCCs."""
    try:
        if id_type == "resident_id":
            return validate_resident_id(value)
        if id_type == "uscc":
            return validate_uscc(value)
    except IdentifierError as exc:
        raise PydanticCustomError(exc.code, f"id_number: {exc.reason}") from None
    if id_type == "passport" and not _PASSPORT.fullmatch(value):
        raise PydanticCustomError("invalid_format", "id_number: a passport number is 5-20 letters or digits")
    if id_type == "other" and not _OTHER_ID.fullmatch(value):
        raise PydanticCustomError("invalid_format", "id_number: 2-40 characters without spaces")
    return value


IdNumber = Annotated[str, StringConstraints(min_length=1, max_length=40)]


_MASK_KEEPS = re.compile(r"[0-9A-Z]*")


def mask_id_number(value: str) -> str:
    """An ID number as a partner that must recognise, not know, the person sees it (a `MaskedId`).

    18-character numbers (resident IDs, USCCs) keep their first six (the issuing area) and last four
    characters: 11010519491231002X -> 110105********002X. Shorter numbers (passports, others) keep at
    most their last two, and only when at least six are hidden. Characters outside 0-9/A-Z are never shown.
    """
    text = value.strip().upper()
    head, tail = (6, 4) if len(text) >= 15 else (0, 2 if len(text) >= 8 else 0)
    shown_head, shown_tail = text[:head], text[len(text) - tail:] if tail else ""
    if not (_MASK_KEEPS.fullmatch(shown_head) and _MASK_KEEPS.fullmatch(shown_tail)):
        shown_head = shown_tail = ""
    stars = min(14, max(4, len(text) - len(shown_head) - len(shown_tail)))
    return f"{shown_head}{'*' * stars}{shown_tail}"


# --------------------------------------------------------------------------------------------
# Shared shapes

class Person(HubModel):
    """A person or organisation identified by name and ID number (checked according to id_type)."""

    name: Name
    id_type: IdType
    id_number: IdNumber

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, value: str, info) -> str:
        return check_id_number(info.data.get("id_type"), value)


class Party(HubModel):
    """A party to an application: obligee (权利人, e.g. buyer) or obligor (义务人, e.g. seller)."""

    role: Role
    name: Name
    id_type: IdType
    id_number: IdNumber
    phone: Optional[Phone] = None
    share: Optional[Share] = Field(None, description='share of the property, "1/2" or "50%"')

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, value: str, info) -> str:
        return check_id_number(info.data.get("id_type"), value)


class Payer(HubModel):
    """Who pays an order or a bill."""

    name: Name
    id_type: IdType
    id_number: IdNumber
    phone: Optional[Phone] = None

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, value: str, info) -> str:
        return check_id_number(info.data.get("id_type"), value)


class Institution(HubModel):
    """An organisation identified by its unified social credit code (bank, notary office, court…)."""

    name: Name
    uscc: Uscc
    branch: Optional[Name] = Field(None, description="branch or department, e.g. 支行")


class DocumentRef(HubModel):
    """A document uploaded through POST /v1/partners/{id}/documents; never the bytes themselves."""

    document_id: Ref
    sha256: Sha256
    media_type: Annotated[str, StringConstraints(pattern=r"^[a-z]+/[a-z0-9][a-z0-9.+-]{0,99}$")]
    size: Annotated[StrictInt, Field(gt=0, le=MAX_FEN)]


class Scan(HubModel):
    """A document with what it is."""

    kind: Literal["application_form", "identity_document", "ownership_certificate", "contract", "power_of_attorney",
                  "marital_status", "tax_document", "notarial_certificate", "court_document", "mortgage_contract",
                  "other"]
    title: Optional[Text] = None
    document: DocumentRef


class Reason(HubModel):
    """A reason for a refusal: a stable code and words for a person."""

    code: SnakeCode
    message: Optional[Text] = None


class CertificateRef(HubModel):
    """A certificate or proof the registry issued at booking, with its e-certificate where there is one."""

    kind: CertificateKind
    number: Number = Field(description="证书号/证明号, e.g. 京(2025)朝阳区不动产权第0012345号")
    holder_name: Optional[Name] = None
    e_certificate_id: Optional[Ref] = Field(None, description="电子证照标识")
    e_certificate: Optional[DocumentRef] = None


class MortgageTerms(HubModel):
    """The mortgage itself: type, secured claim, debt period, rank, contract."""

    mortgage_type: MortgageType
    secured_amount_fen: Fen = Field(description="被担保主债权数额 or 最高债权额")
    debt_start: Day
    debt_end: Day
    rank: Optional[Annotated[StrictInt, Field(ge=1, le=99)]] = Field(None, description="抵押顺位")
    contract_number: Number
    loan_contract_number: Optional[Number] = None

    @model_validator(mode="after")
    def _period(self) -> "MortgageTerms":
        if self.debt_end < self.debt_start:
            raise rule_error("date_order", "debt_end must not be before debt_start", "debt_end")
        return self


class Courier(HubModel):
    """Paper sent by courier: the originals of a relay, or certificates mailed back."""

    courier: Name = Field(description="e.g. EMS, SF")
    tracking_number: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{6,40}$")]
    sent_at: Optional[Timestamp] = None
