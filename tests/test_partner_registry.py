"""The partner registry in its AWS form: records in the partners table, secrets in Secrets Manager.

Everything runs in-process against moto (`aws_env`): the operator command is `hubctl.main([...])`
with its JSON answer read from stdout, and partners sign real events through Chalice's test client.
`hubctl._connect` is made safe for that: it would read `.hub/local.json` (a running `make run`) and
point every client at that endpoint, so the tests give it a state file that does not exist.

Also the partners-file validation of CONTRACT.md (PartnersFile.model_validate).
"""
from __future__ import annotations

import base64
import copy
import json

import boto3
import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook

from tests.support import envelope, new_secret, partners_doc, secret_of, sign_request

SZ_UNIT = "440305001001GB00001F00010001"


# ------------------------------------------------------------------------------------------------
# fixtures and helpers


@pytest.fixture
def registry(aws_env, monkeypatch, tmp_path, receiver):
    """The registry seeded from a partners file (the file's endpoints are the test receiver)."""
    import hubctl
    from chalicelib import partner_admin
    from chalicelib.observability import logger
    from chalicelib.partners import PartnersFile
    from chalicelib.settings import reset_settings

    monkeypatch.setenv("HUB_PARTNER_SOURCE", "aws")
    monkeypatch.setenv("HUB_PARTNER_CACHE_TTL", "0")
    monkeypatch.delenv("HUB_PARTNERS", raising=False)
    # hubctl must not find a running local hub's state and leave the moto mock for its endpoint.
    monkeypatch.setattr(hubctl, "LOCAL_STATE", tmp_path / "no-local-hub.json")
    # hubctl points the hub's log handler at (the current) sys.stderr; `hubctl_run` gives it back, and
    # so does this fixture (without flushing a capture stream pytest may have closed already).
    handler = logger.registered_handler
    stream = getattr(handler, "stream", None)
    reset_settings()
    doc = partners_doc(f"http://127.0.0.1:{receiver.port}")
    partner_admin.seed_from_file(PartnersFile.model_validate(doc))
    yield doc
    if stream is not None:
        handler.stream = stream


@pytest.fixture
def client(registry):
    from chalice.test import Client

    import app

    with Client(app.app) as test_client:
        yield test_client


def hubctl_run(capsys, *argv: str) -> tuple[int, object, str]:
    """Run the operator command in-process; its stdout is one JSON document (or nothing)."""
    import hubctl
    from chalicelib.observability import logger

    handler = logger.registered_handler
    stream = handler.stream
    capsys.readouterr()
    try:
        code = hubctl.main(list(argv))
    finally:
        handler.setStream(stream)
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def post_event(client, partner_id: str, secret: str, unit_code: str = SZ_UNIT, msg_id: str | None = None):
    from chalicelib.models import EVENT_TYPES

    data = copy.deepcopy(EVENT_TYPES["application.submitted"].example)
    data["unit_code"] = unit_code
    body = envelope("application.submitted", data)
    response = client.http.post(f"/v1/partners/{partner_id}/events", headers=sign_request(secret, body, msg_id=msg_id),
                                body=body.encode())
    return response.status_code, json.loads(response.body or b"{}")


def stored_secrets(partner_id: str) -> list[str]:
    from chalicelib.settings import get_settings

    raw = boto3.client("secretsmanager").get_secret_value(
        SecretId=get_settings().partner_secret_prefix + partner_id)["SecretString"]
    return json.loads(raw)["secrets"]


def table_records() -> dict[str, dict]:
    from chalicelib.settings import get_settings

    items = boto3.client("dynamodb").scan(TableName=get_settings().partners_table, ConsistentRead=True)["Items"]
    return {item["partner_id"]["S"]: json.loads(item["record"]["S"]) for item in items}


# ------------------------------------------------------------------------------------------------
# seeding from the partners file


def test_seed_puts_every_partner_and_the_hub_secret(registry):
    from chalicelib.partners import AwsPartnerDirectory, PartnerRecord, get_directory
    from chalicelib.settings import get_settings

    records = table_records()
    assert set(records) == {p["id"] for p in registry["partners"]}
    for partner in registry["partners"]:
        public = {k: v for k, v in partner.items() if k != "secrets"}
        assert records[partner["id"]] == public  # the table holds no secret ...
        assert stored_secrets(partner["id"]) == partner["secrets"]  # ... Secrets Manager does
    hub_secret = boto3.client("secretsmanager").get_secret_value(SecretId=get_settings().hub_secret_id)["SecretString"]
    assert hub_secret == registry["hub"]["signing_secret"]

    directory = get_directory()
    assert isinstance(directory, AwsPartnerDirectory)
    assert directory.hub_secret() == registry["hub"]["signing_secret"]
    for partner in registry["partners"]:
        assert directory.get(partner["id"]) == PartnerRecord.model_validate(partner)
    assert sorted(p.id for p in directory.all()) == sorted(p["id"] for p in registry["partners"])


