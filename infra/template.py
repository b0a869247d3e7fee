"""Turn Chalice's SAM output into the deployable template.

What Chalice cannot say, this module adds:
* the resources of `infra/resources.json` (merged; a logical id clash is an error), and its
  Parameters, Conditions and Outputs;
* the DynamoDB event source reads the events table's real stream ({"Fn::GetAtt": [..., "StreamArn"]})
  instead of the placeholder ARN in app.py, and the SQS event source the queue of the fragment
  (Fn::GetAtt, so CloudFormation creates queue and table before the event source mappings);
* the operators' Cognito authorizer (app.OPERATORS) checks ID tokens of the user pool of the fragment
  ({"Fn::GetAtt": [..., "Arn"]}) instead of the placeholder ARN in app.py;
* FunctionResponseTypes ["ReportBatchItemFailures"] on the SQS and DynamoDB stream event sources;
* our IAM policy (`infra/policy.py`) instead of Chalice's on every function role;
* HUB_PARTNER_SOURCE=aws, the resource names/URL/ARNs (Metadata.HubEnvironment) and the operators'
  sign-in through the user pool (Metadata.HubAwsEnvironment) on every function;
* Outputs with the same values, for the operator.

An event source or authorizer this module does not recognise is an error rather than left as Chalice
wrote it.
"""
from __future__ import annotations

import copy
import re
from typing import Any

from infra.fragment import aws_environment, environment, find_by_name, load_fragment
from infra.policy import POLICY_NAME, hub_policy_document

FUNCTION = "AWS::Serverless::Function"
API = "AWS::Serverless::Api"
BATCH_ITEM_FAILURES = ["ReportBatchItemFailures"]
DESCRIPTION = ("Registration hub: Chalice app (SAM) with its tables, queues, buckets, secrets and the operators' "
               "user pool (infra/).")
TEMPLATE_SECTIONS = ("Parameters", "Conditions", "Outputs")

_STREAM_TABLE = re.compile(r"^arn:[^:]+:dynamodb:[^:]*:[^:]*:table/([^/]+)/stream/")
_USER_POOL = re.compile(r"^arn:[^:]+:cognito-idp:[^:]*:[^:]*:userpool/([^/]+)/")


def _queue_name(queue: Any) -> str:
    """The queue name from Chalice's SQS event source (a Sub'd ARN, a literal ARN or a name)."""
    if isinstance(queue, dict) and set(queue) == {"Fn::Sub"} and isinstance(queue["Fn::Sub"], str):
        queue = queue["Fn::Sub"]
    if not isinstance(queue, str):
        raise ValueError(f"unrecognised SQS event source queue: {queue!r}")
    return queue.rsplit(":", 1)[-1]


def _wire_stream(props: dict[str, Any], fragment: dict[str, Any], placeholder: str) -> None:
    stream = props.get("Stream")
    if stream != placeholder:
        raise ValueError(f"DynamoDB event source reads {stream!r}, expected app.EVENTS_STREAM_ARN {placeholder!r}")
    found = _STREAM_TABLE.match(stream)
    if not found:
        raise ValueError(f"cannot find the table name in the stream ARN {stream!r}")
    table = find_by_name(fragment, "AWS::DynamoDB::Table", found.group(1))
    if "StreamSpecification" not in fragment["Resources"][table]["Properties"]:
        raise ValueError(f"{table} has no StreamSpecification in resources.json")
    props["Stream"] = {"Fn::GetAtt": [table, "StreamArn"]}
    props["FunctionResponseTypes"] = list(BATCH_ITEM_FAILURES)


def _wire_queue(props: dict[str, Any], fragment: dict[str, Any]) -> None:
    queue = find_by_name(fragment, "AWS::SQS::Queue", _queue_name(props.get("Queue")))
    props["Queue"] = {"Fn::GetAtt": [queue, "Arn"]}
    props["FunctionResponseTypes"] = list(BATCH_ITEM_FAILURES)


def _wire_bucket_events(props: dict[str, Any], fragment: dict[str, Any]) -> None:
    """Chalice takes a literal bucket name in the EventBridge pattern; point it at the bucket of the template."""
    pattern = props.get("Pattern") or {}
    names = ((pattern.get("detail") or {}).get("bucket") or {}).get("name")
    if pattern.get("source") != ["aws.s3"] or not isinstance(names, list) or len(names) != 1:
        raise ValueError(f"unrecognised EventBridge pattern: {pattern!r}")
    pattern["detail"]["bucket"]["name"] = [{"Ref": find_by_name(fragment, "AWS::S3::Bucket", names[0])}]


