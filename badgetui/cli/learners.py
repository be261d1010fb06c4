"""Learners: erase one for GDPR or the Open edX retirement pipeline (`learner retire`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from badgetui.cli.common import json_flag, open_services, print_json


def retire_lines(report: Any) -> list[str]:
    """The report as plain lines; the old username is not repeated (output ends up in logs)."""
    changed = ", ".join(f"{table} {n}" for table, n in report.changed.items() if n)
    if report.status == "already retired":
        head = f"learner is already retired as {report.pseudonym}"
        lines = [f"{head}: nothing to change" if not report.total else
                 f"{head}: {'would erase' if report.dry_run else 'erased'} what was left: "
                 f"{changed}"]
    else:
        verb = "would retire" if report.dry_run else "retired"
        lines = [f"{verb} learner as {report.pseudonym}: {changed}"]
    if report.dry_run:
        lines.append("dry run: nothing written")
    return lines


def cmd_learner_retire(args: argparse.Namespace) -> int:

    services = open_services(args)
    report = services.retire.retire(args.username, dry_run=args.dry_run)
    if args.json:
        print_json(report.as_dict())
        return 0
    print("\n".join(retire_lines(report)))
    if report.pending_issues and report.status == "retired":
        print(f"note: {report.pending_issues} issue deliveries of this learner are still "
              "queued and would reach the provider without an email; revoke those badges or "
              "let them fail", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    """Add this module's commands to the top-level subparsers."""
    learner = sub.add_parser("learner", help="learners").add_subparsers(
        dest="learner_command", metavar="ACTION", required=True)
    p = learner.add_parser(
        "retire", help="erase a learner's username and personal data (GDPR, Open edX "
                       "retirement); progress, badges and history stay, under a pseudonym")
    p.add_argument("username", metavar="USERNAME")
    p.add_argument("--dry-run", action="store_true", help="say what would change, write nothing")
    json_flag(p)
    p.set_defaults(handler=cmd_learner_retire)
