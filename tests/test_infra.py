"""infra/resources.json and its local interpreter (infra/local_resources.py), against moto.

The moto server runs in a thread on a free loopback port, as in local mode; one test also runs the
in-process `mock_aws` path that the functional tests' fixture uses.
"""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import boto3
import pytest

from infra.fragment import NAME_PROPERTY, aws_environment, environment, load_fragment, local_names
from infra.local_resources import AWS_ONLY_TYPES, ensure_resources

ROOT = Path(__file__).resolve().parents[1]
REGION = "cn-north-1"
READ_ONLY_PREFIXES = ("Describe", "Get", "List", "Head")


def _reset_moto(url: str) -> None:
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"), timeout=30).close()


@pytest.fixture(scope="module")
def endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    # An in-process moto server shares moto's process-wide state: start from (and leave) a clean one.
    _reset_moto(url)
    yield url
    _reset_moto(url)
    server.stop()


class CallLog:
    """Every API operation a boto3 session makes, as "service.Operation"."""

    def __init__(self):
        self.calls: list[str] = []
        self.session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                             region_name=REGION)
        self.session.events.register("before-call", self._record)

    def _record(self, model, **_):
        self.calls.append(f"{model.service_model.service_name}.{model.name}")

    def writes(self) -> list[str]:
        return [c for c in self.calls if not c.split(".", 1)[1].startswith(READ_ONLY_PREFIXES)]


@pytest.fixture(scope="module")
def created(endpoint):
    log = CallLog()
    env = ensure_resources(endpoint, REGION, session=log.session)
    return env, log


def client(endpoint, service):
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing").client(
        service, region_name=REGION, endpoint_url=endpoint)


# --- the fragment itself ----------------------------------------------------------------------------

def test_local_names_are_the_settings_defaults():
    from chalicelib.settings import Settings

    defaults = Settings.from_env({})
    names = local_names(load_fragment())
    assert names["EventsTable"] == defaults.events_table == "hub-events"
    assert names["DeliveriesTable"] == defaults.deliveries_table == "hub-deliveries"
    assert names["PartnersTable"] == defaults.partners_table == "hub-partners"
    assert names["DeliveryQueue"] == defaults.delivery_queue == "hub-deliveries"
    assert names["DocumentsBucket"] == defaults.documents_bucket == "hub-documents"
    assert names["HubSigningSecret"] == defaults.hub_secret_id == "hub/signing-secret"


def test_every_resource_has_a_local_name_agreeing_with_its_declared_name():
    fragment = load_fragment()
    names = local_names(fragment)
    assert set(names) == {lid for lid, r in fragment["Resources"].items() if r["Type"] not in AWS_ONLY_TYPES}
    for logical_id, resource in fragment["Resources"].items():
        if resource["Type"] not in NAME_PROPERTY:  # a resource with no name of its own (a gateway response)
            continue
        declared = resource["Properties"].get(NAME_PROPERTY[resource["Type"]])
        if isinstance(declared, str) and logical_id in names:
            assert declared == names[logical_id], logical_id


def test_queue_and_app_agree():
    import app

    fragment = load_fragment()
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    queue = fragment["Resources"]["DeliveryQueue"]["Properties"]
    assert queue["QueueName"] == app.DELIVERY_QUEUE
    assert int(queue["VisibilityTimeout"]) >= 6 * int(config["lambda_timeout"])
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["DeliveryQueueDLQ", "Arn"]},
                                      "maxReceiveCount": 10}
    assert f"table/{local_names(fragment)['EventsTable']}/stream/" in app.EVENTS_STREAM_ARN


def test_environment_names_are_read_by_the_hub():
    settings_source = (ROOT / "chalicelib" / "settings.py").read_text()
    for name in [*environment(load_fragment()), *aws_environment(load_fragment())]:
        if name != "HUB_EVENTS_STREAM_ARN":  # for local mode's stream driver, not for the hub core
            assert f'"{name}"' in settings_source, name


# --- the operators' user pool (AWS only; its wiring in the built template: tests/test_package.py) ----

def _of_type(fragment, type_name):
    [(logical_id, resource)] = [(lid, r) for lid, r in fragment["Resources"].items() if r["Type"] == type_name]
    return logical_id, resource["Properties"]