def test_seed_replaces_what_was_there(registry):
    from chalicelib import partner_admin
    from chalicelib.partners import PartnersFile, get_directory
    from chalicelib.settings import get_settings

    smaller = copy.deepcopy(registry)
    smaller["partners"] = [p for p in smaller["partners"] if p["id"] not in {"gz-registry", "sz-water"}]
    smaller["partners"][0]["secrets"] = [new_secret()]
    smaller["hub"]["signing_secret"] = new_secret()
    partner_admin.seed_from_file(PartnersFile.model_validate(smaller))

    assert set(table_records()) == {p["id"] for p in smaller["partners"]}
    sm = boto3.client("secretsmanager")
    for removed in ("gz-registry", "sz-water"):
        with pytest.raises(sm.exceptions.ResourceNotFoundException):
            sm.get_secret_value(SecretId=get_settings().partner_secret_prefix + removed)
        assert get_directory().get(removed) is None
    assert stored_secrets(smaller["partners"][0]["id"]) == smaller["partners"][0]["secrets"]
    assert get_directory().hub_secret() == smaller["hub"]["signing_secret"]


def test_seeding_twice_is_idempotent(registry):
    from chalicelib import partner_admin
    from chalicelib.partners import PartnersFile

    before = table_records()
    partner_admin.seed_from_file(PartnersFile.model_validate(registry))
    assert table_records() == before


# ------------------------------------------------------------------------------------------------
# hubctl partners ...


def test_hubctl_touches_the_moto_registry_not_a_local_hub(registry, capsys):
    """In-process hubctl stays inside the moto mock: what it lists is what the seed wrote."""
    import os

    code, listed, _ = hubctl_run(capsys, "partners", "list")
    assert code == 0
    assert [p["id"] for p in listed] == sorted(p["id"] for p in registry["partners"])
    assert "HUB_AWS_ENDPOINT" not in os.environ


def test_partners_add_prints_the_secret_once_and_the_partner_can_send(registry, client, capsys, receiver):
    from chalicelib import signatures

    code, answer, err = hubctl_run(capsys, "partners", "add", "--id", "sz-registry-2", "--kind", "registry",
                                   "--city", "440300", "--endpoint", receiver.url("sz-registry-2"))
    assert code == 0, err
    secret = answer["secret"]
    assert signatures.check_secret(secret) == secret
    assert answer["partner"] == {"id": "sz-registry-2", "kind": "registry", "city": "440300", "mapping": "canonical",
                                 "endpoint": receiver.url("sz-registry-2")}
    assert secret not in err
    assert stored_secrets("sz-registry-2") == [secret]

    status, body = post_event(client, "sz-registry-2", secret)
    assert status == 202, body
    assert body["status"] == "accepted"

    # Once: the listing does not show it, and adding again without --replace is refused without a secret.
    code, listed, _ = hubctl_run(capsys, "partners", "list")
    assert code == 0 and secret not in json.dumps(listed)
    code, again, err = hubctl_run(capsys, "partners", "add", "--id", "sz-registry-2", "--kind", "registry",
                                  "--city", "440300", "--endpoint", receiver.url("x"))
    assert code != 0 and again is None and "whsec_" not in err
    assert stored_secrets("sz-registry-2") == [secret]


def test_partners_add_with_replace_gives_a_new_secret_and_the_old_one_stops_working(registry, client, capsys,
                                                                                      receiver):
    old = secret_of(registry, "sz-registry")
    code, answer, _ = hubctl_run(capsys, "partners", "add", "--id", "sz-registry", "--kind", "registry",
                                 "--city", "440300", "--endpoint", receiver.url("sz-registry"), "--replace")
    assert code == 0 and answer["secret"] != old
    assert post_event(client, "sz-registry", old)[0] == 401
    assert post_event(client, "sz-registry", answer["secret"])[0] == 202


def _refused(capsys, *argv: str) -> bool:
    """A non-zero exit, or a refusal raised out of main (argparse's SystemExit, pydantic's ValueError)."""
    try:
        code, answer, _ = hubctl_run(capsys, *argv)
    except (ValueError, SystemExit):
        return True
    return code != 0 and answer is None


