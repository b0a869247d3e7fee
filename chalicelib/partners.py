"""The partner registry: who a partner is, its kind and city, its secrets, its mapping, its endpoint.

Two sources, one interface:
- `FilePartnerDirectory`: the partners file of CONTRACT.md (tests, and the seed of local mode).
- `AwsPartnerDirectory`: records in the partners table, secrets in Secrets Manager (AWS and local
  mode). Lookups are cached for a short time so the ingest path makes no extra AWS call.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chalicelib import signatures
from chalicelib.models.kinds import PARTNER_KINDS, UTILITY_TYPES

PartnerKind = Literal[PARTNER_KINDS]  # type: ignore[valid-type]
UtilityType = Literal[UTILITY_TYPES]  # type: ignore[valid-type]
PARTNER_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"


class PartnerRecord(BaseModel):
    """One partner as the partners file and the registry table describe it."""

    # hide_input_in_errors: a refused secret must not be printed back in the validation error.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    id: str = Field(pattern=PARTNER_ID_PATTERN)
    kind: PartnerKind
    city: str = Field(pattern=r"^\d{6}$")
    secrets: tuple[str, ...] = Field(min_length=1, max_length=10)
    mapping: str = Field(default="canonical", pattern=r"^[a-z0-9_]{1,64}$")
    endpoint: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    utility: Optional[UtilityType] = None
    # The institution's unified social credit code (banks, notaries, courts): what the partner may name
    # as itself in an event (a bank files mortgages only as the mortgagee it is).
    uscc: Optional[str] = None

    @field_validator("uscc")
    @classmethod
    def _uscc_check_digit(cls, value: Optional[str]) -> Optional[str]:
        from chalicelib.identifiers import validate_uscc

        return None if value is None else validate_uscc(value)

    @field_validator("secrets")
    @classmethod
    def _secrets_well_formed(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for secret in value:
            signatures.check_secret(secret)
        return value

    @model_validator(mode="after")
    def _utility_only_for_utilities(self) -> "PartnerRecord":
        if (self.kind == "utility") != (self.utility is not None):
            raise ValueError("`utility` is required for kind utility and only for it")
        return self

    @model_validator(mode="after")
    def _mapping_exists_for_kind(self) -> "PartnerRecord":
        # A partner that names a missing or foreign mapping is a configuration error, found when the
        # record is loaded or added, not when its first event arrives.
        from chalicelib.mapping import load_mapping

        if not load_mapping(self.mapping).accepts_kind(self.kind):
            raise ValueError(f"mapping {self.mapping} is not for partners of kind {self.kind}")
        return self


class HubBlock(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    signing_secret: str

    @field_validator("signing_secret")
    @classmethod
    def _secret(cls, value: str) -> str:
        return signatures.check_secret(value)


class PartnersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)
    comment: Optional[str] = Field(default=None, alias="_comment")
    hub: HubBlock
    partners: list[PartnerRecord]

    @model_validator(mode="after")
    def _unique_ids(self) -> "PartnersFile":
        ids = [p.id for p in self.partners]
        if len(ids) != len(set(ids)):
            raise ValueError("partner ids must be unique")
        return self

    @classmethod
    def load(cls, path: str) -> "PartnersFile":
        with open(path, "rb") as fh:
            return cls.model_validate_json(fh.read())


Partner = PartnerRecord


class PartnerDirectory:
    """What the hub asks of a registry."""

    def get(self, partner_id: str) -> Partner | None:
        raise NotImplementedError

    def all(self) -> list[Partner]:
        raise NotImplementedError

    def hub_secret(self) -> str:
        raise NotImplementedError

    def find(self, kind: str, city: str | None = None, utility: str | None = None) -> list[Partner]:
        return sorted((p for p in self.all() if p.kind == kind and (city is None or p.city == city)
                       and (utility is None or p.utility == utility)), key=lambda p: p.id)


class FilePartnerDirectory(PartnerDirectory):
    def __init__(self, partners_file: PartnersFile):
        self._file = partners_file
        self._by_id = {p.id: p for p in partners_file.partners}

    @classmethod
    def from_path(cls, path: str) -> "FilePartnerDirectory":
        return cls(PartnersFile.load(path))

    def get(self, partner_id: str) -> Partner | None:
        return self._by_id.get(partner_id)

    def all(self) -> list[Partner]:
        return list(self._by_id.values())

    def hub_secret(self) -> str:
        return self._file.hub.signing_secret


class AwsPartnerDirectory(PartnerDirectory):
    """Partners table + Secrets Manager (`{prefix}{partner_id}` holds {"secrets": [...]})."""

    def __init__(self, table: str, secret_prefix: str, hub_secret_id: str, ttl_s: float = 60.0):
        self._table = table
        self._prefix = secret_prefix
        self._hub_secret_id = hub_secret_id
        self._ttl = ttl_s
        self._lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._by_id: dict[str, Partner] = {}
        self._hub_secret: str | None = None

    def _refresh_if_stale(self) -> None:
        """Reload when the copy is older than the TTL. Only the first load makes callers wait: while one
        thread refreshes, the others go on with the copy they have."""
        if time.monotonic() - self._loaded_at < self._ttl:
            return
        never_loaded = self._loaded_at == float("-inf")
        if not self._lock.acquire(blocking=never_loaded):
            return
        try:
            if time.monotonic() - self._loaded_at < self._ttl:
                return
            self._by_id = {p.id: p for p in self._load_all()}
            self._hub_secret = self._read_secret(self._hub_secret_id)
            self._loaded_at = time.monotonic()
        finally:
            self._lock.release()

    def _read_secret(self, secret_id: str) -> str:
        from chalicelib import aws

        raw = aws.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
        return raw.strip()

    def _partner_secrets(self) -> dict[str, list[str]]:
        """Every partner's secrets in a few calls (20 a call), not one call per partner."""
        from chalicelib import aws

        found: dict[str, list[str]] = {}
        request: dict = {"Filters": [{"Key": "name", "Values": [self._prefix]}], "MaxResults": 20}
        while True:
            page = aws.client("secretsmanager").batch_get_secret_value(**request)
            for value in page["SecretValues"]:
                if value["Name"].startswith(self._prefix):
                    found[value["Name"][len(self._prefix):]] = json.loads(value["SecretString"])["secrets"]
            if not page.get("NextToken"):
                return found
            request["NextToken"] = page["NextToken"]

    def _load_all(self) -> list[Partner]:
        from chalicelib import aws

        secrets = self._partner_secrets()
        found = []
        for page in aws.client("dynamodb").get_paginator("scan").paginate(TableName=self._table, ConsistentRead=True):
            for item in page["Items"]:
                record = json.loads(item["record"]["S"])
                if record["id"] in secrets:  # a record whose secret is not written yet is not a partner yet
                    found.append(PartnerRecord.model_validate({**record, "secrets": secrets[record["id"]]}))
        return found

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")

    def get(self, partner_id: str) -> Partner | None:
        self._refresh_if_stale()
        return self._by_id.get(partner_id)

    def all(self) -> list[Partner]:
        self._refresh_if_stale()
        return list(self._by_id.values())

    def hub_secret(self) -> str:
        self._refresh_if_stale()
        assert self._hub_secret is not None
        return self._hub_secret


_directory: PartnerDirectory | None = None
_directory_lock = threading.Lock()


def get_directory() -> PartnerDirectory:
    global _directory
    if _directory is None:
        with _directory_lock:
            if _directory is None:
                from chalicelib.settings import get_settings

                s = get_settings()
                if s.partner_source == "aws":
                    _directory = AwsPartnerDirectory(s.partners_table, s.partner_secret_prefix,
                                                     s.hub_secret_id, s.partner_cache_ttl_s)
                elif s.partners_file:
                    _directory = FilePartnerDirectory.from_path(s.partners_file)
                else:
                    raise RuntimeError("HUB_PARTNERS must name a partners file when HUB_PARTNER_SOURCE=file")
    return _directory


def set_directory(directory: PartnerDirectory | None) -> None:
    """Tests and local mode install a directory explicitly; None forgets it."""
    global _directory
    _directory = directory
