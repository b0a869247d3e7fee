"""`make package` (python -m infra.package): the template lints, is wired as intended, and the zip is
complete: it runs with nothing but itself and the standard library on sys.path."""
from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
import zipfile
from pathlib import Path

import pytest

from infra.fragment import aws_environment, environment, load_fragment
from infra.package import STAGED_DIRS, expected_extra_files
from infra.policy import POLICY_NAME, hub_policy_document

pytestmark = pytest.mark.package

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build"
# One build per test session (shared by xdist workers, which share the testrun uid).
SESSION = os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex


@pytest.fixture(scope="module")
def build() -> Path:
    BUILD.mkdir(exist_ok=True)
    stamp = BUILD / ".test-session"
    with open(BUILD / ".test-package.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fresh = (stamp.is_file() and stamp.read_text() == SESSION
                 and (BUILD / "template.json").is_file() and (BUILD / "deployment.zip").is_file())
        if not fresh:
            stamp.unlink(missing_ok=True)
            done = subprocess.run([sys.executable, "-m", "infra.package"], cwd=ROOT, capture_output=True,
                                  text=True, timeout=900)
            assert done.returncode == 0, f"python -m infra.package failed:\n{done.stdout}\n{done.stderr}"
            stamp.write_text(SESSION)
    return BUILD


@pytest.fixture(scope="module")
def template(build) -> dict:
    return json.loads((build / "template.json").read_text())


@pytest.fixture(scope="module")
def unzipped(build, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("lambda-root")
    with zipfile.ZipFile(build / "deployment.zip") as z:
        z.extractall(target)
    return target


def _functions(template):
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == "AWS::Serverless::Function"}


# --- the template -----------------------------------------------------------------------------------

def test_cfn_lint(build):
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "cfn-lint"), str(build / "template.json")],
                          capture_output=True, text=True, timeout=300)
    # cfn-lint exit code bits: 1 failure to run, 2 errors, 4 warnings, 8 informational
    assert done.returncode & 3 == 0, f"cfn-lint:\n{done.stdout}\n{done.stderr}"


def test_event_sources_report_batch_item_failures(template):
    import app

    assert app.EVENTS_STREAM_ARN not in json.dumps(template)
    kinds = {}
    for logical_id, function in _functions(template).items():
        for event in function["Properties"].get("Events", {}).values():
            props = event["Properties"]
            kinds[event["Type"]] = props
            if event["Type"] in ("SQS", "DynamoDB"):
                assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"], logical_id
    assert kinds["DynamoDB"]["Stream"] == {"Fn::GetAtt": ["EventsTable", "StreamArn"]}
    assert kinds["SQS"]["Queue"] == {"Fn::GetAtt": ["DeliveryQueue", "Arn"]}
    assert kinds["DynamoDB"]["StartingPosition"] == "TRIM_HORIZON"
    assert kinds["Schedule"]["Schedule"] == "rate(1 minute)"


def test_resources_merged(template):
    for logical_id, resource in load_fragment()["Resources"].items():
        assert template["Resources"][logical_id] == resource


