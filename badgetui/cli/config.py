"""Configuration as code: export, import, lint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from badgetui.cli.common import json_flag, open_services, print_json, read_text


def cmd_config_export(args: argparse.Namespace) -> int:
    from badgetui.services.config_io import export_config

    open_services(args)
    text = export_config()
    if args.output and args.output != "-":
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_config_import(args: argparse.Namespace) -> int:
    from badgetui.services.config_io import ConfigImportError

    services = open_services(args)
    text = read_text(args.file)
    try:
        plan = services.config.import_text(text, dry_run=args.dry_run)
    except ConfigImportError as exc:
        if args.json:
            print_json({"applied": False, "problems": exc.problems})
        noun = "problem" if len(exc.problems) == 1 else "problems"
        lines = [f"configuration refused, nothing changed ({len(exc.problems)} {noun}):"]
        lines += [f"  {p}" for p in exc.problems]
        print("\n".join(lines), file=sys.stderr)
        return 1
    if args.json:
        print_json({"applied": plan.applied, "dry_run": args.dry_run, "changes": plan.changes,
                     "warnings": plan.warnings,
                     "impact": [i.as_dict() for i in plan.impacts]})
        return 0
    for warning in plan.warnings:
        print(warning, file=sys.stderr)
    if not plan.changes:
        print("no changes")
        return 0
    print("plan:" if args.dry_run else "applied:")
    for change in plan.changes:
        print(f"  {change}")
    for impact in plan.impacts:
        print(str(impact))
    return 0


def cmd_config_lint(args: argparse.Namespace) -> int:
    from badgetui.services.config_io import parse_config

    services = open_services(args)
    config = parse_config(read_text(args.file)) if args.file else None
    findings = services.config.lint(config)
    if args.json:
        print_json([{"level": f.level, "template": f.template, "message": f.message}
                     for f in findings])
    else:
        for finding in findings:
            print(finding)
        errors = sum(1 for f in findings if f.level == "error")
        print(f"{errors} errors, {len(findings) - errors} warnings")
    return 1 if any(f.level == "error" for f in findings) else 0



def register(sub: Any) -> None:
    """Add this module's commands to the top-level subparsers."""
    config = sub.add_parser("config", help="badge configuration as code").add_subparsers(
        dest="config_command", metavar="ACTION", required=True)
    p = config.add_parser("export", help="write the configuration as JSON")
    p.add_argument("-o", "--output", metavar="FILE")
    p.set_defaults(handler=cmd_config_export)
    p = config.add_parser("import", help="apply a configuration file (all or nothing)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    json_flag(p)
    p.set_defaults(handler=cmd_config_import)
    p = config.add_parser("lint", help="check the stored configuration (or FILE)")
    p.add_argument("file", metavar="FILE", nargs="?")
    json_flag(p)
    p.set_defaults(handler=cmd_config_lint)

