"""Operator actions on the partner registry in AWS (DynamoDB record + Secrets Manager secrets).

Used by `hubctl` and by local mode, which seeds the registry from the partners file so that the
hub runs the same lookup code locally as in AWS.
"""
from __future__ import annotations

import base64
import json
import os

from chalicelib import aws
from chalicelib.partners import PartnerRecord, PartnersFile
from chalicelib.settings import get_settings

MAX_SECRETS = 10


def generate_secret(size: int = 32) -> str:
    return "whsec_" + base64.b64encode(os.urandom(size)).decode()


def _put_secret(secret_id: str, value: str) -> None:
    sm = aws.client("secretsmanager")
    try:
        sm.put_secret_value(SecretId=secret_id, SecretString=value)
    except sm.exceptions.ResourceNotFoundException:
        sm.create_secret(Name=secret_id, SecretString=value)


def _partner_secrets(partner_id: str) -> list[str]:
    s = get_settings()
    raw = aws.client("secretsmanager").get_secret_value(SecretId=s.partner_secret_prefix + partner_id)["SecretString"]
    return list(json.loads(raw)["secrets"])


def put_partner(record: PartnerRecord) -> None:
    """Create or replace a partner. The secret is written before the record that points at it."""
    s = get_settings()
    _put_secret(s.partner_secret_prefix + record.id, json.dumps({"secrets": list(record.secrets)}))
    public = record.model_dump(mode="json", exclude={"secrets"}, exclude_none=True)
    aws.client("dynamodb").put_item(TableName=s.partners_table, Item={
        "partner_id": {"S": record.id}, "record": {"S": json.dumps(public, sort_keys=True)}})


def get_partner(partner_id: str) -> dict | None:
    s = get_settings()
    item = aws.client("dynamodb").get_item(TableName=s.partners_table, Key={"partner_id": {"S": partner_id}},
                                           ConsistentRead=True).get("Item")
    return json.loads(item["record"]["S"]) if item else None


def list_partners() -> list[dict]:
    s = get_settings()
    found = []
    for page in aws.client("dynamodb").get_paginator("scan").paginate(TableName=s.partners_table):
        found.extend(json.loads(item["record"]["S"]) for item in page["Items"])
    return sorted(found, key=lambda r: r["id"])


def remove_partner(partner_id: str) -> None:
    s = get_settings()
    aws.client("dynamodb").delete_item(TableName=s.partners_table, Key={"partner_id": {"S": partner_id}})
    try:
        aws.client("secretsmanager").delete_secret(SecretId=s.partner_secret_prefix + partner_id,
                                                   ForceDeleteWithoutRecovery=True)
    except aws.client("secretsmanager").exceptions.ResourceNotFoundException:
        pass


def rotate_secret(partner_id: str) -> str:
    """Add a new secret in front of the old ones: both verify until `finish_rotation`."""
    if get_partner(partner_id) is None:
        raise KeyError(partner_id)
    new = generate_secret()
    secrets = [new] + [x for x in _partner_secrets(partner_id) if x != new][: MAX_SECRETS - 1]
    _put_secret(get_settings().partner_secret_prefix + partner_id, json.dumps({"secrets": secrets}))
    return new


def finish_rotation(partner_id: str) -> int:
    """Keep only the newest secret. Returns how many old secrets were dropped."""
    if get_partner(partner_id) is None:
        raise KeyError(partner_id)
    secrets = _partner_secrets(partner_id)
    _put_secret(get_settings().partner_secret_prefix + partner_id, json.dumps({"secrets": secrets[:1]}))
    return len(secrets) - 1


def set_hub_secret(secret: str) -> None:
    _put_secret(get_settings().hub_secret_id, secret)


def seed_from_file(partners_file: PartnersFile) -> None:
    """Make the registry hold exactly the file's partners (the file replaces what was there)."""
    set_hub_secret(partners_file.hub.signing_secret)
    wanted = {p.id for p in partners_file.partners}
    for record in partners_file.partners:
        put_partner(record)
    for existing in list_partners():
        if existing["id"] not in wanted:
            remove_partner(existing["id"])
