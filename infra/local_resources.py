"""Create the resources of `infra/resources.json` through boto3 against an AWS-compatible endpoint.

A small interpreter of the CloudFormation fragment, not a second list of resources: each resource
type has one function that translates its CloudFormation properties into API calls, and Ref /
Fn::GetAtt / Fn::Sub / Fn::Join are resolved against what was created. A property the interpreter
does not know is an error, so a change to the fragment cannot be silently ignored locally.

Idempotent: every resource is looked up first, created only if missing, and a setting is written
only when it differs from the declared one, so a second call on the same endpoint writes nothing.

The operators' Cognito user pool and its parts (AWS_ONLY_TYPES) are not created: local mode signs
operators in with a token (chalicelib/ops_api.py), so a pool would have nothing to do, and moto, like
AWS, has no Cognito user pools in the China regions the hub runs in. Their settings are checked by
cfn-lint and tests/test_package.py on the deployable template instead.

    python -m infra.local_resources --endpoint http://127.0.0.1:5000   # prints the env vars as JSON
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Callable

from infra.fragment import NAME_PROPERTY, environment, load_fragment, local_names, references

log = logging.getLogger(__name__)

DEFAULT_REGION = "cn-north-1"
_RESOURCE_KEYS = {"Type", "Properties", "DeletionPolicy", "UpdateReplacePolicy", "DependsOn", "Metadata"}
AWS_ONLY_TYPES = frozenset({"AWS::Cognito::UserPool", "AWS::Cognito::UserPoolClient", "AWS::Cognito::UserPoolGroup",
                            "AWS::Cognito::UserPoolDomain",
                            # API Gateway's own answer to a refused operator token, in the hub's error shape
                            "AWS::ApiGateway::GatewayResponse"})


def ensure_resources(endpoint_url: str | None, region: str = DEFAULT_REGION, *, session: Any = None,
                     fragment: dict[str, Any] | None = None) -> dict[str, str]:
    """Create (or find) every resource of the fragment; return the env vars the hub reads.

    `session` (a boto3 Session) is optional; without one, a local endpoint gets static test
    credentials unless the environment provides some.
    """
    fragment = load_fragment() if fragment is None else fragment
    ctx = _Context(endpoint_url, region, session, local_names(fragment))
    resources = fragment["Resources"]
    for logical_id in _creation_order(resources):
        resource = resources[logical_id]
        if resource["Type"] in AWS_ONLY_TYPES:
            ctx.aws_only.add(logical_id)
            continue
        unknown = set(resource) - _RESOURCE_KEYS
        if unknown:
            raise NotImplementedError(f"{logical_id}: resource keys {sorted(unknown)} are not supported locally")
        handler = _HANDLERS.get(resource["Type"])
        if handler is None:
            raise NotImplementedError(f"{logical_id}: resource type {resource['Type']} is not supported locally")
        ensure, known = handler
        props = resource.get("Properties", {})
        unknown = set(props) - known
        if unknown:
            raise NotImplementedError(f"{logical_id} ({resource['Type']}): properties {sorted(unknown)} "
                                      "are not translated by infra/local_resources.py")
        name = ctx.physical_name(logical_id, resource)
        ctx.attributes[logical_id] = ensure(ctx, logical_id, name, props)
    return {key: str(ctx.resolve(value)) for key, value in environment(fragment).items()}


# --------------------------------------------------------------------------------------------------
# context: clients, names, intrinsic functions


class _Context:
    def __init__(self, endpoint_url: str | None, region: str, session: Any, names: dict[str, str]):
        import boto3
        from botocore.config import Config

        self.endpoint_url = endpoint_url
        self.region = region
        self.names = names
        self.attributes: dict[str, dict[str, Any]] = {}
        self.aws_only: set[str] = set()
        self._account_id: str | None = None
        if session is None:
            creds: dict[str, str] = {}
            if endpoint_url and not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
                creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
            session = boto3.session.Session(region_name=region, **creds)
        self.session = session
        options: dict[str, Any] = {"retries": {"mode": "standard", "max_attempts": 4}}
        if endpoint_url:
            # Newer botocore may build account-based DynamoDB endpoints; a local endpoint has none.
            options["account_id_endpoint_mode"] = "disabled"
        self._config = Config(**options)
        self._clients: dict[str, Any] = {}
        self.poll_s = 0.2 if endpoint_url else 5.0

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.region,
                                                         endpoint_url=self.endpoint_url, config=self._config)
        return self._clients[service]

    @property
    def partition(self) -> str:
        if self.region.startswith("cn-"):
            return "aws-cn"
        if self.region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    @property
    def account_id(self) -> str:
        if self._account_id is None:
            self._account_id = self.client("sts").get_caller_identity()["Account"]
        return self._account_id

    def physical_name(self, logical_id: str, resource: dict[str, Any]) -> str:
        try:
            name = self.names[logical_id]
        except KeyError:
            raise KeyError(f"{logical_id}: no local name; add it to Metadata.HubLocalNames") from None
        declared = resource.get("Properties", {}).get(NAME_PROPERTY.get(resource["Type"], ""))
        if isinstance(declared, str) and declared != name:
            raise ValueError(f"{logical_id}: local name {name!r} differs from its declared name {declared!r}")
        return name

    def pseudo(self, name: str) -> str:
        values: dict[str, Callable[[], str]] = {
            "AWS::Region": lambda: self.region,
            "AWS::Partition": lambda: self.partition,
            "AWS::AccountId": lambda: self.account_id,
            "AWS::URLSuffix": lambda: "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com",
            "AWS::StackName": lambda: "local",
        }
        if name not in values:
            raise NotImplementedError(f"pseudo parameter {name} is not supported locally")
        return values[name]()

    def _attribute(self, logical_id: str, attribute: str) -> Any:
        if logical_id.startswith("AWS::") and attribute == "Ref":
            return self.pseudo(logical_id)
        if logical_id in self.aws_only:
            raise KeyError(f"{logical_id} is not created locally (AWS_ONLY_TYPES): refer to it from "
                           "Metadata.HubAwsEnvironment, not HubEnvironment")
        if logical_id not in self.attributes:
            raise KeyError(f"{logical_id} is referred to before it exists (or is not in the fragment)")
        found = self.attributes[logical_id].get(attribute)
        if found is None:
            raise KeyError(f"{logical_id} has no attribute {attribute!r} locally")
        return found

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self._attribute(arg, "Ref")
            if key == "Fn::GetAtt":
                logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._attribute(logical_id, attribute)
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                separator, items = arg
                return separator.join(str(v) for v in self.resolve(items))
            if key.startswith("Fn::") or key == "Condition":
                raise NotImplementedError(f"{key} is not supported locally")
        return {k: self.resolve(v) for k, v in value.items()}

    def _sub(self, arg: Any) -> str:
        import re

        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self.resolve(arg[1]))

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return str(self._attribute(logical_id, attribute))
            return str(self._attribute(name, "Ref"))

        return re.sub(r"\$\{([^}!][^}]*)\}", one, text)


def _creation_order(resources: dict[str, dict[str, Any]]) -> list[str]:
    """Dependencies first (Ref/GetAtt/Sub and DependsOn); otherwise the order of the file."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(logical_id: str, path: tuple[str, ...]) -> None:
        if state.get(logical_id) == "done":
            return
        if state.get(logical_id) == "visiting":
            raise ValueError(f"circular reference: {' -> '.join(path + (logical_id,))}")
        state[logical_id] = "visiting"
        resource = resources[logical_id]
        depends = resource.get("DependsOn", [])
        depends = [depends] if isinstance(depends, str) else depends
        for dep in [*references(resource.get("Properties", {})), *depends]:
            if dep in resources:
                visit(dep, path + (logical_id,))
        state[logical_id] = "done"
        order.append(logical_id)

    for logical_id in resources:
        visit(logical_id, ())
    return order


