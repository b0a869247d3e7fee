"""hubctl: the operators' command line.

    .venv/bin/python hubctl.py --help
    .venv/bin/python hubctl.py <group> --help

It talks to the hub's AWS resources: in AWS with the usual credentials and the resource names of
the deployed stack (HUB_* variables); against a running `make run` it finds the embedded endpoint
in .hub/local.json. Every command prints one JSON document on stdout; notes and errors go to stderr.

Queries and actions are the functions of `chalicelib/operations.py`, the same ones the web console
calls. Every action (a replay, a hold release, a utility retry, a partner added, a secret rotated) is
recorded in the audit log first, under your operator id: `--operator`, or $HUB_OPERATOR, or your
login name. Reasons are snake_case codes (e.g. receiver_recovered), never free text. Secrets are
printed once, when they are made, and never logged.
"""
from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable

from chalicelib.models.kinds import PARTNER_KINDS, UTILITY_TYPES

LOCAL_STATE = Path(os.environ.get("HUB_STATE_FILE") or Path(__file__).resolve().parent / ".hub" / "local.json")

EPILOG = """\
a first look, against a running `make run`:
  hubctl overdue list                      stages past their time limit
  hubctl holds list                        payments and clearances held for review
  hubctl dead-letters list                 deliveries whose retries are used up
  hubctl cases show <case_id>              one case: stage, orders, holds, timeline
  hubctl partners health                   who is failing, who is slow
then act (each action is recorded in the audit log under --operator):
  hubctl dead-letters replay <delivery_id> --reason receiver_recovered
  hubctl holds release <case_id> <hold_id> --reason reviewed_no_booking
  hubctl utilities retry <case_id> --utility water --reason arrears_settled
and check the record:
  hubctl audit actions                     the latest operator actions
  hubctl audit prove <action/event/delivery id>   an inclusion proof for tools/verify_audit.py
The web console shows the same: http://127.0.0.1:8000/console (`make run` prints its token)."""


def _connect() -> None:
    if not os.environ.get("HUB_AWS_ENDPOINT") and LOCAL_STATE.exists():
        state = json.loads(LOCAL_STATE.read_text())
        os.environ["HUB_AWS_ENDPOINT"] = state["aws_endpoint"]
        os.environ.setdefault("AWS_DEFAULT_REGION", state["region"])
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    import logging

    from chalicelib.observability import logger
    from chalicelib.settings import reset_settings

    # stdout carries the command's JSON answer; the hub's log lines go to stderr.
    if isinstance(logger.registered_handler, logging.StreamHandler):
        logger.registered_handler.setStream(sys.stderr)

    reset_settings()


def _print(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True))


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def default_operator() -> str:
    """$HUB_OPERATOR, else the login name made into an operator id (lower case, ._:- kept)."""
    name = os.environ.get("HUB_OPERATOR") or getpass.getuser()
    return re.sub(r"[^a-z0-9._:-]+", "-", name.lower()).strip("-") or "operator"


def _action(result: dict[str, Any]) -> dict[str, Any]:
    """An action's answer on stdout; its audit action id on stderr."""
    action_id = result.pop("action_id", None)
    if action_id:
        _note(f"recorded in the audit log as {action_id}")
    return result


# ------------------------------------------------------------------------------------------------
# commands: each calls one function of chalicelib.operations


def cmd_partners_list(args) -> Any:
    from chalicelib import operations

    return operations.partners()


def cmd_partners_health(args) -> Any:
    from chalicelib import operations

    return operations.partner_health(sample=args.sample)


def cmd_partners_add(args) -> Any:
    from chalicelib import operations

    fields = {"id": args.id, "kind": args.kind, "city": args.city, "endpoint": args.endpoint,
              "mapping": args.mapping, "utility": args.utility, "uscc": args.uscc}
    return _action(operations.add_partner(args.operator, fields, replace=args.replace))


