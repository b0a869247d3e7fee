"""The operators' HTTP API (`/v1/ops/…`) and the console's files (`/console`), as (status, body).

Every answer comes from `chalicelib.operations`, the functions `hubctl` calls too.

Sign-in (settings `operator_auth`):
- `token` (local mode): the request carries `hub-operator-token: <HUB_OPERATOR_TOKEN>` (compared in
  constant time) and `hub-operator: <operator id>`, the name the operator signs in under; local mode
  makes a token at start and prints it. There is one token: whoever holds it may act, under the name
  they give, and every action is recorded under that name.
- `cognito` (AWS): an Amazon Cognito user pool authorizer on API Gateway checks the `Authorization`
  ID token (signature, expiry, audience) before the function runs; the hub then reads the verified
  claims API Gateway passes in the request context, requires the operator group (`cognito:groups`)
  and takes the operator id from `cognito:username` (or `sub`). Claims are never read in token mode:
  Chalice's local server decodes an unverified token into the same place.

Routes (`{ref}` is a case id, relay id, delivery id or audit reference):

    GET  session                     who is signed in
    GET  cases/{ref}  relays/{ref}   a case (lanes: timeline, clocks, holds) / a relay
    GET  holds?state=open|released   POST holds/release {case_id, unit_code?, hold_id, reason}
    GET  dead-letters?partner=       POST dead-letters/{ref}/replay {reason}
    GET  deliveries/{ref}            GET  risks   GET overdue?closed_on=   GET utilities
    POST utilities/retry {case_id, unit_code?, utility, reason}
    GET  reconciliations[?report_key=]   GET partners   GET partners/health
    GET  audit/checkpoint            GET  audit/{ref} (inclusion proofs)    GET actions
"""
from __future__ import annotations

import hmac
import json
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from chalicelib import operations
from chalicelib.errors import HubError
from chalicelib.observability import logger
from chalicelib.settings import get_settings

CONSOLE_DIR = Path(__file__).with_name("console")
ASSETS = {"index.html": "text/html; charset=utf-8", "console.js": "text/javascript; charset=utf-8",
          "console.css": "text/css; charset=utf-8"}
MIN_TOKEN_LENGTH = 16
_GROUPS_SPLIT = re.compile(r"[\s,\[\]\"]+")


# --------------------------------------------------------------------------------------------------
# sign-in


def operator_of(headers: Mapping[str, str], context: Mapping[str, Any] | None) -> str:
    """The signed-in operator's id, or the HubError that refuses the request."""
    settings = get_settings()
    if settings.operator_auth == "cognito":
        claims = ((context or {}).get("authorizer") or {}).get("claims") or {}
        if not claims:
            raise HubError(401, "operator_unauthenticated", "Sign in to the operators' console.")
        groups = [g for g in _GROUPS_SPLIT.split(str(claims.get("cognito:groups") or "")) if g]
        if settings.operator_group not in groups:
            raise HubError(403, "not_an_operator", "Your account is not in the operators' group.")
        name = str(claims.get("cognito:username") or "").lower()
        return name if operations.OPERATOR_PATTERN.fullmatch(name) else operations.check_operator(
            str(claims.get("sub") or ""))
    if settings.operator_auth != "token":
        raise HubError(503, "operator_sign_in_not_configured", "HUB_OPERATOR_AUTH is token or cognito.")
    expected = settings.operator_token or ""
    if len(expected) < MIN_TOKEN_LENGTH:
        raise HubError(503, "operator_sign_in_not_configured", f"Set HUB_OPERATOR_TOKEN (at least "
                       f"{MIN_TOKEN_LENGTH} characters) to use the operators' API.")
    given = _header(headers, "hub-operator-token")
    if not hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
        raise HubError(401, "operator_unauthenticated", "Sign in to the operators' console.")
    return operations.check_operator(_header(headers, "hub-operator"))


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return ""


def sign_in_config() -> dict[str, Any]:
    """What the console needs before anyone signs in (public: no secret in it)."""
    s = get_settings()
    if s.operator_auth == "cognito" and s.operator_cognito_domain and s.operator_cognito_client_id:
        domain = "https://" + s.operator_cognito_domain.removeprefix("https://").rstrip("/")
        return {"auth": "cognito", "authorize_url": domain + "/oauth2/authorize", "token_url": domain + "/oauth2/token",
                "client_id": s.operator_cognito_client_id}
    return {"auth": "token"}


# --------------------------------------------------------------------------------------------------
# the console's files


_cache: dict[str, str] = {}


