"""`badgetui bulk revoke|resend|retry`: the operator's badge actions over a filter.

A script never acts by accident: without `--yes` (or with `--dry-run`) only the count is
shown. A run goes in chunks, each committed, so a re-run of the same command after a kill
picks up what is left; then the provider jobs are delivered unless `--no-deliver`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from typing import Any

from badgetui.cli.common import (
    CliError,
    deliver_now,
    json_flag,
    open_services,
    print_delivery,
    print_json,
    read_text,
    table,
)
from badgetui.domain.provider_states import PROVIDER_STATES

#: Badges a dry run lists.
PREVIEW = 20

_VERBS = {"revoke": ("revoke", "revoked"), "resend": ("re-send", "re-sent"),
          "retry": ("retry", "retried")}


def moment(text: str) -> datetime:
    """A date (midnight UTC) or an ISO date and time (UTC unless it names its offset)."""
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date (YYYY-MM-DD) or an ISO date and time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def selection(args: argparse.Namespace, action: str) -> Any:
    """The BadgeFilter the options describe."""
    from badgetui.services.bulk_actions import BadgeFilter, parse_learners

    learners = None
    if args.learners is not None:
        learners = parse_learners(read_text(args.learners))
        if not learners:
            raise CliError(f"{args.learners} names no learners (one username a line)")
    chosen = BadgeFilter(
        template=args.template, provider_state=args.provider_state,
        status=getattr(args, "status", None), awarded_before=args.awarded_before,
        awarded_after=args.awarded_after, learners=learners, failed_only=args.failed_only,
    )
    if action == "revoke" and chosen.is_empty():
        raise CliError("bulk revoke needs at least one filter (--template, --provider-state, "
                       "--awarded-before, --awarded-after, --learners, --failed-only)")
    return chosen


class _ProgressLine:
    """`revoke: 500/1200 badges` on stderr: rewritten in place on a terminal, a line per
    chunk otherwise."""

    def __init__(self, action: str) -> None:
        self.action = action
        self.tty = sys.stderr.isatty()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        text = f"{_VERBS[self.action][0]}: {done}/{total} badges"
        if self.tty:
            sys.stderr.write(f"\r{text}")
        else:
            sys.stderr.write(f"{text}\n")
        sys.stderr.flush()
        self.shown = True

    def end(self) -> None:
        if self.tty and self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _dry_run(args: argparse.Namespace, bulk: Any, chosen: Any, action: str,
             count: int) -> int:
    rows = bulk.preview(chosen, action, PREVIEW)
    if args.json:
        print_json({"action": action, "dry_run": True, "count": count,
                    "badges": [r.as_dict() for r in rows]})
        return 0
    print(f"dry run: would {_VERBS[action][0]} {count} badges"
          + (f" (the first {PREVIEW}):" if count > PREVIEW else (":" if rows else "")))
    if rows:
        table([(r.id, r.username, r.external_template_id, r.status, r.provider_state)
               for r in rows], ["ID", "LEARNER", "TEMPLATE", "STATUS", "PROVIDER STATE"])
    return 0


def run(args: argparse.Namespace, action: str) -> int:
    from badgetui.services.bulk_actions import NOT_APPLICABLE, normalize_reason

    chosen = selection(args, action)
    reason = normalize_reason(args.reason) if action == "revoke" else ""
    services = open_services(args)
    bulk = services.bulk
    missing = bulk.missing_learners(chosen)
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        print(f"warning: {len(missing)} of the {len(chosen.learners or ())} learners in "
              f"{args.learners} are not known here: {shown}", file=sys.stderr)
    count = bulk.count(chosen, action)
    if args.dry_run:
        return _dry_run(args, bulk, chosen, action, count)
    if not args.yes:
        raise CliError(f"would {_VERBS[action][0]} {count} badges: re-run with --yes")
    progress = _ProgressLine(action)
    try:
        if action == "revoke":
            report = bulk.revoke(chosen, reason, on_progress=progress)
        else:
            report = getattr(bulk, action)(chosen, on_progress=progress)
    finally:
        progress.end()
    delivery = None if args.no_deliver else deliver_now(services)
    if args.json:
        print_json({**report.as_dict(), "delivery": delivery.as_dict() if delivery else None})
    else:
        skipped = f"{report.skipped} skipped"
        if report.skipped:
            skipped += f" ({NOT_APPLICABLE[action]}, or changed meanwhile)"
        print(f"{_VERBS[action][1]} {report.done} badges, {skipped}, "
              f"{len(report.failed)} failed")
        for line in report.failed:
            print(f"failed: {line}", file=sys.stderr)
        if delivery:
            print_delivery(delivery)
        elif report.done:
            print("provider jobs left queued (run `badgetui deliver`)")
    return 1 if report.failed else 0


def cmd_revoke(args: argparse.Namespace) -> int:
    return run(args, "revoke")


def cmd_resend(args: argparse.Namespace) -> int:
    return run(args, "resend")


def cmd_retry(args: argparse.Namespace) -> int:
    return run(args, "retry")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--template", metavar="ID", help="template id or external id")
    p.add_argument("--provider-state", metavar="STATE", choices=PROVIDER_STATES,
                   help=", ".join(PROVIDER_STATES))
    p.add_argument("--awarded-before", metavar="DATE", type=moment,
                   help="awarded before DATE (YYYY-MM-DD or ISO date and time, UTC)")
    p.add_argument("--awarded-after", metavar="DATE", type=moment,
                   help="awarded at or after DATE (YYYY-MM-DD or ISO date and time, UTC)")
    p.add_argument("--learners", metavar="FILE",
                   help="usernames, one a line (blank lines and # comments ignored; - = stdin)")
    p.add_argument("--failed-only", action="store_true",
                   help="badges whose delivery failed (provider state error or a failed job)")


def _run_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true",
                   help=f"show the count and the first {PREVIEW} badges, change nothing")
    p.add_argument("--yes", action="store_true", help="do it (without: show the count only)")
    p.add_argument("--no-deliver", action="store_true", help="leave the provider jobs queued")
    json_flag(p)


def register(sub: Any) -> None:
    """Add `bulk revoke|resend|retry` to the top-level subparsers."""
    bulk = sub.add_parser("bulk", help="revoke, re-send or retry the badges a filter selects"
                          ).add_subparsers(dest="bulk_command", metavar="ACTION", required=True)
    p = bulk.add_parser("revoke", help="revoke the awarded badges a filter selects")
    _filters(p)
    p.add_argument("--reason", required=True, help="shown to the learners by the provider")
    _run_flags(p)
    p.set_defaults(handler=cmd_revoke)
    p = bulk.add_parser("resend", help="make sure the provider holds the awarded badges a "
                                       "filter selects")
    _filters(p)
    _run_flags(p)
    p.set_defaults(handler=cmd_resend)
    p = bulk.add_parser("retry", help="requeue the failed delivery jobs of the badges a "
                                      "filter selects")
    _filters(p)
    p.add_argument("--status", choices=("awarded", "revoked"))
    _run_flags(p)
    p.set_defaults(handler=cmd_retry)