def cmd_partners_rotate(args) -> Any:
    from chalicelib import operations

    answer = _action(operations.rotate_partner_secret(args.operator, args.id))
    return {**answer, "note": "old and new secrets both verify until `hubctl partners finish-rotation`"}


def cmd_partners_finish(args) -> Any:
    from chalicelib import operations

    return _action(operations.finish_partner_rotation(args.operator, args.id))


def cmd_hub_secret_rotate(args) -> Any:
    from chalicelib import operations

    answer = _action(operations.rotate_hub_secret(args.operator))
    return {**answer, "note": "give it to every partner that verifies deliveries"}


def cmd_dead_list(args) -> Any:
    from chalicelib import operations

    return operations.dead_letters(limit=args.limit, partner_id=args.partner)


def cmd_dead_replay(args) -> Any:
    from chalicelib import operations

    if args.all:
        answer = operations.replay_dead_letters(args.operator, args.reason, partner_id=args.partner)
        for delivery_id in answer["delivery_ids"]:
            _note(f"replayed {delivery_id}")
        return {"replayed": answer["replayed"]}
    if not args.delivery_id:
        raise _Usage("name a delivery id or --all")
    return _action(operations.replay_dead_letter(args.operator, args.delivery_id, args.reason))


def cmd_delivery_show(args) -> Any:
    from chalicelib import operations

    return operations.delivery_detail(args.delivery_id)


def cmd_case_show(args) -> Any:
    from chalicelib import operations

    return [{**one["case"], "timeline": one["timeline"], "holds": one["holds"], "clocks": one["clocks"]}
            for one in operations.case_detail(args.case_id)["cases"]]


def cmd_case_timeline(args) -> Any:
    from chalicelib import operations

    return [{"case_id": one["case"]["case_id"], "unit_code": one["case"]["unit_code"], "timeline": one["timeline"]}
            for one in operations.case_detail(args.case_id)["cases"]]


def cmd_relay_show(args) -> Any:
    from chalicelib import operations

    detail = operations.relay_detail(args.relay_id)
    return {**detail["relay"], "timeline": detail["timeline"]}


def cmd_holds_list(args) -> Any:
    from chalicelib import operations

    return operations.holds("released" if args.released else "open", limit=args.limit)


def cmd_holds_release(args) -> Any:
    from chalicelib import operations

    return _action(operations.release_hold(args.operator, args.case_id, args.hold_id, args.reason, unit_code=args.unit))


def cmd_risks_list(args) -> Any:
    from chalicelib import operations

    return operations.risks(limit=args.limit)


def cmd_overdue_list(args) -> Any:
    from chalicelib import operations

    return operations.overdue(limit=args.limit, closed_on=args.closed_on)


def cmd_utilities_list(args) -> Any:
    from chalicelib import operations

    return operations.utility_failures(limit=args.limit)


def cmd_utilities_retry(args) -> Any:
    from chalicelib import operations

    return _action(operations.retry_utility(args.operator, args.case_id, args.utility, args.reason,
                                            unit_code=args.unit))


def cmd_reconciliations_list(args) -> Any:
    from chalicelib import operations

    return operations.reconciliations(limit=args.limit)


def cmd_reconciliations_show(args) -> Any:
    from chalicelib import operations

    return operations.reconciliation(args.report_key)


def cmd_audit_checkpoint(args) -> Any:
    from chalicelib import operations

    return operations.audit_checkpoint()


def cmd_audit_prove(args) -> Any:
    from chalicelib import operations

    ref = args.event_id or args.delivery_id or args.action_id or args.ref
    if not ref:
        raise _Usage("name what to prove: a reference, --event-id, --delivery-id or --action-id")
    return operations.audit_proof(ref)


def cmd_audit_actions(args) -> Any:
    from chalicelib import operations

    return operations.actions(limit=args.limit)


class _Usage(Exception):
    """A command given without what it needs (exit 2, like argparse's own usage errors)."""


# ------------------------------------------------------------------------------------------------
# the parser