def _error_code(exc: Exception) -> str:
    return (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")


def _contains(current: Any, desired: Any) -> bool:
    """True when every declared key/value of `desired` is in `current` (services add defaults)."""
    if isinstance(desired, dict):
        return isinstance(current, dict) and all(k in current and _contains(current[k], v) for k, v in desired.items())
    if isinstance(desired, list):
        return (isinstance(current, list) and len(current) == len(desired)
                and all(_contains(c, d) for c, d in zip(current, desired)))
    return current == desired


def _tags(props: dict[str, Any], ctx: _Context) -> list[dict[str, str]]:
    return [{"Key": t["Key"], "Value": str(ctx.resolve(t["Value"]))} for t in props.get("Tags", [])]


# --------------------------------------------------------------------------------------------------
# AWS::DynamoDB::Table

_TABLE_PROPS = {"TableName", "BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes",
                "LocalSecondaryIndexes", "ProvisionedThroughput", "StreamSpecification",
                "TimeToLiveSpecification", "SSESpecification", "PointInTimeRecoverySpecification",
                "TableClass", "DeletionProtectionEnabled", "Tags"}
_INDEX_KEYS = {"IndexName", "KeySchema", "Projection", "ProvisionedThroughput"}


def _throughput(value: dict[str, Any]) -> dict[str, int]:
    return {"ReadCapacityUnits": int(value["ReadCapacityUnits"]), "WriteCapacityUnits": int(value["WriteCapacityUnits"])}


def _index(index: dict[str, Any]) -> dict[str, Any]:
    unknown = set(index) - _INDEX_KEYS
    if unknown:
        raise NotImplementedError(f"index {index.get('IndexName')}: keys {sorted(unknown)} are not translated")
    out = {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
    if "ProvisionedThroughput" in index:
        out["ProvisionedThroughput"] = _throughput(index["ProvisionedThroughput"])
    return out


def _describe_table(ddb: Any, name: str) -> dict[str, Any] | None:
    try:
        return ddb.describe_table(TableName=name)["Table"]
    except Exception as exc:
        if _error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def _wait_table_idle(ctx: _Context, name: str, timeout_s: float = 900) -> dict[str, Any]:
    ddb = ctx.client("dynamodb")
    deadline = time.monotonic() + timeout_s
    while True:
        table = _describe_table(ddb, name)
        if table is not None and table["TableStatus"] == "ACTIVE" and all(
                g.get("IndexStatus", "ACTIVE") == "ACTIVE" for g in table.get("GlobalSecondaryIndexes", [])):
            return table
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} did not become ACTIVE")
        time.sleep(ctx.poll_s)


def _ensure_table(ctx: _Context, logical_id: str, name: str, props: dict[str, Any]) -> dict[str, Any]:
    ddb = ctx.client("dynamodb")
    stream = props.get("StreamSpecification")
    table = _describe_table(ddb, name)
    if table is None:
        args: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        if "ProvisionedThroughput" in props:
            args["ProvisionedThroughput"] = _throughput(props["ProvisionedThroughput"])
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if props.get(key):
                args[key] = [_index(i) for i in props[key]]
        if stream:
            args["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        if "SSESpecification" in props:
            sse = props["SSESpecification"]
            args["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled", False)),
                                        **{k: sse[k] for k in ("SSEType",) if k in sse},
                                        **({"KMSMasterKeyId": sse["KMSMasterKeyId"]} if "KMSMasterKeyId" in sse else {})}
        if "TableClass" in props:
            args["TableClass"] = props["TableClass"]
        if "DeletionProtectionEnabled" in props:
            args["DeletionProtectionEnabled"] = bool(props["DeletionProtectionEnabled"])
        if props.get("Tags"):
            args["Tags"] = _tags(props, ctx)
        log.info("creating table %s", name)
        ddb.create_table(**args)
        table = _wait_table_idle(ctx, name)
    else:
        if sorted(map(tuple, (k.items() for k in table["KeySchema"]))) != sorted(
                map(tuple, (k.items() for k in props["KeySchema"]))):
            raise ValueError(f"table {name} exists with another key schema; delete it to recreate it")
        present = {g["IndexName"] for g in table.get("GlobalSecondaryIndexes", [])}
        for index in props.get("GlobalSecondaryIndexes", []):
            if index["IndexName"] not in present:
                log.info("adding index %s to table %s", index["IndexName"], name)
                ddb.update_table(TableName=name, AttributeDefinitions=props["AttributeDefinitions"],
                                 GlobalSecondaryIndexUpdates=[{"Create": _index(index)}])
                table = _wait_table_idle(ctx, name)
        current = table.get("StreamSpecification") or {}
        current_view = current.get("StreamViewType") if current.get("StreamEnabled") else None
        wanted_view = stream["StreamViewType"] if stream else None
        if current_view != wanted_view:
            if current_view is not None:
                ddb.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
                _wait_table_idle(ctx, name)
            if wanted_view is not None:
                ddb.update_table(TableName=name,
                                 StreamSpecification={"StreamEnabled": True, "StreamViewType": wanted_view})
            table = _wait_table_idle(ctx, name)

    ttl = props.get("TimeToLiveSpecification")
    if ttl is not None:
        current = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        enabled = current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")
        if bool(ttl.get("Enabled")) != enabled or (enabled and current.get("AttributeName") != ttl["AttributeName"]):
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={
                "AttributeName": ttl["AttributeName"], "Enabled": bool(ttl.get("Enabled"))})

    pitr = props.get("PointInTimeRecoverySpecification")
    if pitr is not None:
        wanted = bool(pitr.get("PointInTimeRecoveryEnabled"))
        current = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        status = current.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
        if (status == "ENABLED") != wanted:
            ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
                "PointInTimeRecoveryEnabled": wanted})

    return {"Ref": name, "Arn": table["TableArn"], "StreamArn": table.get("LatestStreamArn")}


