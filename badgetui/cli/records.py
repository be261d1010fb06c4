"""Templates, progress and badges: listing and the operator's badge actions."""

from __future__ import annotations

import argparse
from typing import Any

from badgetui.cli import awards
from badgetui.cli.common import (
    deliver_now,
    json_flag,
    open_services,
    paging,
    print_delivery,
    print_json,
    table,
    template_id,
)
from badgetui.domain.provider_states import PROVIDER_STATES


def cmd_template_list(args: argparse.Namespace) -> int:
    services = open_services(args)
    rows = services.templates.list(provider=args.provider, active=args.active, text=args.search)
    if args.json:
        print_json([r.as_dict() for r in rows])
        return 0
    table(
        [
            (r.id, r.provider, r.external_id, "yes" if r.active else "no",
             "stale" if r.stale else ("deleted" if r.deleted else r.state),
             r.requirements, r.awarded, r.name)
            for r in rows
        ],
        ["ID", "PROVIDER", "EXTERNAL ID", "ACTIVE", "STATE", "REQS", "AWARDED", "NAME"],
    )
    return 0


def _set_active(args: argparse.Namespace, active: bool) -> int:
    services = open_services(args)
    view = services.templates.set_active(args.id, active)
    if args.json:
        print_json(view.as_dict())
    else:
        print(f"template {view.id} ({view.name}) is {'active' if view.active else 'inactive'}")
    return 0


def cmd_template_activate(args: argparse.Namespace) -> int:
    return _set_active(args, True)


def cmd_template_deactivate(args: argparse.Namespace) -> int:
    return _set_active(args, False)


def cmd_progress_list(args: argparse.Namespace) -> int:
    from badgetui.services.queries import list_progress

    services = open_services(args)
    rows = list_progress(template=template_id(services, args.template), learner=args.learner,
                         complete=args.complete, limit=args.limit, offset=args.offset)
    if args.json:
        print_json([r.as_dict() for r in rows])
        return 0
    table(
        [(r.username, r.template_id, f"{r.fulfilled_groups}/{r.total_groups}",
          "yes" if r.holds_badge else "no", ", ".join(r.fulfilled), r.template)
         for r in rows],
        ["LEARNER", "TEMPLATE", "GROUPS", "BADGE", "FULFILLED", "NAME"],
    )
    return 0


def cmd_badges_list(args: argparse.Namespace) -> int:
    from badgetui.services.queries import list_badges

    services = open_services(args)
    before = None
    if args.expiring_within is not None:
        from datetime import timedelta

        before = services.clock() + timedelta(days=args.expiring_within)
    rows = list_badges(status=args.status, template=template_id(services, args.template),
                       learner=args.learner, provider_state=args.provider_state,
                       failed_only=args.failed_only, limit=args.limit, offset=args.offset,
                       expiring_before=before)
    if args.json:
        print_json([r.as_dict() for r in rows])
        return 0
    table(
        [(r.id, r.username, r.provider, r.external_template_id, r.status, r.provider_state,
          r.external_id or "", r.last_error)
         for r in rows],
        ["ID", "LEARNER", "PROVIDER", "TEMPLATE", "STATUS", "PROVIDER STATE", "EXTERNAL ID",
         "LAST ERROR"],
    )
    return 0


def cmd_badges_why(args: argparse.Namespace) -> int:
    from badgetui.services.queries import why, why_lines

    open_services(args)
    data = why(args.badge_id)
    if args.json:
        print_json(data)
    else:
        print("\n".join(why_lines(data)))
    return 0


def _badge_action(args: argparse.Namespace, services: Any, done: str) -> int:
    delivery = None if args.no_deliver else deliver_now(services)
    if args.json:
        print_json({"badge": args.badge_id, "result": done,
                     "delivery": delivery.as_dict() if delivery else None})
        return 0
    print(f"badge {args.badge_id}: {done}")
    if delivery:
        print_delivery(delivery)
    return 0


