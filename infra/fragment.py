"""Reading `infra/resources.json`, the one definition of the hub's AWS resources.

The fragment is a CloudFormation template piece with hub-specific Metadata entries:

* `HubLocalNames`: logical id -> physical name the resource gets locally (moto). A resource whose
  name is a literal in its properties must be given the same name here; the bucket's AWS name is
  generated (account and region), its local name is fixed.
* `HubEnvironment`: env var -> CloudFormation expression (Ref/GetAtt). The deployable template sets
  these on every function; `local_resources.ensure_resources` resolves them against what it created.
* `HubAwsEnvironment` (optional): the same, set only in the deployable template: the operators' sign-in
  through the Cognito user pool, which local mode does not create (it signs operators in with a token).

The fragment's `Parameters`, `Conditions` and `Outputs` are merged into the deployable template; local
mode needs none of them.
"""
from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any, Iterator

RESOURCES_FILE = Path(__file__).with_name("resources.json")

# Where each resource type keeps its physical name.
NAME_PROPERTY = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Cognito::UserPool": "UserPoolName",
    "AWS::Cognito::UserPoolClient": "ClientName",
    "AWS::Cognito::UserPoolGroup": "GroupName",
    "AWS::Cognito::UserPoolDomain": "Domain",
}

_SUB_VAR = re.compile(r"\$\{([^}!][^}]*)\}")


@functools.lru_cache(maxsize=4)
def _load(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def load_fragment(path: Path | str = RESOURCES_FILE) -> dict[str, Any]:
    """The parsed fragment (a fresh copy each call: callers may change it)."""
    fragment = json.loads(_load(str(path)))
    for key in ("Resources", "Metadata"):
        if key not in fragment:
            raise ValueError(f"{path}: missing top-level {key!r}")
    for key in ("HubLocalNames", "HubEnvironment"):
        if key not in fragment["Metadata"]:
            raise ValueError(f"{path}: missing Metadata.{key}")
    return copy.deepcopy(fragment)


def local_names(fragment: dict[str, Any]) -> dict[str, str]:
    return dict(fragment["Metadata"]["HubLocalNames"])


def environment(fragment: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(fragment["Metadata"]["HubEnvironment"])


def aws_environment(fragment: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(fragment["Metadata"].get("HubAwsEnvironment", {}))


def references(value: Any) -> Iterator[str]:
    """Logical ids (and pseudo parameters) that a CloudFormation value refers to."""
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" and isinstance(arg, str):
                yield arg
                return
            if key == "Fn::GetAtt":
                target = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
                yield target
                return
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
                for name in _SUB_VAR.findall(text):
                    name = name.split(".", 1)[0]
                    if name not in variables:
                        yield name
                yield from references(variables)
                return
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def resources_of_type(fragment: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in fragment["Resources"].items() if r["Type"] == type_name}


def find_by_name(fragment: dict[str, Any], type_name: str, name: str) -> str:
    """Logical id of the resource of `type_name` whose literal name property (or local name) is
    `name`."""
    names = local_names(fragment)
    prop = NAME_PROPERTY[type_name]
    for lid, resource in resources_of_type(fragment, type_name).items():
        if resource.get("Properties", {}).get(prop) == name or names.get(lid) == name:
            return lid
    raise KeyError(f"no {type_name} named {name!r} in {RESOURCES_FILE.name}")