def asset(name: str) -> tuple[int, str, dict[str, str]]:
    """(status, text, headers) of a console file; `sign-in.json` is made from the settings."""
    if name == "sign-in.json":
        return 200, json.dumps(sign_in_config()), {"Content-Type": "application/json", "Cache-Control": "no-store"}
    if name not in ASSETS:
        return 404, "not found", {"Content-Type": "text/plain; charset=utf-8"}
    if name not in _cache:
        _cache[name] = (CONSOLE_DIR / name).read_text(encoding="utf-8")
    headers = {"Content-Type": ASSETS[name], "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if name == "index.html":
        config = sign_in_config()
        connect = " " + config["token_url"].rsplit("/oauth2/", 1)[0] if config["auth"] == "cognito" else ""
        headers["Content-Security-Policy"] = (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src 'self'{connect}; form-action 'self'{connect}; frame-ancestors 'none'; base-uri 'none'")
        headers["Referrer-Policy"] = "no-referrer"
    return 200, _cache[name], headers


# --------------------------------------------------------------------------------------------------
# the API


def _body(raw: bytes | None) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise HubError(400, "invalid_json", "The body must be a JSON object.") from None
    if not isinstance(body, dict):
        raise HubError(400, "invalid_json", "The body must be a JSON object.")
    return body


Handler = Callable[[str, str | None, Mapping[str, str], dict[str, Any]], Any]


def _session(operator: str, ref: str | None, query: Mapping[str, str], body: dict[str, Any]) -> Any:
    return {"operator_id": operator, "auth": get_settings().operator_auth}


def _audit(operator: str, ref: str | None, query: Mapping[str, str], body: dict[str, Any]) -> Any:
    return operations.audit_checkpoint() if ref == "checkpoint" else operations.audit_proof(ref or "")


def _partners(operator: str, ref: str | None, query: Mapping[str, str], body: dict[str, Any]) -> Any:
    if ref == "health":
        return operations.partner_health()
    if ref is not None:
        raise HubError(404, "not_found", "No such operator resource.")
    return {"partners": operations.partners()}


def _reconciliations(operator: str, ref: str | None, query: Mapping[str, str], body: dict[str, Any]) -> Any:
    if query.get("report_key"):
        return operations.reconciliation(query["report_key"])
    return {"reports": operations.reconciliations(operations.check_limit(query.get("limit")))}


def _listing(name: str, read: Callable[..., list], **params: str) -> Handler:
    def run(operator: str, ref: str | None, query: Mapping[str, str], body: dict[str, Any]) -> Any:
        given = {arg: query.get(param) for arg, param in params.items() if query.get(param)}
        return {name: read(limit=operations.check_limit(query.get("limit")), **given)}
    return run


# (method, resource, has a ref, action) -> handler
_GETS: dict[tuple[str, bool], Handler] = {
    ("session", False): _session,
    ("cases", True): lambda op, ref, q, b: operations.case_detail(ref),
    ("relays", True): lambda op, ref, q, b: operations.relay_detail(ref),
    ("deliveries", True): lambda op, ref, q, b: operations.delivery_detail(ref),
    ("holds", False): _listing("holds", operations.holds, state="state"),
    ("risks", False): _listing("risks", operations.risks),
    ("overdue", False): _listing("overdue", operations.overdue, closed_on="closed_on"),
    ("dead-letters", False): _listing("dead_letters", operations.dead_letters, partner_id="partner"),
    ("utilities", False): _listing("utilities", operations.utility_failures),
    ("reconciliations", False): _reconciliations,
    ("partners", False): _partners,
    ("partners", True): _partners,
    ("audit", True): _audit,
    ("actions", False): _listing("actions", operations.actions),
}
_POSTS: dict[tuple[str, str | None, str | None], Handler] = {
    ("holds", "release", None): lambda op, ref, q, b: operations.release_hold(
        op, b.get("case_id"), b.get("hold_id"), b.get("reason"), unit_code=b.get("unit_code")),
    ("dead-letters", "*", "replay"): lambda op, ref, q, b: operations.replay_dead_letter(op, ref, b.get("reason")),
    ("utilities", "retry", None): lambda op, ref, q, b: operations.retry_utility(
        op, b.get("case_id"), b.get("utility"), b.get("reason"), unit_code=b.get("unit_code")),
}


def _handler(method: str, resource: str, ref: str | None, action: str | None) -> Handler | None:
    if method == "GET" and action is None:
        return _GETS.get((resource, ref is not None))
    if method == "POST":
        return _POSTS.get((resource, ref, action)) or (_POSTS.get((resource, "*", action)) if action else None)
    return None


def answer(method: str, resource: str, ref: str | None, action: str | None, headers: Mapping[str, str],
           query: Mapping[str, str] | None, raw_body: bytes | None,
           context: Mapping[str, Any] | None) -> tuple[int, dict[str, Any]]:
    """One operator request: sign-in, then the operation; a HubError becomes its status and body."""
    try:
        operator = operator_of(headers, context)
        handler = _handler(method, resource, ref, action)
        if handler is None:
            raise HubError(404, "not_found", "No such operator resource.")
        body = _body(raw_body) if method == "POST" else {}
        result = handler(operator, ref, query or {}, body)
        return 200, result if isinstance(result, dict) else {"items": result}
    except HubError as exc:
        if exc.status in (401, 403):
            logger.info("operator request refused", extra={"status": exc.status, "code": exc.code})
        return exc.status, exc.body()
    except Exception:
        logger.exception("operator request failed")
        return 503, HubError(503, "temporarily_unavailable", "The hub could not answer; retry later.").body()