def test_our_policy_on_every_role(template):
    policy = hub_policy_document(load_fragment())
    roles = {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in _functions(template).values()}
    assert roles
    for role in roles:
        assert template["Resources"][role]["Properties"]["Policies"] == [
            {"PolicyName": POLICY_NAME, "PolicyDocument": policy}]
        assert "ManagedPolicyArns" not in template["Resources"][role]["Properties"]
    text = json.dumps(policy)
    assert "arn:aws:" not in text and "arn:aws-cn:" not in text  # ${AWS::Partition} only
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        assert not any("*" in action for action in statement["Action"]), statement["Sid"]
        if statement["Resource"] == "*":  # IAM cannot scope these to a resource
            assert statement["Action"] in (["dynamodb:ListStreams"],
                                           ["secretsmanager:BatchGetSecretValue", "secretsmanager:ListSecrets"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query",
            "dynamodb:ConditionCheckItem", "dynamodb:GetRecords", "sqs:SendMessage", "sqs:ReceiveMessage",
            "sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility", "s3:GetObject",
            "s3:PutObject", "secretsmanager:GetSecretValue", "logs:PutLogEvents"} <= actions
    assert "secret:hub/partners/*" in text


def test_every_function_environment(template):
    expected = {"HUB_PARTNER_SOURCE": "aws", **environment(load_fragment())}
    for name in ("HUB_EVENTS_TABLE", "HUB_DELIVERIES_TABLE", "HUB_PARTNERS_TABLE", "HUB_DELIVERY_QUEUE",
                 "HUB_DELIVERY_QUEUE_URL", "HUB_DOCUMENTS_BUCKET", "HUB_SIGNING_SECRET_ID"):
        assert name in expected
    for logical_id, function in _functions(template).items():
        variables = function["Properties"]["Environment"]["Variables"]
        for key, value in expected.items():
            assert variables.get(key) == value, (logical_id, key)


def test_the_user_pool_authorizer_guards_exactly_the_operator_routes(template):
    import app

    assert app.OPERATOR_POOL_ARN not in json.dumps(template)
    [api] = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Api"]
    body = api["Properties"]["DefinitionBody"]
    [(name, scheme)] = body["securityDefinitions"].items()
    assert (scheme["in"], scheme["name"], scheme["x-amazon-apigateway-authtype"]) == (
        "header", "Authorization", "cognito_user_pools")
    assert scheme["x-amazon-apigateway-authorizer"] == {
        "type": "cognito_user_pools", "providerARNs": [{"Fn::GetAtt": ["OperatorUserPool", "Arn"]}]}
    routes = {(path, method): operation.get("security") for path, methods in body["paths"].items()
              for method, operation in methods.items()}
    operator_routes = {route for route in routes if route[0].startswith("/v1/ops/")}
    assert operator_routes == {("/v1/ops/{resource}", "get"), ("/v1/ops/{resource}/{ref}", "get"),
                               ("/v1/ops/{resource}/{ref}", "post"), ("/v1/ops/{resource}/{ref}/{action}", "post")}
    assert {route for route, security in routes.items() if security} == operator_routes
    assert all(routes[route] == [{name: []}] for route in operator_routes)
    assert ("/console", "get") in routes and ("/console/{name}", "get") in routes  # public: the page holds no data


def test_functions_sign_operators_in_through_the_user_pool(template):
    sign_in = aws_environment(load_fragment())
    assert sign_in["HUB_OPERATOR_AUTH"] == "cognito"
    for logical_id, function in _functions(template).items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert {key: variables.get(key) for key in sign_in} == sign_in, logical_id
    client = template["Resources"]["OperatorConsoleClient"]["Properties"]
    assert client["CallbackURLs"][0] == {"Ref": "OperatorConsoleUrl"} and "OperatorConsoleUrl" in template["Parameters"]
    assert template["Outputs"]["OperatorUserPoolId"]["Value"] == {"Ref": "OperatorUserPool"}


def test_no_resource_depends_on_itself(template):
    """cfn-lint does not follow references through the API's swagger body, so a cycle such as app client
    -> API URL -> API handler -> client id is checked here."""
    from infra.fragment import references

    resources = template["Resources"]
    needs = {}
    for logical_id, resource in resources.items():
        depends = resource.get("DependsOn", [])
        needs[logical_id] = {d for d in [*references(resource.get("Properties", {})),
                                         *([depends] if isinstance(depends, str) else depends)] if d in resources}
    done: set[str] = set()

    def visit(logical_id: str, path: tuple[str, ...]) -> None:
        assert logical_id not in path, "dependency cycle: " + " -> ".join(path + (logical_id,))
        if logical_id not in done:
            for dependency in sorted(needs[logical_id]):
                visit(dependency, path + (logical_id,))
            done.add(logical_id)

    for logical_id in resources:
        visit(logical_id, ())


# --- the zip ----------------------------------------------------------------------------------------

def test_zip_has_adapters_and_mappings(build, unzipped):
    expected = expected_extra_files(ROOT)
    assert "adapters/__init__.py" in expected and "mappings/canonical.json" in expected
    for name, content in expected.items():
        assert (unzipped / name).read_bytes() == content, name
    vendor = ROOT / "vendor"
    assert not any((vendor / d).exists() for d in STAGED_DIRS), "the staged copies were not cleaned up"


def _run_isolated(root: Path, body: str) -> dict:
    """Run `body` with `python -I -S`, cwd = root, sys.path = [root] + the standard library only.
    `body` fills the dict `result`, which is returned."""
    script = textwrap.dedent("""
        import json, sys, sysconfig
        root = sys.argv[1]
        stdlib = {sysconfig.get_path("stdlib"), sysconfig.get_path("platstdlib")}
        assert not any("site-packages" in p or "dist-packages" in p for p in sys.path), sys.path
        sys.path[:] = [root] + [p for p in sys.path if p and (p in stdlib or p.startswith(tuple(stdlib))
                                                              or p.endswith(".zip"))]
        result = {"sys_path": list(sys.path)}
        try:
        {body}
        finally:
            with open("result.json", "w") as f:
                json.dump(result, f, default=str)
    """).replace("{body}", textwrap.indent(textwrap.dedent(body), "    "))
    env = {
        "AWS_DEFAULT_REGION": "cn-north-1", "AWS_REGION": "cn-north-1", "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_LAMBDA_FUNCTION_NAME": "hub-APIHandler", "LANG": "C.UTF-8", "HOME": str(root),
        "POWERTOOLS_SERVICE_NAME": "hub-core", "POWERTOOLS_METRICS_NAMESPACE": "RegistrationHub",
        "HUB_PARTNER_SOURCE": "aws", "HUB_EVENTS_TABLE": "hub-events", "HUB_DELIVERIES_TABLE": "hub-deliveries",
        "HUB_PARTNERS_TABLE": "hub-partners", "HUB_DELIVERY_QUEUE": "hub-deliveries",
        "HUB_DOCUMENTS_BUCKET": "hub-documents", "HUB_SIGNING_SECRET_ID": "hub/signing-secret",
    }
    result_file = root / "result.json"
    result_file.unlink(missing_ok=True)
    done = subprocess.run([sys.executable, "-I", "-S", "-c", script, str(root)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert result_file.is_file(), f"isolated run wrote no result:\n{done.stdout}\n{done.stderr}"
    result = json.loads(result_file.read_text())
    result["returncode"], result["stdout"], result["stderr"] = done.returncode, done.stdout, done.stderr
    return result


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip()] = version.strip()
    return pins


def test_zip_imports_with_nothing_but_itself(unzipped):
    result = _run_isolated(unzipped, """
        import importlib, importlib.metadata, os
        result["adapters"] = importlib.import_module("adapters").__file__
        result["canonical"] = os.path.isfile(os.path.join(root, "mappings", "canonical.json"))
        versions, imported = {}, []
        for name in %r:
            dist = importlib.metadata.distribution(name)
            versions[name] = dist.version
            tops = {f.parts[0].removesuffix(".py") for f in dist.files or []
                    if f.parts[0].isidentifier() or (f.parts[0].endswith(".py") and len(f.parts) == 1)}
            for top in sorted(tops):
                if top not in ("bin", "__pycache__"):
                    imported.append(importlib.import_module(top).__file__)
        result["versions"], result["imported"] = versions, imported
        import app
        result["app"] = app.__file__
        result["ok"] = True
    """ % (list(_requirements()),))
    assert result.get("ok"), f"{result.get('stderr')}\n{result.get('stdout')}"
    root = str(unzipped)
    assert result["adapters"].startswith(root)
    assert result["canonical"] is True
    assert result["app"].startswith(root)
    assert result["versions"] == _requirements()
    assert result["imported"] and all(path.startswith(root) for path in result["imported"])
    assert result["sys_path"][0] == root
    assert not any(p.startswith(str(ROOT)) and not p.startswith(root) for p in result["sys_path"])


CATALOG_EVENT = {
    "resource": "/v1/catalog",
    "path": "/v1/catalog",
    "httpMethod": "GET",
    "headers": {"Accept": "application/json", "Host": "example.execute-api.cn-north-1.amazonaws.com.cn"},
    "multiValueHeaders": {"Accept": ["application/json"],
                          "Host": ["example.execute-api.cn-north-1.amazonaws.com.cn"]},
    "queryStringParameters": None,
    "multiValueQueryStringParameters": None,
    "pathParameters": None,
    "stageVariables": None,
    "requestContext": {
        "resourcePath": "/v1/catalog", "httpMethod": "GET", "path": "/api/v1/catalog", "stage": "api",
        "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "accountId": "123456789012",
        "apiId": "example", "protocol": "HTTP/1.1", "requestTimeEpoch": 1700000000000,
        "identity": {"sourceIp": "203.0.113.7", "userAgent": "test"},
    },
    "body": None,
    "isBase64Encoded": False,
}


def _api_answer(unzipped, event: dict) -> dict:
    """The API function's answer to an API Gateway event, run from the unzipped package alone."""
    result = _run_isolated(unzipped, """
        class Context:
            function_name = "hub-APIHandler"
            function_version = "$LATEST"
            invoked_function_arn = "arn:aws-cn:lambda:cn-north-1:123456789012:function:hub-APIHandler"
            memory_limit_in_mb = 512
            aws_request_id = "8f5f6b2c-0000-4000-8000-000000000001"
            log_group_name = "/aws/lambda/hub-APIHandler"
            log_stream_name = "2026/01/01/[$LATEST]0123456789abcdef"
            def get_remaining_time_in_millis(self):
                return 60000
        import app
        result["response"] = app.app(%r, Context())
    """ % (event,))
    response = result.get("response")
    assert response is not None, f"{result.get('stderr')}\n{result.get('stdout')}"
    return response


def test_catalog_served_from_the_zip(unzipped):
    if not (unzipped / "chalicelib" / "catalog.py").is_file():
        pytest.xfail("chalicelib/catalog.py does not exist yet: GET /v1/catalog cannot answer")
    response = _api_answer(unzipped, CATALOG_EVENT)
    assert response["statusCode"] == 200, response
    body = json.loads(response["body"])
    assert body["event_types"], body
    types = json.dumps(body["event_types"])
    assert re.search(r"[a-z_]+\.[a-z_]+", types), body


def test_openapi_document_served_from_the_zip(unzipped):
    """The one copy of the OpenAPI document (chalicelib/data/openapi.json) ships in the zip and is served."""
    event = {**CATALOG_EVENT, "resource": "/v1/openapi.json", "path": "/v1/openapi.json",
             "requestContext": {**CATALOG_EVENT["requestContext"], "resourcePath": "/v1/openapi.json",
                                "path": "/api/v1/openapi.json"}}
    result = _run_isolated(unzipped, """
        class Context:
            function_name = "hub-APIHandler"
            function_version = "$LATEST"
            invoked_function_arn = "arn:aws-cn:lambda:cn-north-1:123456789012:function:hub-APIHandler"
            memory_limit_in_mb = 512
            aws_request_id = "8f5f6b2c-0000-4000-8000-000000000003"
            log_group_name = "/aws/lambda/hub-APIHandler"
            log_stream_name = "2026/01/01/[$LATEST]0123456789abcdef"
            def get_remaining_time_in_millis(self):
                return 60000
        import app
        result["response"] = app.app(%r, Context())
    """ % (event,))
    response = result.get("response")
    assert response is not None, f"{result.get('stderr')}\n{result.get('stdout')}"
    assert response["statusCode"] == 200, response
    shipped = unzipped / "chalicelib" / "data" / "openapi.json"
    assert shipped.read_bytes() == (ROOT / "chalicelib" / "data" / "openapi.json").read_bytes()
    assert json.loads(response["body"]) == json.loads(shipped.read_text(encoding="utf-8"))


def test_console_served_from_the_zip(unzipped):
    """The operators' console (chalicelib/console/) ships inside the zip and the API function serves it."""
    pages = {}
    for resource, path, params in (("/console", "/console", None),
                                   ("/console/{name}", "/console/console.js", {"name": "console.js"})):
        event = {**CATALOG_EVENT, "resource": resource, "path": path, "pathParameters": params,
                 "headers": {**CATALOG_EVENT["headers"], "Accept": "text/html"},
                 "requestContext": {**CATALOG_EVENT["requestContext"], "resourcePath": resource, "path": "/api" + path}}
        response = _api_answer(unzipped, event)
        assert response["statusCode"] == 200, response
        pages[path] = response
    page = pages["/console"]
    assert page["headers"]["Content-Type"].startswith("text/html")
    assert 'src="console/console.js"' in page["body"] and "Content-Security-Policy" in page["headers"]
    script = pages["/console/console.js"]
    assert script["headers"]["Content-Type"].startswith("text/javascript") and "function lanesFigure" in script["body"]


def test_queue_outlasts_the_delivery_function(template):
    """A batch of 10 deliveries may take 10 x 15 s; the queue must not hand it out again meanwhile."""
    resources = template["Resources"]
    deliver = resources["Deliver"]["Properties"]
    assert deliver["Timeout"] >= 10 * 15
    assert resources["DeliveryQueue"]["Properties"]["VisibilityTimeout"] >= deliver["Timeout"]