def test_an_invalid_partner_is_not_added(registry, capsys):
    assert _refused(capsys, "partners", "add", "--id", "sz-heat", "--kind", "utility", "--city", "440300",
                    "--endpoint", "http://127.0.0.1:1/sz-heat")  # a utility without --utility
    assert _refused(capsys, "partners", "add", "--id", "sz-tax-2", "--kind", "tax", "--city", "4403",
                    "--endpoint", "http://127.0.0.1:1/sz-tax-2")
    assert _refused(capsys, "partners", "add", "--id", "sz-bakery", "--kind", "bakery", "--city", "440300",
                    "--endpoint", "http://127.0.0.1:1/sz-bakery")
    assert not {"sz-heat", "sz-tax-2", "sz-bakery"} & set(table_records())


def test_rotation_old_and_new_verify_until_finish_rotation(registry, client, capsys):
    old = secret_of(registry, "sz-registry")
    code, answer, err = hubctl_run(capsys, "partners", "rotate-secret", "sz-registry")
    assert code == 0, err
    new = answer["new_secret"]
    assert answer["partner_id"] == "sz-registry" and new != old
    assert stored_secrets("sz-registry") == [new, old]

    assert post_event(client, "sz-registry", old)[0] == 202
    assert post_event(client, "sz-registry", new)[0] == 202

    code, answer, err = hubctl_run(capsys, "partners", "finish-rotation", "sz-registry")
    assert code == 0, err
    assert answer == {"partner_id": "sz-registry", "secrets_dropped": 1}
    assert stored_secrets("sz-registry") == [new]

    status, body = post_event(client, "sz-registry", old)
    assert (status, body["error"]["code"]) == (401, "unauthenticated")
    assert post_event(client, "sz-registry", new)[0] == 202
    # The other partners are untouched.
    assert post_event(client, "bj-registry", secret_of(registry, "bj-registry"),
                      unit_code="110105001001GB00001F00010001")[0] == 202


def test_rotating_twice_keeps_every_secret_until_finish(registry, capsys):
    old = secret_of(registry, "sz-registry")
    first = hubctl_run(capsys, "partners", "rotate-secret", "sz-registry")[1]["new_secret"]
    second = hubctl_run(capsys, "partners", "rotate-secret", "sz-registry")[1]["new_secret"]
    assert stored_secrets("sz-registry") == [second, first, old]
    assert hubctl_run(capsys, "partners", "finish-rotation", "sz-registry")[1]["secrets_dropped"] == 2
    assert stored_secrets("sz-registry") == [second]


def test_rotating_an_unknown_partner_exits_non_zero(registry, capsys):
    code, answer, err = hubctl_run(capsys, "partners", "rotate-secret", "nobody-here")
    assert code != 0
    assert answer is None and "whsec_" not in err
    assert "nobody-here" not in table_records()


def test_finishing_the_rotation_of_an_unknown_partner_exits_non_zero(registry, capsys):
    code, answer, _ = hubctl_run(capsys, "partners", "finish-rotation", "nobody-here")
    assert code != 0 and answer is None


def test_partners_list_shows_no_secrets(registry, capsys):
    code, listed, err = hubctl_run(capsys, "partners", "list")
    assert code == 0
    assert [p["id"] for p in listed] == sorted(p["id"] for p in registry["partners"])
    allowed = {"id", "kind", "city", "mapping", "endpoint", "utility", "uscc"}
    for entry in listed:
        assert set(entry) <= allowed and "secrets" not in entry
    text = json.dumps(listed) + err
    assert "whsec_" not in text
    for partner in registry["partners"]:
        for secret in partner["secrets"]:
            assert secret not in text
    assert registry["hub"]["signing_secret"] not in text


# ------------------------------------------------------------------------------------------------
# the directory's cache


def count_scans() -> dict[str, int]:
    """Counts the Scan calls of the hub's current DynamoDB client (the registry's only bulk read)."""
    from chalicelib import aws

    counter = {"Scan": 0}

    def count(**_):
        counter["Scan"] += 1

    aws.client("dynamodb").meta.events.register("before-call.dynamodb.Scan", count)
    return counter


@pytest.fixture
def scans(registry):
    return count_scans()


def test_with_ttl_0_every_lookup_reads_the_registry(registry, scans):
    from chalicelib.partners import get_directory

    directory = get_directory()
    directory.get("sz-registry")
    directory.get("sz-registry")
    assert scans["Scan"] == 2


