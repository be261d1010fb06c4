"""Headless command line (formats.md "Command line").

Every command prints records as text or, with `--json`, as JSON; failures exit non-zero with one
line on stderr. Commands only call services: no SQL and no HTTP here. One module per area
registers its subcommands; this one builds the parser and runs the chosen handler.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from badgetui import __version__
from badgetui.cli import (
    backfill,
    bulk,
    config,
    events,
    learners,
    migrate,
    providers,
    records,
    webhooks,
)
from badgetui.cli.common import CliError, cli_settings

__all__ = ["CliError", "build_parser", "main"]


def cmd_demo(args: argparse.Namespace) -> int:
    from badgetui.demo import run_demo

    return run_demo()


def cmd_tui(args: argparse.Namespace) -> int:
    from badgetui.tui.app import make_app

    make_app(cli_settings()).run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="badgetui", description="Run Open edX digital badges on Credly and Accredible."
    )
    parser.add_argument("--version", action="version", version=f"badgetui {__version__}")
    parser.set_defaults(handler=cmd_tui)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("demo", help="the console on a fresh database with the emulator and "
                                    "simulated learners")
    p.set_defaults(handler=cmd_demo)

    for module in (events, config, providers, records, webhooks, migrate, backfill, bulk,
                   learners):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from badgetui.services.common import ServiceError
    from badgetui.store.database import SchemaError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (CliError, ServiceError, SchemaError) as exc:
        print(f"badgetui: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("badgetui: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a last line of defence: one line, no traceback
        if os.environ.get("BADGETUI_DEBUG"):
            raise
        print(f"badgetui: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