def test_operators_are_created_by_an_administrator_with_strong_passwords_and_totp():
    pool_id, pool = _of_type(load_fragment(), "AWS::Cognito::UserPool")
    assert pool["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}  # no self sign-up
    password = pool["Policies"]["PasswordPolicy"]
    assert password["MinimumLength"] >= 12 and password["TemporaryPasswordValidityDays"] <= 7
    assert all(password[k] is True for k in ("RequireLowercase", "RequireUppercase", "RequireNumbers",
                                             "RequireSymbols"))
    assert pool["MfaConfiguration"] == "ON" and pool["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]  # no SMS role needed
    assert pool["AccountRecoverySetting"] == {"RecoveryMechanisms": [{"Name": "admin_only", "Priority": 1}]}
    assert "UsernameAttributes" not in pool  # the user name is the operator id recorded in the audit log


def test_the_console_client_is_public_code_with_pkce_and_returns_to_the_console():
    from chalicelib.settings import Settings

    fragment = load_fragment()
    pool_id, _ = _of_type(fragment, "AWS::Cognito::UserPool")
    client_id, client = _of_type(fragment, "AWS::Cognito::UserPoolClient")
    assert client["UserPoolId"] == {"Ref": pool_id}
    assert client["GenerateSecret"] is False  # a browser holds no secret: PKCE proves the code's requester
    assert (client["AllowedOAuthFlowsUserPoolClient"], client["AllowedOAuthFlows"], client["AllowedOAuthScopes"]) == (
        True, ["code"], ["openid"])
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    assert client["ExplicitAuthFlows"] == ["ALLOW_REFRESH_TOKEN_AUTH"]  # no password flow outside the sign-in page
    assert client["CallbackURLs"][0] == {"Ref": "OperatorConsoleUrl"}
    parameter = fragment["Parameters"]["OperatorConsoleUrl"]
    assert parameter["Type"] == "String" and "Default" not in parameter
    assert re.fullmatch(parameter["AllowedPattern"], "https://abc123.execute-api.us-east-1.amazonaws.com/api/console")
    assert not re.fullmatch(parameter["AllowedPattern"], "http://hub.example.com/console")

    group_id, group = _of_type(fragment, "AWS::Cognito::UserPoolGroup")
    assert group == {**group, "UserPoolId": {"Ref": pool_id}, "GroupName": Settings.from_env({}).operator_group}
    domain_id, domain = _of_type(fragment, "AWS::Cognito::UserPoolDomain")
    assert domain["UserPoolId"] == {"Ref": pool_id}
    sign_in = aws_environment(fragment)
    assert sign_in == {"HUB_OPERATOR_AUTH": "cognito",
                       "HUB_OPERATOR_COGNITO_CLIENT_ID": {"Fn::GetAtt": [client_id, "ClientId"]},
                       "HUB_OPERATOR_COGNITO_DOMAIN": {
                           "Fn::Sub": f"${{{domain_id}}}.auth.${{AWS::Region}}.amazoncognito.com"}}
    assert fragment["Outputs"]["OperatorUserPoolId"]["Value"] == {"Ref": pool_id}  # for admin-create-user


def test_app_names_the_operator_pool_of_the_fragment():
    import app

    pool_id, pool = _of_type(load_fragment(), "AWS::Cognito::UserPool")
    assert f":userpool/{pool['UserPoolName']}/" in app.OPERATOR_POOL_ARN
    routes = {path: {m: e.authorizer for m, e in methods.items()} for path, methods in app.app.routes.items()}
    guarded = {path for path, methods in routes.items() if any(methods.values())}
    assert guarded == {"/v1/ops/{resource}", "/v1/ops/{resource}/{ref}", "/v1/ops/{resource}/{ref}/{action}"}
    assert all(a is app.OPERATORS for path in guarded for a in routes[path].values())


# --- ensure_resources against a moto server ---------------------------------------------------------

def test_returns_the_hub_environment(created, endpoint):
    env, _ = created
    assert env["HUB_EVENTS_TABLE"] == "hub-events"
    assert env["HUB_DELIVERIES_TABLE"] == "hub-deliveries"
    assert env["HUB_PARTNERS_TABLE"] == "hub-partners"
    assert env["HUB_DELIVERY_QUEUE"] == "hub-deliveries"
    assert env["HUB_DELIVERY_QUEUE_URL"].startswith(endpoint) and env["HUB_DELIVERY_QUEUE_URL"].endswith("/hub-deliveries")
    assert env["HUB_DOCUMENTS_BUCKET"] == "hub-documents"
    assert env["HUB_SIGNING_SECRET_ID"].startswith("arn:aws-cn:secretsmanager:cn-north-1:")
    assert ":secret:hub/signing-secret" in env["HUB_SIGNING_SECRET_ID"]
    assert env["HUB_EVENTS_STREAM_ARN"].startswith("arn:aws-cn:dynamodb:cn-north-1:")


def test_events_table_and_stream(created, endpoint):
    env, _ = created
    ddb = client(endpoint, "dynamodb")
    table = ddb.describe_table(TableName="hub-events")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "dedup_key", "KeyType": "HASH"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert table["LatestStreamArn"] == env["HUB_EVENTS_STREAM_ARN"]
    assert table["SSEDescription"]["Status"] == "ENABLED"
    ttl = ddb.describe_time_to_live(TableName="hub-events")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
    backups = ddb.describe_continuous_backups(TableName="hub-events")["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"

    # the stream really carries new images
    ddb.put_item(TableName="hub-events", Item={"dedup_key": {"S": "p1#msg_infra_test"}})
    streams = client(endpoint, "dynamodbstreams")
    shard = streams.describe_stream(StreamArn=env["HUB_EVENTS_STREAM_ARN"])["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(StreamArn=env["HUB_EVENTS_STREAM_ARN"], ShardId=shard["ShardId"],
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = streams.get_records(ShardIterator=iterator)["Records"]
    assert any(r["dynamodb"]["NewImage"]["dedup_key"]["S"] == "p1#msg_infra_test" for r in records)


def test_deliveries_table_and_state_index(created, endpoint):
    ddb = client(endpoint, "dynamodb")
    table = ddb.describe_table(TableName="hub-deliveries")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "delivery_id", "KeyType": "HASH"}]
    types = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert types == {"delivery_id": "S", "state_key": "S", "due_at": "N", "case_key": "S", "created_at": "N"}
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"state-index", "case-index"}
    assert indexes["case-index"]["KeySchema"] == [{"AttributeName": "case_key", "KeyType": "HASH"},
                                                  {"AttributeName": "created_at", "KeyType": "RANGE"}]
    index = indexes["state-index"]
    assert index["KeySchema"] == [{"AttributeName": "state_key", "KeyType": "HASH"},
                                  {"AttributeName": "due_at", "KeyType": "RANGE"}]
    assert index["Projection"]["ProjectionType"] == "ALL"
    ttl = ddb.describe_time_to_live(TableName="hub-deliveries")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    ddb.put_item(TableName="hub-deliveries", Item={"delivery_id": {"S": "d1"}, "state_key": {"S": "pending"},
                                                   "due_at": {"N": "100"}})
    found = ddb.query(TableName="hub-deliveries", IndexName="state-index",
                      KeyConditionExpression="state_key = :s AND due_at <= :t",
                      ExpressionAttributeValues={":s": {"S": "pending"}, ":t": {"N": "200"}})["Items"]
    assert [i["delivery_id"]["S"] for i in found] == ["d1"]


def test_partners_table(created, endpoint):
    table = client(endpoint, "dynamodb").describe_table(TableName="hub-partners")["Table"]
    assert table["KeySchema"] == [{"AttributeName": "partner_id", "KeyType": "HASH"}]


def test_queue_redrive_to_the_dlq(created, endpoint):
    env, _ = created
    sqs = client(endpoint, "sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=env["HUB_DELIVERY_QUEUE_URL"], AttributeNames=["All"])["Attributes"]
    dlq_url = sqs.get_queue_url(QueueName="hub-deliveries-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    assert attributes["VisibilityTimeout"] == "360"
    assert attributes["MessageRetentionPeriod"] == "1209600"
    assert json.loads(attributes["RedrivePolicy"]) == {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 10}
    assert dlq_arn == "arn:aws-cn:sqs:cn-north-1:123456789012:hub-deliveries-dlq"


def test_bucket(created, endpoint):
    s3 = client(endpoint, "s3")
    assert s3.get_bucket_location(Bucket="hub-documents")["LocationConstraint"] == REGION
    block = s3.get_public_access_block(Bucket="hub-documents")["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    rules = s3.get_bucket_encryption(Bucket="hub-documents")["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert "Status" not in s3.get_bucket_versioning(Bucket="hub-documents")  # versioning off
    [rule] = s3.get_bucket_lifecycle_configuration(Bucket="hub-documents")["Rules"]
    assert rule["Status"] == "Enabled" and rule["Expiration"]["Days"] > 0
    s3.put_object(Bucket="hub-documents", Key="probe", Body=b"x")
    assert s3.get_object(Bucket="hub-documents", Key="probe")["Body"].read() == b"x"


def test_signing_secret_has_a_generated_placeholder(created, endpoint):
    env, _ = created
    value = client(endpoint, "secretsmanager").get_secret_value(SecretId="hub/signing-secret")
    assert value["ARN"] == env["HUB_SIGNING_SECRET_ID"]
    assert len(value["SecretString"]) == 48


def test_second_call_changes_nothing(created, endpoint):
    env, first = created
    assert first.writes(), "the first call should have created the resources"
    sm = client(endpoint, "secretsmanager")
    secret_before = sm.get_secret_value(SecretId="hub/signing-secret")["SecretString"]
    queue_before = client(endpoint, "sqs").get_queue_attributes(QueueUrl=env["HUB_DELIVERY_QUEUE_URL"],
                                                                AttributeNames=["All"])["Attributes"]

    again = CallLog()
    assert ensure_resources(endpoint, REGION, session=again.session) == env
    assert again.writes() == []
    assert sm.get_secret_value(SecretId="hub/signing-secret")["SecretString"] == secret_before
    queue_after = client(endpoint, "sqs").get_queue_attributes(QueueUrl=env["HUB_DELIVERY_QUEUE_URL"],
                                                               AttributeNames=["All"])["Attributes"]
    assert queue_after == queue_before


def test_operator_set_secret_survives(created, endpoint):
    env, _ = created
    sm = client(endpoint, "secretsmanager")
    sm.put_secret_value(SecretId="hub/signing-secret", SecretString="whsec_set-by-operator")
    ensure_resources(endpoint, REGION)  # default session: static test credentials for a local endpoint
    assert sm.get_secret_value(SecretId="hub/signing-secret")["SecretString"] == "whsec_set-by-operator"


def test_drift_is_converged(created, endpoint):
    env, _ = created
    sqs = client(endpoint, "sqs")
    sqs.set_queue_attributes(QueueUrl=env["HUB_DELIVERY_QUEUE_URL"], Attributes={"VisibilityTimeout": "30"})
    log = CallLog()
    ensure_resources(endpoint, REGION, session=log.session)
    assert log.writes() == ["sqs.SetQueueAttributes"]
    attributes = sqs.get_queue_attributes(QueueUrl=env["HUB_DELIVERY_QUEUE_URL"], AttributeNames=["All"])["Attributes"]
    assert attributes["VisibilityTimeout"] == "360"


# --- the in-process path and the interpreter's strictness --------------------------------------------

@pytest.fixture
def in_process_aws(monkeypatch):
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    with mock_aws():
        yield


def test_mock_aws_in_process(in_process_aws):
    env = ensure_resources(None, REGION)
    assert ensure_resources(None, REGION) == env
    table = boto3.client("dynamodb", region_name=REGION).describe_table(TableName="hub-events")["Table"]
    assert table["LatestStreamArn"] == env["HUB_EVENTS_STREAM_ARN"]


def test_unknown_property_is_refused(in_process_aws):
    fragment = load_fragment()
    fragment["Resources"]["PartnersTable"]["Properties"]["ContributorInsightsSpecification"] = {"Enabled": True}
    with pytest.raises(NotImplementedError, match="ContributorInsightsSpecification"):
        ensure_resources(None, REGION, fragment=fragment)


def test_unknown_resource_type_is_refused(in_process_aws):
    fragment = load_fragment()
    fragment["Resources"]["Topic"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    fragment["Metadata"]["HubLocalNames"]["Topic"] = "hub-topic"
    with pytest.raises(NotImplementedError, match="AWS::SNS::Topic"):
        ensure_resources(None, REGION, fragment=fragment)


def test_the_operator_pool_is_not_created_locally(created):
    env, log = created
    assert log.calls and not [call for call in log.calls if call.startswith("cognito-idp.")]  # local mode: the token
    assert not set(aws_environment(load_fragment())) & set(env)


def test_hub_environment_cannot_refer_to_what_is_not_created_locally(in_process_aws):
    fragment = load_fragment()
    fragment["Metadata"]["HubEnvironment"]["HUB_OPERATOR_COGNITO_CLIENT_ID"] = {"Ref": "OperatorConsoleClient"}
    with pytest.raises(KeyError, match="HubAwsEnvironment"):
        ensure_resources(None, REGION, fragment=fragment)


def test_local_name_must_match_a_literal_name(in_process_aws):
    fragment = load_fragment()
    fragment["Metadata"]["HubLocalNames"]["PartnersTable"] = "other-partners"
    with pytest.raises(ValueError, match="other-partners"):
        ensure_resources(None, REGION, fragment=fragment)


# --- infra/template.py on a synthetic Chalice template (the real one: tests/test_package.py) --------

STREAM = "arn:aws:dynamodb:cn-north-1:000000000000:table/hub-events/stream/from-template"
POOL = "arn:aws:cognito-idp:cn-north-1:000000000000:userpool/hub-operators/from-template"


def _sam(stream: str, queue: str, pool: str = POOL) -> dict:
    role = {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}, "Policies": [
        {"PolicyName": "ChalicePolicy", "PolicyDocument": {"Statement": []}}]}}
    fn = lambda events: {"Type": "AWS::Serverless::Function", "Properties": {  # noqa: E731
        "Role": {"Fn::GetAtt": ["R", "Arn"]}, "Environment": {"Variables": {"X": "1"}}, "Events": events}}
    return {"Resources": {
        "R": role,
        "Routed": fn({"S": {"Type": "DynamoDB", "Properties": {"Stream": stream, "BatchSize": 100}}}),
        "Deliver": fn({"Q": {"Type": "SQS", "Properties": {
            "Queue": {"Fn::Sub": f"arn:${{AWS::Partition}}:sqs:${{AWS::Region}}:${{AWS::AccountId}}:{queue}"}}}}),
        "Api": {"Type": "AWS::Serverless::Api", "Properties": {"DefinitionBody": {"securityDefinitions": {
            "Ops": {"in": "header", "type": "apiKey", "name": "Authorization",
                    "x-amazon-apigateway-authtype": "cognito_user_pools",
                    "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools", "providerARNs": [pool]}}}}}},
    }}


def test_template_wiring():
    from infra.policy import POLICY_NAME, hub_policy_document
    from infra.template import build_template

    sam = _sam(STREAM, "hub-deliveries")
    template = build_template(copy.deepcopy(sam), stream_placeholder=STREAM, operator_pool_placeholder=POOL)
    stream = template["Resources"]["Routed"]["Properties"]["Events"]["S"]["Properties"]
    assert stream["Stream"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
    assert stream["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = template["Resources"]["Deliver"]["Properties"]["Events"]["Q"]["Properties"]
    assert queue["Queue"] == {"Fn::GetAtt": ["DeliveryQueue", "Arn"]}
    assert queue["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert template["Resources"]["R"]["Properties"]["Policies"] == [
        {"PolicyName": POLICY_NAME, "PolicyDocument": hub_policy_document(load_fragment())}]
    variables = template["Resources"]["Deliver"]["Properties"]["Environment"]["Variables"]
    assert variables["X"] == "1" and variables["HUB_PARTNER_SOURCE"] == "aws"
    assert variables["HUB_DELIVERY_QUEUE_URL"] == {"Ref": "DeliveryQueue"}
    assert variables["HUB_OPERATOR_AUTH"] == "cognito"
    assert variables["HUB_OPERATOR_COGNITO_CLIENT_ID"] == {"Fn::GetAtt": ["OperatorConsoleClient", "ClientId"]}
    fragment = load_fragment()
    assert set(fragment["Resources"]) <= set(template["Resources"])
    assert template["Parameters"] == fragment["Parameters"]
    assert template["Outputs"]["OperatorUserPoolId"] == fragment["Outputs"]["OperatorUserPoolId"]
    authorizer = template["Resources"]["Api"]["Properties"]["DefinitionBody"]["securityDefinitions"]["Ops"]
    assert authorizer["x-amazon-apigateway-authorizer"]["providerARNs"] == [{"Fn::GetAtt": ["OperatorUserPool", "Arn"]}]


def test_template_refuses_unknown_sources():
    from infra.template import build_template

    placeholders = {"stream_placeholder": STREAM, "operator_pool_placeholder": POOL}
    with pytest.raises(ValueError, match="EVENTS_STREAM_ARN"):
        build_template(_sam("arn:aws:dynamodb:cn-north-1:1:table/other/stream/x", "hub-deliveries"), **placeholders)
    with pytest.raises(KeyError, match="no-such-queue"):
        build_template(_sam(STREAM, "no-such-queue"), **placeholders)
    with pytest.raises(ValueError, match="OPERATOR_POOL_ARN"):
        build_template(_sam(STREAM, "hub-deliveries", pool="arn:aws:cognito-idp:cn-north-1:1:userpool/cn-north-1_x"),
                       **placeholders)
    with pytest.raises(KeyError, match="no-such-pool"):
        build_template(_sam(STREAM, "hub-deliveries", pool=POOL.replace("hub-operators", "no-such-pool")),
                       stream_placeholder=STREAM, operator_pool_placeholder=POOL.replace("hub-operators", "no-such-pool"))
    lambda_authorizer = _sam(STREAM, "hub-deliveries")
    scheme = lambda_authorizer["Resources"]["Api"]["Properties"]["DefinitionBody"]["securityDefinitions"]["Ops"]
    scheme["x-amazon-apigateway-authorizer"] = {"type": "token", "authorizerUri": "arn:…"}
    with pytest.raises(ValueError, match="not handled"):
        build_template(lambda_authorizer, **placeholders)


# --- infra/package.py helpers (the full build: tests/test_package.py) --------------------------------

def test_staged_vendor_copies_and_cleans_up(tmp_path):
    import zipfile

    from infra.package import expected_extra_files, staged_vendor, zip_problems

    (tmp_path / "adapters" / "__pycache__").mkdir(parents=True)
    (tmp_path / "adapters" / "__init__.py").write_text("")
    (tmp_path / "adapters" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    (tmp_path / "mappings").mkdir()
    (tmp_path / "mappings" / "canonical.json").write_text("{}")
    expected = expected_extra_files(tmp_path)
    assert set(expected) == {"adapters/__init__.py", "mappings/canonical.json"}

    with staged_vendor(tmp_path) as vendor:
        assert (vendor / "adapters" / "__init__.py").is_file()
        assert not (vendor / "adapters" / "__pycache__").exists()
        assert (vendor / "mappings" / "canonical.json").read_text() == "{}"
    assert not (tmp_path / "vendor").exists()

    (tmp_path / "vendor" / "keep").mkdir(parents=True)  # a vendor/ that was there stays, minus our copies
    with pytest.raises(RuntimeError):
        with staged_vendor(tmp_path):
            raise RuntimeError("chalice failed")
    assert sorted(p.name for p in (tmp_path / "vendor").iterdir()) == ["keep"]

    good, bad = tmp_path / "good.zip", tmp_path / "bad.zip"
    with zipfile.ZipFile(good, "w") as z:
        for name, content in expected.items():
            z.writestr(name, content)
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("mappings/canonical.json", "{\"old\": 1}")
        z.writestr("mappings/removed.json", "{}")
    assert zip_problems(good, expected) == []
    assert zip_problems(bad, expected) == ["missing adapters/__init__.py", "stale mappings/canonical.json",
                                           "unexpected mappings/removed.json"]


def test_a_refused_operator_token_gets_the_hubs_error_body_from_api_gateway_too():
    """The user pool authorizer answers before the hub: its 401 is the contract's error body."""
    from chalicelib.errors import unauthenticated
    from localmode.runner import UNAUTHENTICATED_BODY

    resources = json.loads((Path(__file__).resolve().parent.parent / "infra" / "resources.json").read_text())
    [response] = [r["Properties"] for r in resources["Resources"].values()
                  if r["Type"] == "AWS::ApiGateway::GatewayResponse"]
    assert response["ResponseType"] == "UNAUTHORIZED" and response["StatusCode"] == "401"
    assert json.loads(response["ResponseTemplates"]["application/json"]) == unauthenticated().body()
    assert json.loads(UNAUTHENTICATED_BODY) == unauthenticated().body()  # and local mode's stand-in