def _wire_user_pool_authorizers(api_id: str, api: dict[str, Any], fragment: dict[str, Any],
                                 placeholder: str) -> None:
    """Chalice takes literal user pool ARNs; point each authorizer at the user pool of the template."""
    definitions = (api["Properties"].get("DefinitionBody") or {}).get("securityDefinitions") or {}
    for name, scheme in definitions.items():
        authorizer = scheme.get("x-amazon-apigateway-authorizer") or {}
        if authorizer.get("type") != "cognito_user_pools":
            raise ValueError(f"{api_id}: authorizer {name} of type {authorizer.get('type')!r} is not handled "
                             "by infra/template.py")
        if authorizer.get("providerARNs") != [placeholder]:
            raise ValueError(f"{api_id}: authorizer {name} names {authorizer.get('providerARNs')!r}, expected "
                             f"app.OPERATOR_POOL_ARN {placeholder!r}")
        found = _USER_POOL.match(placeholder)
        if not found:
            raise ValueError(f"cannot find the user pool name in the ARN {placeholder!r}")
        pool = find_by_name(fragment, "AWS::Cognito::UserPool", found.group(1))
        authorizer["providerARNs"] = [{"Fn::GetAtt": [pool, "Arn"]}]


def _merge(template: dict[str, Any], fragment: dict[str, Any], section: str) -> None:
    into = template.setdefault(section, {})
    clash = sorted(set(into) & set(fragment.get(section, {})))
    if clash:
        raise ValueError(f"{section} defined both by Chalice and resources.json: {clash}")
    into.update(copy.deepcopy(fragment.get(section, {})))


def _output_name(env_var: str) -> str:
    return "".join(part.capitalize() for part in env_var.split("_"))


def build_template(sam: dict[str, Any], fragment: dict[str, Any] | None = None, *,
                   stream_placeholder: str, operator_pool_placeholder: str) -> dict[str, Any]:
    """The deployable template: `sam` (Chalice's sam.json) completed as described above."""
    template = copy.deepcopy(sam)
    fragment = load_fragment() if fragment is None else copy.deepcopy(fragment)
    resources = template.setdefault("Resources", {})

    clash = sorted(set(resources) & set(fragment["Resources"]))
    if clash:
        raise ValueError(f"logical ids defined both by Chalice and resources.json: {clash}")
    resources.update(copy.deepcopy(fragment["Resources"]))
    for section in TEMPLATE_SECTIONS:
        _merge(template, fragment, section)
    for logical_id, api in resources.items():
        if api["Type"] == API:
            _wire_user_pool_authorizers(logical_id, api, fragment, operator_pool_placeholder)

    env, aws_only = environment(fragment), aws_environment(fragment)
    if set(env) & set(aws_only):
        raise ValueError(f"set both by HubEnvironment and HubAwsEnvironment: {sorted(set(env) & set(aws_only))}")
    env.update(aws_only)
    policy = hub_policy_document(fragment)
    functions = {lid: r for lid, r in resources.items() if r["Type"] == FUNCTION}
    if not functions:
        raise ValueError("Chalice's template has no functions")

    roles = set()
    for logical_id, function in functions.items():
        props = function["Properties"]
        variables = props.setdefault("Environment", {}).setdefault("Variables", {})
        variables["HUB_PARTNER_SOURCE"] = "aws"
        variables.update(copy.deepcopy(env))
        role = props.get("Role")
        if not (isinstance(role, dict) and list(role) == ["Fn::GetAtt"] and role["Fn::GetAtt"][1] == "Arn"):
            raise ValueError(f"{logical_id}: expected Role to be Fn::GetAtt of a role in the template, got {role!r}")
        roles.add(role["Fn::GetAtt"][0])
        for name, event in props.get("Events", {}).items():
            kind = event["Type"]
            if kind == "DynamoDB":
                _wire_stream(event["Properties"], fragment, stream_placeholder)
            elif kind == "SQS":
                _wire_queue(event["Properties"], fragment)
            elif kind == "CloudWatchEvent":
                _wire_bucket_events(event["Properties"], fragment)
            elif kind not in ("Schedule", "Api"):
                raise ValueError(f"{logical_id}.{name}: event source type {kind} is not handled by infra/template.py")

    for role in sorted(roles):
        found = resources.get(role)
        if not found or found["Type"] != "AWS::IAM::Role":
            raise ValueError(f"function role {role} is not an AWS::IAM::Role of the template")
        found["Properties"]["Policies"] = [{"PolicyName": POLICY_NAME, "PolicyDocument": copy.deepcopy(policy)}]
        found["Properties"].pop("ManagedPolicyArns", None)

    outputs = template["Outputs"]
    for env_var, value in env.items():
        outputs[_output_name(env_var)] = {"Description": f"{env_var} of the hub's functions",
                                          "Value": copy.deepcopy(value)}
    template["Description"] = DESCRIPTION
    return template
