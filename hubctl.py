"""hubctl: the operators' command line.

    .venv/bin/python hubctl.py --help

It talks to the hub's AWS resources: in AWS with the usual credentials and the resource names of
the deployed stack (HUB_* variables); against a running `make run` it finds the embedded endpoint
in .hub/local.json. Secrets are printed once, when they are made, and never logged.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from chalicelib.models.kinds import PARTNER_KINDS, UTILITY_TYPES

LOCAL_STATE = Path(os.environ.get("HUB_STATE_FILE") or Path(__file__).resolve().parent / ".hub" / "local.json")


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


def _print(value) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True))


def cmd_partners_list(args) -> int:
    from chalicelib import partner_admin

    _print(partner_admin.list_partners())
    return 0


def cmd_partners_add(args) -> int:
    from chalicelib import partner_admin
    from chalicelib.partners import PartnerRecord

    if partner_admin.get_partner(args.id) is not None and not args.replace:
        print(f"partner {args.id} exists (use --replace)", file=sys.stderr)
        return 1
    secret = partner_admin.generate_secret()
    record = PartnerRecord(id=args.id, kind=args.kind, city=args.city, secrets=(secret,), mapping=args.mapping,
                           endpoint=args.endpoint, utility=args.utility, uscc=args.uscc)
    partner_admin.put_partner(record)
    _print({"partner": record.model_dump(mode="json", exclude={"secrets"}, exclude_none=True), "secret": secret})
    return 0


def cmd_partners_rotate(args) -> int:
    from chalicelib import partner_admin

    try:
        secret = partner_admin.rotate_secret(args.id)
    except KeyError:
        print(f"no partner {args.id}", file=sys.stderr)
        return 1
    _print({"partner_id": args.id, "new_secret": secret,
            "note": "old and new secrets both verify until `hubctl partners finish-rotation`"})
    return 0


def cmd_partners_finish(args) -> int:
    from chalicelib import partner_admin

    try:
        dropped = partner_admin.finish_rotation(args.id)
    except KeyError:
        print(f"no partner {args.id}", file=sys.stderr)
        return 1
    _print({"partner_id": args.id, "secrets_dropped": dropped})
    return 0


def cmd_hub_secret_rotate(args) -> int:
    from chalicelib import partner_admin

    secret = partner_admin.generate_secret()
    partner_admin.set_hub_secret(secret)
    _print({"hub_signing_secret": secret, "note": "give it to every partner that verifies deliveries"})
    return 0


def cmd_dead_list(args) -> int:
    from chalicelib import delivery

    items = delivery.list_dead(limit=args.limit)
    if args.partner:
        items = [i for i in items if i["partner_id"] == args.partner]
    _print(items)
    return 0


def cmd_dead_replay(args) -> int:
    from chalicelib import delivery

    if args.all:
        _print({"replayed": delivery.replay_all()})
        return 0
    if not args.delivery_id:
        print("name a delivery id or --all", file=sys.stderr)
        return 2
    ok = delivery.replay(args.delivery_id)
    _print({"delivery_id": args.delivery_id, "replayed": ok})
    return 0 if ok else 1


def cmd_delivery_show(args) -> int:
    from chalicelib import delivery

    item = delivery.get(args.delivery_id)
    if item is None:
        print(f"no delivery {args.delivery_id}", file=sys.stderr)
        return 1
    item.pop("body", None)
    _print(item)
    return 0


def cmd_case_show(args) -> int:
    from chalicelib import cases, flows

    found = cases.find(args.case_id)
    if not found:
        print(f"no case {args.case_id}", file=sys.stderr)
        return 1
    _print([flows.view(case) for case in found])
    return 0


def cmd_list(list_key: str):
    def run(args) -> int:
        from chalicelib import cases

        _print(cases.listed(list_key, limit=args.limit))
        return 0
    return run


def cmd_overdue_list(args) -> int:
    from chalicelib import clocks

    _print(clocks.overdue_list(limit=args.limit, closed_on=args.closed_on))
    return 0


def cmd_reconciliations_list(args) -> int:
    from chalicelib.flows import settlement

    _print(settlement.reports(limit=args.limit))
    return 0


def cmd_reconciliations_show(args) -> int:
    from chalicelib.flows import settlement

    _print(settlement.report(args.report_key))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hubctl", description="Operate the registration hub: partners, secrets, "
                                "deliveries and dead letters.")
    groups = p.add_subparsers(dest="group", required=True)

    partners = groups.add_parser("partners", help="the partner registry").add_subparsers(dest="action", required=True)
    partners.add_parser("list", help="list partners (no secrets)").set_defaults(func=cmd_partners_list)
    add = partners.add_parser("add", help="add a partner; prints its new secret once")
    add.add_argument("--id", required=True)
    add.add_argument("--kind", required=True, choices=PARTNER_KINDS)
    add.add_argument("--city", required=True, help="six-digit city code, e.g. 440300")
    add.add_argument("--endpoint", required=True, help="where the hub delivers to this partner")
    add.add_argument("--mapping", default="canonical", help="mapping file under mappings/ (default: canonical)")
    add.add_argument("--utility", choices=UTILITY_TYPES)
    add.add_argument("--uscc", help="the institution's unified social credit code (bank, notary, court)")
    add.add_argument("--replace", action="store_true", help="overwrite an existing partner")
    add.set_defaults(func=cmd_partners_add)
    rotate = partners.add_parser("rotate-secret", help="add a new secret; the old one keeps verifying")
    rotate.add_argument("id")
    rotate.set_defaults(func=cmd_partners_rotate)
    finish = partners.add_parser("finish-rotation", help="drop every secret but the newest")
    finish.add_argument("id")
    finish.set_defaults(func=cmd_partners_finish)

    hub = groups.add_parser("hub-secret", help="the hub's own signing secret").add_subparsers(dest="action", required=True)
    hub.add_parser("rotate", help="generate and store a new hub signing secret").set_defaults(func=cmd_hub_secret_rotate)

    dead = groups.add_parser("dead-letters", help="deliveries whose retries are used up").add_subparsers(
        dest="action", required=True)
    listing = dead.add_parser("list", help="list dead letters")
    listing.add_argument("--partner")
    listing.add_argument("--limit", type=int, default=1000)
    listing.set_defaults(func=cmd_dead_list)
    replay = dead.add_parser("replay", help="deliver again with the same webhook-id and a fresh schedule")
    replay.add_argument("delivery_id", nargs="?")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.set_defaults(func=cmd_dead_replay)

    deliveries = groups.add_parser("deliveries", help="one delivery's state").add_subparsers(dest="action", required=True)
    show = deliveries.add_parser("show", help="show a delivery (without its body)")
    show.add_argument("delivery_id")
    show.set_defaults(func=cmd_delivery_show)
    case_group = groups.add_parser("cases", help="application cases").add_subparsers(dest="action", required=True)
    show_case = case_group.add_parser("show", help="a case: stage, orders, holds, risks, timeline (no personal data)")
    show_case.add_argument("case_id")
    show_case.set_defaults(func=cmd_case_show)
    for name, key, text in (("holds", "hold:open", "payments and clearances held for review"),
                            ("risks", "risk:open", "cases that did not close their loop")):
        group = groups.add_parser(name, help=text).add_subparsers(dest="action", required=True)
        listing = group.add_parser("list", help=f"list open {name}")
        listing.add_argument("--limit", type=int, default=1000)
        listing.set_defaults(func=cmd_list(key))
    overdue = groups.add_parser("overdue", help="stages past their time limit").add_subparsers(dest="action",
                                                                                              required=True)
    overdue_list = overdue.add_parser("list", help="open breaches (or those closed on a China day)")
    overdue_list.add_argument("--limit", type=int, default=1000)
    overdue_list.add_argument("--closed-on", help="yyyy-mm-dd: breaches whose stage finished late that day")
    overdue_list.set_defaults(func=cmd_overdue_list)
    recon = groups.add_parser("reconciliations", help="daily settlement reports").add_subparsers(
        dest="action", required=True)
    recon_list = recon.add_parser("list", help="reports, with their summary counts")
    recon_list.add_argument("--limit", type=int, default=100)
    recon_list.set_defaults(func=cmd_reconciliations_list)
    recon_show = recon.add_parser("show", help="one report: every line that did not match")
    recon_show.add_argument("report_key")
    recon_show.set_defaults(func=cmd_reconciliations_show)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _connect()
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