def _group(groups: Any, name: str, text: str) -> Any:
    return groups.add_parser(name, help=text, description=text).add_subparsers(dest="action", required=True,
                                                                               metavar="command")


def _command(group: Any, name: str, text: str, func: Callable[[Any], Any], *, acts: bool = False,
             limit: int | None = None, reason: str | None = None) -> argparse.ArgumentParser:
    command = group.add_parser(name, help=text, description=text)
    command.set_defaults(func=func)
    if limit is not None:
        command.add_argument("--limit", type=int, default=limit, help=f"at most this many (default {limit})")
    if acts:
        command.add_argument("--operator", default=None,
                             help="your operator id, recorded in the audit log (default: $HUB_OPERATOR or your login)")
    if reason is not None:
        command.add_argument("--reason", default=reason or None, required=not reason,
                             help="a snake_case reason code, recorded with the action" +
                                  (f" (default {reason})" if reason else ""))
    return command


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="hubctl", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Operate the registration hub: partners and secrets, deliveries and dead letters, cases and "
                    "their holds, time limits, utilities, reconciliation, relays and the audit log.")
    groups = p.add_subparsers(dest="group", required=True, metavar="group")

    partners = _group(groups, "partners", "the partner registry: who may send and where the hub delivers")
    _command(partners, "list", "list partners (never their secrets)", cmd_partners_list)
    health = _command(partners, "health", "per partner: deliveries waiting, retrying, dead, delivered, and latency",
                      cmd_partners_health)
    health.add_argument("--sample", type=int, default=2000, help="delivered items read for latency (default 2000)")
    add = _command(partners, "add", "add a partner; prints its new secret once", cmd_partners_add, acts=True)
    add.add_argument("--id", required=True, help="the partner id, e.g. hz-tax")
    add.add_argument("--kind", required=True, choices=PARTNER_KINDS)
    add.add_argument("--city", required=True, help="six-digit city code, e.g. 440300")
    add.add_argument("--endpoint", required=True, help="where the hub delivers to this partner")
    add.add_argument("--mapping", default="canonical", help="mapping file under mappings/ (default: canonical)")
    add.add_argument("--utility", choices=UTILITY_TYPES, help="which utility (kind utility only)")
    add.add_argument("--uscc", help="the institution's unified social credit code (bank, notary, court)")
    add.add_argument("--replace", action="store_true", help="overwrite an existing partner (and its secrets)")
    rotate = _command(partners, "rotate-secret", "add a new secret; the old one keeps verifying until finish-rotation",
                      cmd_partners_rotate, acts=True)
    rotate.add_argument("id", help="the partner id")
    finish = _command(partners, "finish-rotation", "drop every secret of a partner but the newest",
                      cmd_partners_finish, acts=True)
    finish.add_argument("id", help="the partner id")

    hub = _group(groups, "hub-secret", "the hub's own signing secret (deliveries are signed with it)")
    _command(hub, "rotate", "generate and store a new hub signing secret; prints it once", cmd_hub_secret_rotate,
             acts=True)

    dead = _group(groups, "dead-letters", "deliveries whose retries are used up")
    listing = _command(dead, "list", "list dead letters", cmd_dead_list, limit=1000)
    listing.add_argument("--partner", help="only those to this partner")
    replay = _command(dead, "replay", "deliver again: the same webhook-id, a fresh retry schedule", cmd_dead_replay,
                      acts=True, reason="receiver_recovered")
    replay.add_argument("delivery_id", nargs="?", help="the delivery id (its webhook-id)")
    replay.add_argument("--all", action="store_true", help="replay every dead letter (of --partner)")
    replay.add_argument("--partner", help="with --all: only those to this partner")

    deliveries = _group(groups, "deliveries", "one delivery's state")
    show = _command(deliveries, "show", "a delivery: state, attempts, last error (never its body)", cmd_delivery_show)
    show.add_argument("delivery_id")

    case_group = _group(groups, "cases", "application cases (no names, ID numbers or phones are shown)")
    show_case = _command(case_group, "show", "a case: stage, orders, holds, clocks, timeline", cmd_case_show)
    show_case.add_argument("case_id", help="the registry's case number")
    timeline = _command(case_group, "timeline", "every message in and out of a case, oldest first", cmd_case_timeline)
    timeline.add_argument("case_id", help="the registry's case number")

    relays = _group(groups, "relays", "five-city relays (remote collect, local handle)")
    show_relay = _command(relays, "show", "a relay: submissions, answers, timeline", cmd_relay_show)
    show_relay.add_argument("relay_id", help="the collecting office's relay reference")

    holds = _group(groups, "holds", "payments and clearances held for review")
    hold_list = _command(holds, "list", "open holds (or --released ones)", cmd_holds_list, limit=1000)
    hold_list.add_argument("--released", action="store_true", help="list released holds instead")
    release = _command(holds, "release", "close a hold as reviewed (it books no money by itself)", cmd_holds_release,
                       acts=True, reason="")
    release.add_argument("case_id", help="the case number")
    release.add_argument("hold_id", help="the hold id, as `holds list` shows it")
    release.add_argument("--unit", help="the unit code, when two cases share the case number")

    risks = _group(groups, "risks", "cases that did not close their loop")
    _command(risks, "list", "list the open risks, oldest first", cmd_risks_list, limit=1000)

    overdue = _group(groups, "overdue", "stages past their time limit (效能监管)")
    overdue_list = _command(overdue, "list", "open breaches (or those closed on a China day)", cmd_overdue_list,
                            limit=1000)
    overdue_list.add_argument("--closed-on", help="yyyy-mm-dd: breaches whose stage finished late that day")

    utilities = _group(groups, "utilities", "utility transfers after booking (水电气过户)")
    _command(utilities, "list", "utilities whose transfer failed and was not retried", cmd_utilities_list, limit=1000)
    retry = _command(utilities, "retry", "ask a failed utility again (the next attempt)", cmd_utilities_retry,
                     acts=True, reason="")
    retry.add_argument("case_id", help="the case number")
    retry.add_argument("--utility", required=True, choices=UTILITY_TYPES)
    retry.add_argument("--unit", help="the unit code, when two cases share the case number")

    recon = _group(groups, "reconciliations", "daily settlement reports")
    _command(recon, "list", "reports, with their summary counts", cmd_reconciliations_list, limit=100)
    recon_show = _command(recon, "show", "one report: every line that did not match", cmd_reconciliations_show)
    recon_show.add_argument("report_key", help="the report_key that `reconciliations list` shows")

    audit = _group(groups, "audit", "the verifiable audit log")
    _command(audit, "checkpoint", "the latest signed checkpoint and the verifier key", cmd_audit_checkpoint)
    prove = _command(audit, "prove", "inclusion proofs of a reference's leaves (check them with "
                     "tools/verify_audit.py)", cmd_audit_prove)
    prove.add_argument("ref", nargs="?", help="an event id, delivery id or operator action id")
    prove.add_argument("--event-id", help="an accepted event's id (evt_…)")
    prove.add_argument("--delivery-id", help="a delivery's id (msg_…)")
    prove.add_argument("--action-id", help="an operator action's id (opr_…)")
    _command(audit, "actions", "the latest operator actions, newest first, with their details", cmd_audit_actions,
             limit=100)
    return p


def main(argv: list[str] | None = None) -> int:
    from chalicelib.errors import HubError

    command = parser()
    args = command.parse_args(argv)
    if hasattr(args, "operator"):
        args.operator = args.operator or default_operator()
    _connect()
    try:
        _print(args.func(args))
    except _Usage as exc:
        command.print_usage(sys.stderr)
        _note(f"hubctl: {exc}")
        return 2
    except HubError as exc:
        _note(json.dumps(exc.body(), ensure_ascii=False))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