def test_directory_caches_until_invalidate(registry, monkeypatch):
    from chalicelib import partner_admin
    from chalicelib.partners import PartnerRecord, get_directory
    from chalicelib.settings import get_settings, reset_settings

    monkeypatch.setenv("HUB_PARTNER_CACHE_TTL", "60")
    reset_settings()
    assert get_settings().partner_cache_ttl_s == 60
    scans = count_scans()
    directory = get_directory()
    assert directory.get("sz-registry") is not None
    assert directory.get("bj-registry") is not None
    directory.all()
    directory.hub_secret()
    assert scans["Scan"] == 1

    # The table changes behind the cache: a new partner, a removed one, a new hub secret.
    newcomer = PartnerRecord(id="hz-registry", kind="registry", city="330100", secrets=(new_secret(),),
                             endpoint="http://127.0.0.1:1/hz-registry")
    partner_admin.put_partner(newcomer)
    partner_admin.remove_partner("gz-registry")
    rotated_hub = new_secret()
    partner_admin.set_hub_secret(rotated_hub)
    assert directory.get("hz-registry") is None
    assert directory.get("gz-registry") is not None
    assert directory.hub_secret() == registry["hub"]["signing_secret"]
    assert scans["Scan"] == 1

    directory.invalidate()
    assert directory.get("hz-registry") == newcomer
    assert directory.get("gz-registry") is None
    assert directory.hub_secret() == rotated_hub
    assert scans["Scan"] == 2


def test_directory_cache_expires_after_the_ttl(registry, scans, monkeypatch):
    from chalicelib import partner_admin, partners
    from chalicelib.partners import AwsPartnerDirectory, PartnerRecord
    from chalicelib.settings import get_settings

    clock = {"now": 1000.0}

    class FakeTime:
        @staticmethod
        def monotonic() -> float:
            return clock["now"]

    monkeypatch.setattr(partners, "time", FakeTime)
    s = get_settings()
    directory = AwsPartnerDirectory(s.partners_table, s.partner_secret_prefix, s.hub_secret_id, ttl_s=60)
    assert directory.get("hz-registry") is None
    assert scans["Scan"] == 1

    partner_admin.put_partner(PartnerRecord(id="hz-registry", kind="registry", city="330100",
                                            secrets=(new_secret(),), endpoint="http://127.0.0.1:1/hz"))
    clock["now"] += 59.9
    assert directory.get("hz-registry") is None
    assert scans["Scan"] == 1
    clock["now"] += 0.2
    assert directory.get("hz-registry") is not None
    assert scans["Scan"] == 2


def test_cached_secrets_mean_a_rotation_is_seen_by_ingest_only_after_the_ttl(registry, client, capsys, monkeypatch):
    """With the default-like TTL, a warm container keeps verifying with what it loaded."""
    from chalicelib.partners import get_directory
    from chalicelib.settings import reset_settings

    monkeypatch.setenv("HUB_PARTNER_CACHE_TTL", "60")
    reset_settings()
    assert post_event(client, "sz-registry", secret_of(registry, "sz-registry"))[0] == 202  # loads the cache
    directory = get_directory()
    new = hubctl_run(capsys, "partners", "rotate-secret", "sz-registry")[1]["new_secret"]
    # hubctl resets the process's settings (it is a separate process in real life): reinstall the warm one.
    from chalicelib import partners

    monkeypatch.setattr(partners, "_directory", directory)
    assert post_event(client, "sz-registry", new)[0] == 401
    directory.invalidate()
    assert post_event(client, "sz-registry", new)[0] == 202


# ------------------------------------------------------------------------------------------------
# the hub's own secret


def test_hub_secret_rotate_changes_what_deliveries_are_signed_with(registry, client, capsys, receiver):
    from chalicelib import delivery, event_store, routing
    from chalicelib.partners import get_directory
    from chalicelib.settings import get_settings

    old = registry["hub"]["signing_secret"]
    assert get_directory().hub_secret() == old
    code, answer, err = hubctl_run(capsys, "hub-secret", "rotate")
    assert code == 0, err
    new = answer["hub_signing_secret"]
    assert new != old and new.startswith("whsec_")
    assert get_directory().hub_secret() == new

    assert post_event(client, "sz-registry", secret_of(registry, "sz-registry"))[0] == 202
    ddb = boto3.client("dynamodb")
    for item in ddb.scan(TableName=get_settings().events_table)["Items"]:
        assert routing.route(event_store.StoredEvent.from_item(item)) >= 1
    deliveries = [i for i in ddb.scan(TableName=get_settings().deliveries_table)["Items"]
                  if i["partner_id"]["S"] == "sz-tax"]
    assert len(deliveries) == 1
    assert delivery.attempt(deliveries[0]["delivery_id"]["S"]) == "delivered"
    got = receiver.take()
    assert got["path"] == "/sz-tax"
    assert Webhook(new).verify(got["body"], got["headers"])["type"] == "tax.assessment_requested"
    with pytest.raises(Exception):
        Webhook(old).verify(got["body"], got["headers"])