# --------------------------------------------------------------------------------------------------
# AWS::SQS::Queue

_QUEUE_ATTRIBUTES = {"VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize",
                     "ReceiveMessageWaitTimeSeconds", "RedrivePolicy", "RedriveAllowPolicy", "KmsMasterKeyId",
                     "KmsDataKeyReusePeriodSeconds", "SqsManagedSseEnabled", "FifoQueue",
                     "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"}
_QUEUE_PROPS = _QUEUE_ATTRIBUTES | {"QueueName", "Tags"}
_JSON_ATTRIBUTES = {"RedrivePolicy", "RedriveAllowPolicy"}


def _sqs_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _same_sqs_value(attribute: str, current: str | None, wanted: str) -> bool:
    if current is None:
        return False
    if attribute in _JSON_ATTRIBUTES:
        as_text = lambda doc: {k: _sqs_value(v) for k, v in json.loads(doc).items()}  # noqa: E731
        return as_text(current) == as_text(wanted)
    return current.lower() == wanted.lower()


def _ensure_queue(ctx: _Context, logical_id: str, name: str, props: dict[str, Any]) -> dict[str, Any]:
    sqs = ctx.client("sqs")
    wanted = {k: _sqs_value(ctx.resolve(v)) for k, v in props.items() if k in _QUEUE_ATTRIBUTES}
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except Exception as exc:
        if _error_code(exc) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise
        url = None
    if url is None:
        log.info("creating queue %s", name)
        args: dict[str, Any] = {"QueueName": name, "Attributes": wanted}
        if props.get("Tags"):
            args["tags"] = {t["Key"]: t["Value"] for t in _tags(props, ctx)}
        url = sqs.create_queue(**args)["QueueUrl"]
        current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    else:
        current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        changed = {k: v for k, v in wanted.items()
                   if k != "FifoQueue" and not _same_sqs_value(k, current.get(k), v)}
        if changed:
            log.info("updating queue %s: %s", name, sorted(changed))
            sqs.set_queue_attributes(QueueUrl=url, Attributes=changed)
    return {"Ref": url, "QueueUrl": url, "Arn": current["QueueArn"], "QueueName": name}


