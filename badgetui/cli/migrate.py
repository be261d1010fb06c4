"""`badgetui migrate credentials`: take over a site's badges from Open edX Credentials."""

from __future__ import annotations

import argparse
from typing import Any

from badgetui.cli.common import json_flag, open_services, print_json


def cmd_migrate_credentials(args: argparse.Namespace) -> int:
    from badgetui.services.migrate import MigrationOptions
    from badgetui.services.migrate.report import report_lines

    services = open_services(args)
    options = MigrationOptions(site=args.site, keep_early_awards=args.keep_early_awards,
                               keep_unawarded_revocations=args.keep_unawarded_revocations,
                               rule_less=args.rule_less)
    report = services.migrate.migrate_credentials(args.source, options, dry_run=args.dry_run)
    data = report.as_dict()
    if args.json:
        print_json(data)
        return 0
    for line in report_lines(data):
        print(line)
    return 0


def register(sub: Any) -> None:
    migrate = sub.add_parser("migrate", help="take over from another badge system")
    kinds = migrate.add_subparsers(dest="migrate_command", metavar="SOURCE", required=True)
    p = kinds.add_parser(
        "credentials", help="import an Open edX Credentials badges database (read-only)",
        description="Imports accounts, templates with requirements, rules and penalties, "
                    "learners, progress and badges from an Open edX Credentials database, in "
                    "one transaction; a second run changes nothing. The source is only read.")
    p.add_argument("--from", dest="source", required=True, metavar="URL",
                   help="mysql://user:pass@host:3306/credentials or sqlite:///path")
    p.add_argument("--site", type=int, metavar="ID",
                   help="the Django site whose templates to import (needed when several)")
    p.add_argument("--dry-run", action="store_true", help="show the plan, write nothing")
    early = p.add_mutually_exclusive_group()
    early.add_argument("--keep-early-awards", dest="keep_early_awards", action="store_true",
                       default=True, help="keep badges awarded with progress incomplete "
                                          "(default: never revoke a learner's badge silently)")
    early.add_argument("--revoke-early-awards", dest="keep_early_awards",
                       action="store_false", help="revoke them, at the provider too")
    p.add_argument("--keep-unawarded-revocations", action="store_true",
                   help="import revoked credentials of learners who never held the badge")
    p.add_argument("--rule-less", choices=("match-any", "inactive"), default="match-any",
                   help="templates with rule-less requirements or penalties (never matching "
                        "in Credentials' code): import as documented (match-any, default) or "
                        "keep them inactive for review")
    json_flag(p)
    p.set_defaults(handler=cmd_migrate_credentials)