# ------------------------------------------------------------------------------------------------
# the partners file


def valid_doc() -> dict:
    return partners_doc("http://127.0.0.1:9100")


def test_a_valid_partners_file_is_accepted():
    from chalicelib.partners import PartnersFile

    doc = valid_doc()
    parsed = PartnersFile.model_validate(doc)
    assert [p.id for p in parsed.partners] == [p["id"] for p in doc["partners"]]


def _with_partner(**changes) -> dict:
    doc = valid_doc()
    doc["partners"][0].update(changes)
    for key, value in changes.items():
        if value is None:
            doc["partners"][0].pop(key)
    return doc


def _duplicate_ids() -> dict:
    doc = valid_doc()
    doc["partners"].append({**doc["partners"][0], "secrets": [new_secret()]})
    return doc


def _hub_secret(secret: str) -> dict:
    doc = valid_doc()
    doc["hub"]["signing_secret"] = secret
    return doc


SHORT_SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUA=="  # 16 bytes
LONG_SECRET = "whsec_" + base64.b64encode(b"x" * 65).decode()


@pytest.mark.parametrize("doc", [
    pytest.param(_with_partner(secrets=["sk_live_" + "A" * 40]), id="secret-not-whsec"),
    pytest.param(_with_partner(secrets=[SHORT_SECRET]), id="secret-too-short"),
    pytest.param(_with_partner(secrets=[LONG_SECRET]), id="secret-too-long"),
    pytest.param(_with_partner(secrets=["whsec_not base64!"]), id="secret-not-base64"),
    pytest.param(_with_partner(secrets=[]), id="no-secret"),
    pytest.param(_hub_secret("hunter2"), id="hub-secret-not-whsec"),
    pytest.param(_hub_secret(SHORT_SECRET), id="hub-secret-too-short"),
    pytest.param(_with_partner(kind="bakery"), id="unknown-kind"),
    pytest.param(_with_partner(kind="utility"), id="utility-missing-for-kind-utility"),
    pytest.param(_with_partner(kind="utility", utility="coal"), id="unknown-utility"),
    pytest.param(_with_partner(utility="water"), id="utility-on-a-registry"),
    pytest.param(_duplicate_ids(), id="duplicate-ids"),
    pytest.param(_with_partner(city="44030"), id="city-five-digits"),
    pytest.param(_with_partner(city="4403000"), id="city-seven-digits"),
    pytest.param(_with_partner(city="shenzhen"), id="city-not-digits"),
    pytest.param(_with_partner(city=440300), id="city-a-number"),
    pytest.param(_with_partner(id="SZ Registry"), id="bad-id"),
    pytest.param(_with_partner(endpoint="ftp://x"), id="bad-endpoint"),
    pytest.param(_with_partner(mapping="../etc/passwd"), id="mapping-path"),
    pytest.param(_with_partner(mapping="no_such_mapping"), id="mapping-missing"),
    pytest.param(_with_partner(mapping="tax_gt3"), id="mapping-of-another-kind"),
    pytest.param(_with_partner(colour="blue"), id="unknown-field"),
])
def test_an_invalid_partners_file_is_refused(doc):
    from chalicelib.partners import PartnersFile

    with pytest.raises((ValueError, ValidationError)):
        PartnersFile.model_validate(doc)


def test_partners_file_errors_name_the_rule():
    from chalicelib.partners import PartnersFile

    with pytest.raises(ValidationError) as caught:
        PartnersFile.model_validate(_duplicate_ids())
    assert "unique" in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        PartnersFile.model_validate(_with_partner(kind="utility"))
    assert "utility" in str(caught.value)


RAW_SECRET = base64.b64encode(bytes(range(100, 132))).decode()  # a real secret, prefix forgotten


@pytest.mark.parametrize("doc", [
    pytest.param(_with_partner(secrets=[RAW_SECRET]), id="partner-secret"),
    pytest.param(_hub_secret(RAW_SECRET), id="hub-secret"),
])
def test_a_refused_secret_is_not_printed_in_the_error(doc):
    from chalicelib.partners import PartnersFile

    with pytest.raises(ValidationError) as caught:
        PartnersFile.model_validate(doc)
    assert RAW_SECRET[:16] not in str(caught.value)
