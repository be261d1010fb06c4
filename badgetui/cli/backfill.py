"""`badgetui backfill --template ID`: replay the intake log against a template, preview first."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from badgetui.cli.common import (
    CliError,
    deliver_now,
    json_flag,
    open_services,
    print_delivery,
    print_json,
)

SHOWN = 20


def cmd_backfill(args: argparse.Namespace) -> int:
    from badgetui.domain.rules import as_moment

    since = None
    if args.since:
        since = as_moment(args.since)
        if since is None:
            raise CliError(f"--since {args.since!r} is not a date (YYYY-MM-DD or ISO time)")
    services = open_services(args)

    def progressed(done: int, total: int) -> None:
        if not args.json:
            print(f"… {done:,} of {total:,} events", file=sys.stderr, flush=True)

    report = services.backfill.run(args.template, since=since, dry_run=args.dry_run,
                                   on_progress=progressed)
    delivery = None
    if not args.dry_run and not args.no_deliver and (report.awarded or report.revoked):
        delivery = deliver_now(services)
    data = report.as_dict()
    if args.json:
        data["delivery"] = delivery.as_dict() if delivery else None
        print_json(data)
        return 0
    head = "preview (dry run: nothing written)" if args.dry_run else "backfilled"
    resumed = f", resumed after intake id {report.resumed_after}" if report.resumed_after else ""
    print(f"{head}: template {report.template_id} ({report.template}), {report.events:,} "
          f"recorded events up to intake id {report.until_id}{resumed} "
          f"({data['events_per_second']:,} events/s)")
    for key, label in (("progressed", "would gain progress" if args.dry_run else "gained "
                        "progress"), ("awarded", "would complete and be awarded"
                                      if args.dry_run else "completed and were awarded"),
                       ("revoked", "would be revoked" if args.dry_run else "were revoked")):
        names = report.learners.get(key, [])
        count = report.counts.get(key, 0)
        more = f" … {count - SHOWN:,} more" if count > SHOWN else ""
        print(f"  {count:,} {label}" + (f": {', '.join(names[:SHOWN])}{more}" if names else ""))
    if delivery:
        print_delivery(delivery)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("backfill", help="replay recorded events against a template (newly "
                                        "activated or changed), with a preview")
    p.add_argument("--template", required=True, metavar="ID",
                   help="template id or external id")
    p.add_argument("--since", metavar="DATE", help="only events that happened from DATE on")
    p.add_argument("--dry-run", action="store_true",
                   help="preview: who would gain progress, be awarded or be revoked")
    p.add_argument("--no-deliver", action="store_true", help="leave provider jobs queued")
    json_flag(p)
    p.set_defaults(handler=cmd_backfill)
