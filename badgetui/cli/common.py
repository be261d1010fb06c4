"""What every command shares: one-line errors, output, settings, services, delivery."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError


class CliError(Exception):
    """A one-line reason to stop with a non-zero exit."""


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """A plain aligned table; the last column is never padded."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    for row in [list(headers), *cells]:
        line = "  ".join(v.ljust(widths[i]) if i < len(row) - 1 else v for i, v in enumerate(row))
        print(line.rstrip())


def cli_settings() -> Any:
    from badgetui.settings import load_settings

    try:
        return load_settings()
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        raise CliError(f"bad setting {where}: {err['msg']}") from None


def open_services(args: argparse.Namespace) -> Any:
    from badgetui.services import Services

    return Services.open(cli_settings())


def template_id(services: Any, ref: str | None) -> int | None:
    return None if ref is None else services.templates.get(ref).id


def deliver_now(services: Any) -> Any:
    import asyncio

    return asyncio.run(services.delivery.run(until_idle=True))


def print_delivery(report: Any) -> None:
    counts = report.as_dict()
    print("delivery: " + ", ".join(f"{k} {counts[k]}" for k in
                                   ("issued", "adopted", "revoked", "retried", "failed",
                                    "cancelled", "unpublished")))
    for reason in report.paused:
        print(f"paused: {reason}", file=sys.stderr)
    for error in report.errors:
        print(f"failed: {error}", file=sys.stderr)
    if report.gave_up:
        print(f"delivery: {report.gave_up} jobs still queued (provider not answering); "
              "run `badgetui deliver` later", file=sys.stderr)


def json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=1000, help="at most this many rows")
    parser.add_argument("--offset", type=int, default=0, help="skip this many rows")


def read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"cannot read {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None

