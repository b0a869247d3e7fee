"""The IAM policy of the hub's Lambda functions, written by hand (Chalice's policy is replaced).

Least privilege: every statement names its resources by Ref / Fn::GetAtt of `infra/resources.json`
or by an ARN pattern built with ${AWS::Partition} (China regions are `aws-cn`). The only "*" resources are
secretsmanager:BatchGetSecretValue/ListSecrets (the batched read of partner secrets) and
dynamodb:ListStreams, which IAM does not scope to a resource.
"""
from __future__ import annotations

from typing import Any

from infra.fragment import resources_of_type

TABLES = ("EventsTable", "DeliveriesTable", "PartnersTable", "CasesTable", "DocumentsTable", "AuditTable")
EVENTS_TABLE = "EventsTable"
DELIVERIES_TABLE = "DeliveriesTable"
AUDIT_TABLE = "AuditTable"
AUDIT_BUCKET = "AuditBucket"
AUDIT_KEY = "AuditSigningKey"
PARTNERS_TABLE = "PartnersTable"
QUEUE = "DeliveryQueue"
BUCKET = "DocumentsBucket"
HUB_SECRET = "HubSigningSecret"
# chalicelib.settings: HUB_PARTNER_SECRET_PREFIX defaults to "hub/partners/".
PARTNER_SECRETS = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:hub/partners/*"
# SAM names a function without FunctionName "<stack>-<LogicalId>-<suffix>"; its log group follows.
LOG_GROUPS = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/${AWS::StackName}-*"

POLICY_NAME = "HubFunctionPolicy"


def _arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def hub_policy_document(fragment: dict[str, Any]) -> dict[str, Any]:
    tables = resources_of_type(fragment, "AWS::DynamoDB::Table")
    missing = [lid for lid in (*TABLES, QUEUE, BUCKET, HUB_SECRET, AUDIT_BUCKET, AUDIT_KEY)
               if lid not in fragment["Resources"]]
    if missing:
        raise KeyError(f"policy refers to resources missing from resources.json: {missing}")
    indexes = [
        {"Fn::Sub": f"${{{lid}.Arn}}/index/{gsi['IndexName']}"}
        for lid in TABLES
        for gsi in tables[lid]["Properties"].get("GlobalSecondaryIndexes", [])
    ]
    statements: list[dict[str, Any]] = [
        {
            "Sid": "HubTables",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query",
                       "dynamodb:ConditionCheckItem"],
            "Resource": [_arn(lid) for lid in TABLES],
        },
    ]
    if indexes:
        statements.append({"Sid": "HubTableIndexes", "Effect": "Allow", "Action": ["dynamodb:Query"],
                           "Resource": indexes})
    statements += [
        {
            # chalicelib.partners loads the whole (small) partners table with a paginated Scan.
            "Sid": "PartnersTableScan",
            "Effect": "Allow",
            "Action": ["dynamodb:Scan"],
            "Resource": [_arn(PARTNERS_TABLE)],
        },
        {
            "Sid": "EventsStreamRead",
            "Effect": "Allow",
            "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
            "Resource": [{"Fn::GetAtt": [EVENTS_TABLE, "StreamArn"]}],
        },
        {
            # The audit sequencer reads delivery outcomes from this stream (chalicelib/audit/log.py).
            "Sid": "AuditStreamsRead",
            "Effect": "Allow",
            "Action": ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
            "Resource": [{"Fn::GetAtt": [DELIVERIES_TABLE, "StreamArn"]}],
        },
        {
            # The sequencer reads and marks a batch of leaves at a time.
            "Sid": "AuditTableBatch",
            "Effect": "Allow",
            "Action": ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"],
            "Resource": [_arn(AUDIT_TABLE)],
        },
        {
            # Lambda's stream event source mapping calls ListStreams; IAM has no resource for it.
            "Sid": "StreamsList",
            "Effect": "Allow",
            "Action": ["dynamodb:ListStreams"],
            "Resource": "*",
        },
        {
            "Sid": "DeliveryQueue",
            "Effect": "Allow",
            "Action": ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                       "sqs:ChangeMessageVisibility"],
            "Resource": [_arn(QUEUE)],
        },
        {
            "Sid": "DocumentsBucketObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject", "s3:DeleteObject",
                       "s3:DeleteObjectVersion"],
            "Resource": [{"Fn::Sub": f"${{{BUCKET}.Arn}}/*"}],
        },
        {
            # Without ListBucket a missing object answers 403 instead of 404.
            "Sid": "DocumentsBucketList",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [_arn(BUCKET)],
        },
        {
            # The audit log's tiles, entry bundles and checkpoint (c2sp.org/tlog-tiles).
            "Sid": "AuditBucketObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": [{"Fn::Sub": f"${{{AUDIT_BUCKET}.Arn}}/*"}],
        },
        {
            "Sid": "AuditBucketList",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [_arn(AUDIT_BUCKET)],
        },
        {
            # Reading every partner's secret in batches needs these two; IAM scopes neither to a resource.
            # GetSecretValue on each secret (below) still decides which values are returned.
            "Sid": "PartnerSecretsBatch",
            "Effect": "Allow",
            "Action": ["secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets"],
            "Resource": "*",
        },
        {
            "Sid": "HubSecrets",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": [{"Ref": HUB_SECRET}, {"Ref": AUDIT_KEY}, {"Fn::Sub": PARTNER_SECRETS}],
        },
        {
            "Sid": "FunctionLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": [{"Fn::Sub": LOG_GROUPS}, {"Fn::Sub": LOG_GROUPS + ":*"}],
        },
    ]
    return {"Version": "2012-10-17", "Statement": statements}
