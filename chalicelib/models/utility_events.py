"""Utilities (flow 3): after a transfer is booked each consented utility of the city gets a request.

The old holder is carried by name and masked ID only (the utility matches the account holder to the
seller, GTMap practice); the new holder in full, because the utility opens the account in their name.
No price, no tax, no other party: a utility learns only what moving the account needs. An answer
names the request it answers (`request_id`); a retry after a failure is a new request (the next
`attempt`, its own `request_id`).
"""
from __future__ import annotations

from chalicelib.models.common import (Annotated, CaseId, Code, Field, HubModel, IdType, MaskedId, Name, Number,
                                      Optional, Phone, Ref, SnakeCode, StrictBool, StrictInt, Text, Timestamp,
                                      UnitCode, UtilityType, check_id_number, field_validator)


class OldHolder(HubModel):
    name: Name
    id_number_masked: Optional[MaskedId] = Field(None, description="e.g. 110105********002X")


class NewHolder(HubModel):
    name: Name
    id_type: IdType
    id_number: Annotated[str, Field(min_length=1, max_length=40)]
    phone: Optional[Phone] = None

    @field_validator("id_number")
    @classmethod
    def _id_number(cls, value: str, info) -> str:
        return check_id_number(info.data.get("id_type"), value)


class UtilityTransferRequested(HubModel):
    """hub → utility: move the account of a unit to the new owner (水电气过户)."""

    request_id: Ref
    case_id: CaseId
    utility: UtilityType
    unit_code: UnitCode
    address: Optional[Text] = Field(None, description="坐落, as registered, when the registry gave it")
    account_number: Optional[Code] = Field(None, description="the utility account, when the applicant gave it")
    old_holder: OldHolder
    new_holder: NewHolder
    certificate_number: Optional[Number] = Field(None, description="the new ownership certificate")
    booked_at: Timestamp
    attempt: Annotated[StrictInt, Field(ge=1, le=99, description="1, then 2, 3… for an operator's retry")] = 1


class UtilityTransferCompleted(HubModel):
    """utility → hub: the account now belongs to the new owner."""

    request_id: Ref
    case_id: CaseId
    utility: UtilityType
    unit_code: UnitCode
    account_number: Code
    new_account_number: Optional[Code] = Field(None, description="when the utility opened a new account")
    completed_at: Timestamp


class UtilityTransferFailed(HubModel):
    """utility → hub: the transfer could not be done (holder mismatch, arrears, no such account…)."""

    request_id: Ref
    case_id: CaseId
    utility: UtilityType
    unit_code: UnitCode
    reason_code: SnakeCode = Field(description="e.g. holder_mismatch, arrears, account_not_found")
    reason: Optional[Text] = None
    retryable: StrictBool = False
    failed_at: Timestamp


__all__ = ["UtilityTransferRequested", "UtilityTransferCompleted", "UtilityTransferFailed"]