# --------------------------------------------------------------------------------------------------
# AWS::S3::Bucket

_BUCKET_PROPS = {"BucketName", "PublicAccessBlockConfiguration", "BucketEncryption", "VersioningConfiguration",
                 "OwnershipControls", "LifecycleConfiguration", "Tags", "NotificationConfiguration"}
_RULE_KEYS = {"Id", "Status", "Prefix", "ExpirationInDays", "ExpirationDate", "AbortIncompleteMultipartUpload",
              "NoncurrentVersionExpirationInDays", "NoncurrentVersionExpiration"}


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    unknown = set(rule) - _RULE_KEYS
    if unknown:
        raise NotImplementedError(f"lifecycle rule {rule.get('Id')}: keys {sorted(unknown)} are not translated")
    out: dict[str, Any] = {"Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "Id" in rule:
        out["ID"] = rule["Id"]
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    if "ExpirationDate" in rule:
        out["Expiration"] = {"Date": rule["ExpirationDate"]}
    if "AbortIncompleteMultipartUpload" in rule:
        out["AbortIncompleteMultipartUpload"] = {
            "DaysAfterInitiation": int(rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"])}
    if "NoncurrentVersionExpirationInDays" in rule:
        out["NoncurrentVersionExpiration"] = {"NoncurrentDays": int(rule["NoncurrentVersionExpirationInDays"])}
    if "NoncurrentVersionExpiration" in rule:
        out["NoncurrentVersionExpiration"] = dict(rule["NoncurrentVersionExpiration"])
    return out


def _get_or_none(call: Callable[[], Any], *missing_codes: str) -> Any:
    try:
        return call()
    except Exception as exc:
        if _error_code(exc) in missing_codes:
            return None
        raise


def _ensure_bucket(ctx: _Context, logical_id: str, name: str, props: dict[str, Any]) -> dict[str, Any]:
    s3 = ctx.client("s3")
    exists = _get_or_none(lambda: s3.head_bucket(Bucket=name), "404", "NoSuchBucket", "NotFound")
    if exists is None:
        log.info("creating bucket %s", name)
        args: dict[str, Any] = {"Bucket": name}
        if ctx.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
        s3.create_bucket(**args)

    if "PublicAccessBlockConfiguration" in props:
        wanted = {k: bool(props["PublicAccessBlockConfiguration"].get(k, False)) for k in
                  ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")}
        current = _get_or_none(lambda: s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"],
                               "NoSuchPublicAccessBlockConfiguration")
        if current != wanted:
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=wanted)

    if "OwnershipControls" in props:
        wanted = {"Rules": [{"ObjectOwnership": r["ObjectOwnership"]} for r in props["OwnershipControls"]["Rules"]]}
        current = _get_or_none(lambda: s3.get_bucket_ownership_controls(Bucket=name)["OwnershipControls"],
                               "OwnershipControlsNotFoundError")
        if not _contains(current, wanted):
            s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=wanted)

    if "BucketEncryption" in props:
        rules = []
        for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]:
            out: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": dict(rule["ServerSideEncryptionByDefault"])}
            if "BucketKeyEnabled" in rule:
                out["BucketKeyEnabled"] = bool(rule["BucketKeyEnabled"])
            rules.append(out)
        wanted = {"Rules": rules}
        current = _get_or_none(lambda: s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"],
                               "ServerSideEncryptionConfigurationNotFoundError")
        if not _contains(current, wanted):
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration=wanted)

    if exists is None and props.get("NotificationConfiguration", {}).get("EventBridgeConfiguration", {}).get(
            "EventBridgeEnabled"):
        # Object-created events go to EventBridge in AWS; local mode's upload driver plays that part.
        # moto accepts this but never reports it back, so it is written once, when the bucket is made.
        s3.put_bucket_notification_configuration(Bucket=name,
                                                 NotificationConfiguration={"EventBridgeConfiguration": {}})

    if "VersioningConfiguration" in props:
        wanted_status = props["VersioningConfiguration"]["Status"]
        current_status = s3.get_bucket_versioning(Bucket=name).get("Status")
        # A bucket that never had versioning behaves like a suspended one; nothing to write then.
        if current_status != wanted_status and not (wanted_status == "Suspended" and current_status is None):
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": wanted_status})

    if "LifecycleConfiguration" in props:
        wanted = {"Rules": [_lifecycle_rule(r) for r in props["LifecycleConfiguration"]["Rules"]]}
        current = _get_or_none(lambda: {"Rules": s3.get_bucket_lifecycle_configuration(Bucket=name)["Rules"]},
                               "NoSuchLifecycleConfiguration")
        if not _contains(current, wanted):
            s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration=wanted)

    if props.get("Tags"):
        wanted_tags = _tags(props, ctx)
        current = _get_or_none(lambda: s3.get_bucket_tagging(Bucket=name)["TagSet"], "NoSuchTagSet")
        if sorted((t["Key"], t["Value"]) for t in current or []) != sorted((t["Key"], t["Value"]) for t in wanted_tags):
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": wanted_tags})

    return {"Ref": name, "Arn": f"arn:{ctx.partition}:s3:::{name}",
            "DomainName": f"{name}.s3.{ctx.pseudo('AWS::URLSuffix')}"}


