"""`badgetui events dlq list|show|replay|drop`: the consumer's dead-letter stream
(openedx-events.md §7.2), managed from the command line."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from badgetui.cli.common import (
    CliError,
    deliver_now,
    json_flag,
    open_services,
    paging,
    print_delivery,
    print_json,
    table,
)


@contextmanager
def _errors() -> Iterator[None]:
    """Redis and service failures as one line (the URL is left out: it may hold a password)."""
    import redis

    from badgetui.services.common import ServiceError

    try:
        yield
    except ServiceError as exc:
        raise CliError(str(exc)) from None
    except redis.RedisError as exc:
        raise CliError(f"redis: {exc or type(exc).__name__}") from None


def _open(args: argparse.Namespace) -> tuple[Any, Any]:
    """(services, the dead-letter stream of the bus flags and settings)."""
    from badgetui.services.bus import BusConfig, connect
    from badgetui.services.bus.dlq import DeadLetters

    services = open_services(args)
    try:
        config = BusConfig.from_settings(services.settings, url=args.redis, stream=args.stream)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    client = connect(config.url, block=config.block)
    return services, DeadLetters(client, config, services.intake, services.clock)


def _dash(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def cmd_dlq_list(args: argparse.Namespace) -> int:
    _, letters = _open(args)
    with _errors():
        rows = letters.list(args.limit, args.offset)
        total = letters.count()
    if args.json:
        print_json([r.as_dict() for r in rows])
        return 0
    if not rows:
        print(f"no dead letters in {letters.stream}" + (f" past {args.offset}" if total else ""))
        return 0
    table(
        [(r.id, r.stream_id, r.event_type, r.event_id, r.attempts, r.time, r.size, r.reason)
         for r in rows],
        ["ID", "STREAM ID", "TYPE", "EVENT", "ATTEMPTS", "DEAD-LETTERED", "BYTES", "REASON"],
    )
    if total > args.offset + len(rows):
        print(f"{total - args.offset - len(rows)} more (--offset {args.offset + len(rows)})")
    return 0


def cmd_dlq_show(args: argparse.Namespace) -> int:
    _, letters = _open(args)
    with _errors():
        detail = letters.show(args.id)
    if args.json:
        print_json(detail.as_dict())
        return 0
    letter = detail.letter
    table([
        ("entry", f"{letter.id} in {letters.stream}"),
        ("stream id", _dash(letter.stream_id)),
        ("type", _dash(letter.event_type)),
        ("event id", _dash(letter.event_id)),
        ("reason", _dash(letter.reason)),
        ("attempts", _dash(letter.attempts)),
        ("group", f"{_dash(letter.group)} (consumer {_dash(letter.consumer)})"),
        ("dead-lettered", _dash(letter.time)),
        ("event_data", "missing" if letter.size is None else f"{letter.size} bytes"),
        ("replay", "reads it" if detail.malformed is None
         else f"still malformed: {detail.malformed}"),
    ], ["FIELD", "VALUE"])
    print("fields:")
    for name, value in detail.fields.items():
        print(f"  {name}: {_dash(value)}")
    if detail.payload is not None:
        print("payload:")
        for line in json.dumps(detail.payload, indent=2, ensure_ascii=False,
                               default=str).splitlines():
            print(f"  {line}")
    else:
        print(f"payload: does not decode: {detail.decode_error}")
        if detail.event_data_hex:
            print(f"event_data (hex): {detail.event_data_hex}"
                  + (" …" if letter.size and letter.size * 2 > len(detail.event_data_hex)
                     else ""))
    return 0


def cmd_dlq_replay(args: argparse.Namespace) -> int:
    if bool(args.ids) == bool(args.all):
        args.dlq_parser.error("give the entry ids to replay, or --all (not both)")
    services, letters = _open(args)
    with _errors():
        report = letters.replay(None if args.all else args.ids)
    delivery = None if args.no_deliver else deliver_now(services)
    from badgetui.services.queries import queue_depth

    queued = queue_depth()
    out = report.as_dict()
    if args.json:
        print_json({**out, "queued_jobs": queued,
                    "delivery": delivery.as_dict() if delivery else None})
        return 0
    for entry in report.entries:
        what = entry.reason or ", ".join(
            f"{k} {v}" for k, v in (("awarded", entry.awarded), ("revoked", entry.revoked)) if v)
        print(f"{entry.id}: {entry.outcome}, event {_dash(entry.event_id)} "
              f"({_dash(entry.event_type)})" + (f": {what}" if what else "")
              + ("; removed" if entry.removed else "; kept in the dead-letter stream"))
    counts = ", ".join(f"{k} {out[k]}" for k in (
        "processed", "ignored", "dropped", "duplicate", "rejected", "malformed", "failed",
        "awarded", "revoked"))
    print(f"replayed {out['replayed']} from {letters.stream}: {counts}; "
          f"removed {out['removed']}, kept {out['kept']}")
    if delivery:
        print_delivery(delivery)
    elif queued:
        print(f"delivery: {queued} provider jobs queued (run `badgetui deliver`)")
    return 0


def cmd_dlq_drop(args: argparse.Namespace) -> int:
    _, letters = _open(args)
    with _errors():
        dropped = letters.drop(args.ids)
    if args.json:
        print_json({"dlq_stream": letters.stream, "dropped": len(dropped),
                    "entries": [d.as_dict() for d in dropped]})
        return 0
    for letter in dropped:
        print(f"{letter.id}: dropped, event {_dash(letter.event_id)} "
              f"({_dash(letter.event_type)})")
    print(f"dropped {len(dropped)} from {letters.stream}")
    return 0


def register(events: Any) -> None:
    """Add `dlq` and its actions to the `events` subparsers."""
    from badgetui.cli.events import _bus_flags

    dlq = events.add_parser(
        "dlq", help="the event bus's dead letters: list, show, replay, drop"
    ).add_subparsers(dest="dlq_command", metavar="ACTION", required=True)
    p = dlq.add_parser("list", help="dead-lettered entries, oldest first, with their reasons")
    _bus_flags(p)
    paging(p)
    json_flag(p)
    p.set_defaults(handler=cmd_dlq_list)
    p = dlq.add_parser("show", help="one dead letter: every field and the decoded payload")
    p.add_argument("id", metavar="ID", help="its entry id in the dead-letter stream")
    _bus_flags(p)
    json_flag(p)
    p.set_defaults(handler=cmd_dlq_show)
    p = dlq.add_parser("replay", help="run dead letters through intake again; what it takes "
                                      "leaves the dead-letter stream")
    p.add_argument("ids", metavar="ID", nargs="*", help="entry ids in the dead-letter stream")
    p.add_argument("--all", action="store_true", help="every dead letter, oldest first")
    p.add_argument("--no-deliver", action="store_true", help="leave provider jobs queued")
    _bus_flags(p)
    json_flag(p)
    p.set_defaults(handler=cmd_dlq_replay, dlq_parser=p)
    p = dlq.add_parser("drop", help="delete dead letters without replaying them")
    p.add_argument("ids", metavar="ID", nargs="+", help="entry ids in the dead-letter stream")
    _bus_flags(p)
    json_flag(p)
    p.set_defaults(handler=cmd_dlq_drop)