def cmd_badges_revoke(args: argparse.Namespace) -> int:
    services = open_services(args)
    return _badge_action(args, services, services.badges.revoke(args.badge_id, args.reason))


def cmd_badges_resend(args: argparse.Namespace) -> int:
    services = open_services(args)
    return _badge_action(args, services, services.badges.resend(args.badge_id))



def register(sub: Any) -> None:
    """Add this module's commands to the top-level subparsers."""
    template = sub.add_parser("template", help="badge templates").add_subparsers(
        dest="template_command", metavar="ACTION", required=True)
    p = template.add_parser("list", help="all templates")
    p.add_argument("--provider", choices=("credly", "accredible"))
    group = p.add_mutually_exclusive_group()
    group.add_argument("--active", dest="active", action="store_const", const=True)
    group.add_argument("--inactive", dest="active", action="store_const", const=False)
    p.add_argument("--search", metavar="TEXT", help="name or external id contains TEXT")
    json_flag(p)
    p.set_defaults(handler=cmd_template_list)
    for name, handler, text in (
        ("activate", cmd_template_activate, "activate (refused without requirements)"),
        ("deactivate", cmd_template_deactivate, "deactivate (issued badges stay)"),
    ):
        p = template.add_parser(name, help=text)
        p.add_argument("id", metavar="ID", help="template id or external id")
        json_flag(p)
        p.set_defaults(handler=handler)
    awards.register_template(template)

    progress = sub.add_parser("progress", help="learner progress").add_subparsers(
        dest="progress_command", metavar="ACTION", required=True)
    p = progress.add_parser("list", help="progress rows")
    p.add_argument("--template", metavar="ID")
    p.add_argument("--learner", metavar="NAME")
    done = p.add_mutually_exclusive_group()
    done.add_argument("--complete", dest="complete", action="store_const", const=True)
    done.add_argument("--incomplete", dest="complete", action="store_const", const=False)
    paging(p)
    json_flag(p)
    p.set_defaults(handler=cmd_progress_list)

    badges = sub.add_parser("badges", help="awarded and revoked badges").add_subparsers(
        dest="badges_command", metavar="ACTION", required=True)
    p = badges.add_parser("list", help="badges")
    p.add_argument("--status", choices=("awarded", "revoked"))
    p.add_argument("--template", metavar="ID")
    p.add_argument("--learner", metavar="NAME")
    p.add_argument("--provider-state", metavar="STATE",
                   choices=PROVIDER_STATES, help=", ".join(PROVIDER_STATES))
    p.add_argument("--failed-only", action="store_true",
                   help="badges whose delivery failed (provider state error or a failed job)")
    p.add_argument("--expiring-within", type=int, metavar="DAYS",
                   help="held badges that expire within DAYS days (or have expired)")
    paging(p)
    json_flag(p)
    p.set_defaults(handler=cmd_badges_list)
    p = badges.add_parser("why", help="the events and rules behind a badge")
    p.add_argument("badge_id", metavar="BADGE_ID", help="badge id or uuid")
    json_flag(p)
    p.set_defaults(handler=cmd_badges_why)
    p = badges.add_parser("revoke", help="revoke an awarded badge, with a reason")
    p.add_argument("badge_id", metavar="BADGE_ID", type=int)
    p.add_argument("--reason", required=True, help="shown to the learner by the provider")
    p.add_argument("--no-deliver", action="store_true", help="leave the provider job queued")
    json_flag(p)
    p.set_defaults(handler=cmd_badges_revoke)
    p = badges.add_parser("resend", help="make sure the provider holds an awarded badge")
    p.add_argument("badge_id", metavar="BADGE_ID", type=int)
    p.add_argument("--no-deliver", action="store_true", help="leave the provider job queued")
    json_flag(p)
    p.set_defaults(handler=cmd_badges_resend)
    awards.register(badges)