# --------------------------------------------------------------------------------------------------
# AWS::SecretsManager::Secret

_SECRET_PROPS = {"Name", "Description", "SecretString", "GenerateSecretString", "KmsKeyId", "Tags"}
_GENERATE_KEYS = {"PasswordLength", "ExcludeCharacters", "ExcludeLowercase", "ExcludeNumbers",
                  "ExcludePunctuation", "ExcludeUppercase", "IncludeSpace", "RequireEachIncludedType"}


def _generated_secret(ctx: _Context, spec: dict[str, Any]) -> str:
    unknown = set(spec) - _GENERATE_KEYS - {"SecretStringTemplate", "GenerateStringKey"}
    if unknown:
        raise NotImplementedError(f"GenerateSecretString keys {sorted(unknown)} are not translated")
    args = {k: (int(v) if k == "PasswordLength" else v) for k, v in spec.items() if k in _GENERATE_KEYS}
    password = ctx.client("secretsmanager").get_random_password(**args)["RandomPassword"]
    if "SecretStringTemplate" in spec:
        document = json.loads(spec["SecretStringTemplate"])
        document[spec["GenerateStringKey"]] = password
        return json.dumps(document)
    return password


def _ensure_secret(ctx: _Context, logical_id: str, name: str, props: dict[str, Any]) -> dict[str, Any]:
    sm = ctx.client("secretsmanager")
    found = _get_or_none(lambda: sm.describe_secret(SecretId=name), "ResourceNotFoundException")
    if found is None:
        # The value is only ever written here on creation; afterwards it belongs to the operator.
        log.info("creating secret %s", name)
        args: dict[str, Any] = {"Name": name}
        if "Description" in props:
            args["Description"] = props["Description"]
        if "KmsKeyId" in props:
            args["KmsKeyId"] = ctx.resolve(props["KmsKeyId"])
        if props.get("Tags"):
            args["Tags"] = _tags(props, ctx)
        if "SecretString" in props:
            args["SecretString"] = str(ctx.resolve(props["SecretString"]))
        elif "GenerateSecretString" in props:
            args["SecretString"] = _generated_secret(ctx, props["GenerateSecretString"])
        arn = sm.create_secret(**args)["ARN"]
    else:
        arn = found["ARN"]
    return {"Ref": arn, "Id": arn}


_HANDLERS: dict[str, tuple[Callable[[_Context, str, str, dict[str, Any]], dict[str, Any]], set[str]]] = {
    "AWS::DynamoDB::Table": (_ensure_table, _TABLE_PROPS),
    "AWS::SQS::Queue": (_ensure_queue, _QUEUE_PROPS),
    "AWS::S3::Bucket": (_ensure_bucket, _BUCKET_PROPS),
    "AWS::SecretsManager::Secret": (_ensure_secret, _SECRET_PROPS),
}


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", default=os.environ.get("HUB_AWS_ENDPOINT"),
                        help="AWS-compatible endpoint URL (default: $HUB_AWS_ENDPOINT; none = real AWS)")
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(json.dumps(ensure_resources(args.endpoint, args.region), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
