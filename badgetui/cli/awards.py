"""Operator awards (`badges award`, `badges award-csv`), expiry (`badges expiring`, `template
expiry`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from badgetui.cli.common import (
    CliError,
    deliver_now,
    json_flag,
    open_services,
    print_delivery,
    print_json,
    table,
)


def _deliver(args: argparse.Namespace, services: Any, awarded: int) -> Any:
    if args.dry_run or args.no_deliver or not awarded:
        return None
    return deliver_now(services)


def cmd_badges_award(args: argparse.Namespace) -> int:
    from badgetui.services.awards import AwardRow

    services = open_services(args)
    row = AwardRow(args.username, args.template, email=args.email or "", name=args.name or "",
                   evidence=args.evidence or "", expiry=args.expires or "")
    outcome = services.awards.award(row, args.reason, dry_run=args.dry_run)
    delivery = _deliver(args, services, 1)
    if args.json:
        print_json({"outcome": outcome.outcome, "badge": outcome.badge_id,
                    "detail": outcome.detail,
                    "delivery": delivery.as_dict() if delivery else None})
        return 0
    what = f"badge {outcome.badge_id}" if outcome.badge_id else "would award"
    print(f"{what}: {args.username} / {args.template}"
          + (f" ({outcome.detail})" if outcome.detail else ""))
    if delivery:
        print_delivery(delivery)
    return 0


def cmd_badges_award_csv(args: argparse.Namespace) -> int:
    from badgetui.services.awards import read_award_file

    services = open_services(args)
    path = Path(args.file)
    try:
        text = sys.stdin.read() if args.file == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {args.file}: {getattr(exc, 'strerror', None) or exc}"
                       ) from None
    name = "stdin" if args.file == "-" else args.file

    def bad_row(outcome: Any) -> None:
        if outcome.outcome == "rejected":
            print(f"{name}:{outcome.line}: rejected: {outcome.detail}", file=sys.stderr)

    def progressed(done: int) -> None:
        if not args.json:
            print(f"… {done:,} rows", file=sys.stderr, flush=True)

    report = services.awards.award_file(read_award_file(text), args.reason, source=name,
                                        dry_run=args.dry_run, on_row=bad_row,
                                        on_progress=progressed)
    delivery = _deliver(args, services, report.counts["awarded"])
    if args.json:
        data = report.as_dict()
        data["delivery"] = delivery.as_dict() if delivery else None
        print_json(data)
        return 0
    if args.dry_run:
        for outcome in report.rows[:50]:
            if outcome.outcome != "rejected":
                print(outcome)
        if len(report.rows) > 50:
            print(f"… {len(report.rows) - 50:,} more rows")
    print(", ".join(f"{k} {v:,}" for k, v in sorted(report.counts.items())) or "no rows")
    if delivery:
        print_delivery(delivery)
    return 0


def cmd_badges_expiring(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from badgetui.services.queries import list_badges

    services = open_services(args)
    before = services.clock() + timedelta(days=args.days)
    rows = list_badges(expiring_before=before, limit=args.limit)
    if args.json:
        print_json([r.as_dict() for r in rows])
        return 0
    if not rows:
        print(f"no held badge expires within {args.days} days")
        return 0
    table([(r.id, r.username, r.provider, r.template, r.expires_at, r.provider_state)
           for r in rows], ["ID", "LEARNER", "PROVIDER", "TEMPLATE", "EXPIRES", "PROVIDER STATE"])
    return 0


def cmd_template_expiry(args: argparse.Namespace) -> int:
    services = open_services(args)
    days = None if args.never else args.days
    if days is None and not args.never:
        raise CliError("give --days N or --never")
    tpl = services.templates.set_expiry(args.id, days, args.reaward)
    data = {"template": tpl.id, "expires_in_days": tpl.expires_in_days,
            "reaward_on_expiry": tpl.reaward_on_expiry}
    if args.json:
        print_json(data)
    else:
        life = f"{tpl.expires_in_days} days" if tpl.expires_in_days else "never"
        print(f"template {tpl.id} ({tpl.name}): awards expire after {life}"
              + ("; expired awards are awarded again" if tpl.reaward_on_expiry else ""))
    return 0


def register_template(template: Any) -> None:
    """Add `expiry` to the `template` command group."""
    p = template.add_parser("expiry", help="the default lifetime of the template's awards")
    p.add_argument("id", metavar="ID", help="template id or external id")
    life = p.add_mutually_exclusive_group()
    life.add_argument("--days", type=int, metavar="N", help="awards expire N days after award")
    life.add_argument("--never", action="store_true", help="awards never expire")
    again = p.add_mutually_exclusive_group()
    again.add_argument("--reaward", dest="reaward", action="store_const", const=True,
                       help="award again when an award expires")
    again.add_argument("--no-reaward", dest="reaward", action="store_const", const=False)
    json_flag(p)
    p.set_defaults(handler=cmd_template_expiry)


def register(badges: Any) -> None:
    """Add `award` and `award-csv` to the `badges` command group."""
    p = badges.add_parser("award", help="award a template to a learner by hand, with a reason")
    p.add_argument("username", metavar="USERNAME")
    p.add_argument("--template", required=True, metavar="ID",
                   help="local id, Credly template id or Accredible group id")
    p.add_argument("--reason", required=True, help="kept in the badge's why")
    p.add_argument("--email", help="the learner's email (needed for a learner not seen yet)")
    p.add_argument("--name", help="the learner's name")
    p.add_argument("--evidence", help="a URL or text sent with the badge as evidence")
    p.add_argument("--expires", metavar="DATE", help="expiry (YYYY-MM-DD or an ISO time); "
                                                     "default: the template's")
    p.add_argument("--dry-run", action="store_true", help="check and say, award nothing")
    p.add_argument("--no-deliver", action="store_true", help="leave the issue queued")
    json_flag(p)
    p.set_defaults(handler=cmd_badges_award)
    p = badges.add_parser("award-csv", help="award from a CSV file (username, email, name, "
                                            "template, evidence, expiry)")
    p.add_argument("file", metavar="FILE", help="CSV with a header line (- for stdin)")
    p.add_argument("--reason", required=True, help="kept in every badge's why")
    p.add_argument("--dry-run", action="store_true",
                   help="the preview: what each row would do, nothing written")
    p.add_argument("--no-deliver", action="store_true", help="leave the issues queued")
    json_flag(p)
    p.set_defaults(handler=cmd_badges_award_csv)
    p = badges.add_parser("expiring", help="held badges that expire within N days")
    p.add_argument("--days", type=int, default=30, metavar="N", help="default 30")
    p.add_argument("--limit", type=int, default=1000)
    json_flag(p)
    p.set_defaults(handler=cmd_badges_expiring)
