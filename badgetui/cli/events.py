"""Event intake commands: ingest, list, the Redis event bus, and delivery."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
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
from badgetui.domain.events import OUTCOMES


def cmd_events_ingest(args: argparse.Namespace) -> int:
    services = open_services(args)
    name = "stdin" if args.file == "-" else args.file
    from badgetui.services.lines import read_lines  # bounded lines, strict UTF-8

    with ExitStack() as stack:
        if args.file == "-":
            raw = getattr(sys.stdin, "buffer", None)  # None: a text stream put in its place
            stream: Iterable[Any] = sys.stdin if raw is None else read_lines(raw)
        else:
            path = Path(args.file)
            if not path.is_file():
                raise CliError(f"cannot read {args.file}: no such file")
            try:
                stream = read_lines(stack.enter_context(path.open("rb")))
            except OSError as exc:
                raise CliError(f"cannot read {args.file}: {exc.strerror}") from None

        def problem(p: Any) -> None:
            where = f"{name}:{p.line}" if p.line is not None else name
            print(f"{where}: {p.outcome}: {p.reason}", file=sys.stderr)

        report = services.intake.ingest_lines(stream, name, on_problem=problem)
    counts = report.as_dict()
    delivery = None if args.no_deliver else deliver_now(services)
    from badgetui.services.queries import queue_depth

    queued = queue_depth()
    if args.json:
        print_json({**counts, "queued_jobs": queued,
                     "delivery": delivery.as_dict() if delivery else None})
    else:
        print(", ".join(f"{k} {v}" for k, v in counts.items()))
        if delivery:
            print_delivery(delivery)
        elif queued:
            print(f"delivery: {queued} provider jobs queued (run `badgetui deliver`)")
    return 0


def cmd_deliver(args: argparse.Namespace) -> int:
    services = open_services(args)
    if args.retry_failed:
        again = services.delivery.retry_failed()
        if not args.json:
            print(f"requeued {again} failed jobs")
    report = deliver_now(services)
    if args.json:
        print_json(report.as_dict())
    else:
        print_delivery(report)
    return 1 if report.paused else 0


def _bus(args: argparse.Namespace, services: Any, **overrides: Any) -> tuple[Any, Any, Any]:
    """(bus config, Redis client, stop event set by SIGINT/SIGTERM) for the bus commands."""
    import logging
    import signal
    import threading

    from badgetui.services.bus import BusConfig, connect

    try:
        config = BusConfig.from_settings(services.settings, url=args.redis, stream=args.stream,
                                         **overrides)
        client = connect(config.url, block=config.block)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        if stop.is_set():  # asked twice: do not wait for the batch in hand
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    # One line per provider request would drown the consumer's own lines; failures still show.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return config, client, stop


def cmd_events_consume(args: argparse.Namespace) -> int:
    from badgetui.services.bus import BackgroundDelivery, BusConsumer, BusPublisher

    services = open_services(args)
    config, client, stop = _bus(args, services, group=args.group, consumer=args.consumer,
                                start=args.start)
    publisher = None
    if args.publish:
        publisher = BusPublisher(client, config.stream, services.clock, maxlen=config.maxlen)
    try:
        consumer = BusConsumer(services.intake, config, services.clock, client=client,
                               stop=stop, publisher=publisher, drain=args.drain)
    except ValueError as exc:  # a configured type without a schema: refused at start-up
        raise CliError(str(exc)) from None
    print(f"consuming {config.stream} as {config.group}/{config.consumer} "
          f"(dead letters to {config.dlq_stream})", file=sys.stderr, flush=True)
    delivery = BackgroundDelivery(services.delivery) if args.deliver else None
    if delivery:
        delivery.start()
    try:
        stats = consumer.run()
    except ValueError as exc:  # --start group:NAME naming no group of the stream
        raise CliError(str(exc)) from None
    finally:
        if delivery and args.drain and not stop.is_set():
            delivery.finish(services.settings.delivery_stall)
        elif delivery:
            delivery.stop()
    if args.json:
        print_json(stats.as_dict())
    else:
        print(", ".join(f"{k} {v}" for k, v in stats.as_dict().items()))
    return 0


def cmd_events_publish(args: argparse.Namespace) -> int:
    from badgetui.services.bus import BusPublisher

    services = open_services(args)
    config, client, stop = _bus(args, services)
    publisher = BusPublisher(client, config.stream, services.clock, maxlen=config.maxlen)
    count = publisher.publish_pending() if args.once else publisher.run(stop)
    if args.json:
        print_json({"published": count})
    else:
        print(f"published {count} events to {config.stream}")
    return 0


def cmd_events_list(args: argparse.Namespace) -> int:
    from badgetui.services.queries import list_intake

    open_services(args)
    rows = list_intake(outcome=args.outcome, learner=args.learner, limit=args.limit,
                       offset=args.offset)
    if args.json:
        print_json([r.as_dict() for r in rows])
        return 0
    table(
        [(r.id, r.outcome, r.event_id, r.username, r.line, r.reason or r.effects) for r in rows],
        ["ID", "OUTCOME", "EVENT", "LEARNER", "LINE", "REASON / EFFECTS"],
    )
    return 0


def _bus_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", metavar="URL",
                        help="Redis URL, e.g. redis://127.0.0.1:6379/0 (default: setting "
                             "redis_url)")
    parser.add_argument("--stream", metavar="S", help="stream name (default: setting "
                                                      "bus_stream)")



def register(sub: Any) -> None:
    """Add this module's commands to the top-level subparsers."""
    events = sub.add_parser("events", help="event intake").add_subparsers(
        dest="events_command", metavar="ACTION", required=True)
    p = events.add_parser("ingest", help="process a JSON Lines file of events (- for stdin)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--no-deliver", action="store_true", help="leave provider jobs queued")
    json_flag(p)
    p.set_defaults(handler=cmd_events_ingest)
    p = events.add_parser("list", help="the intake log with reasons")
    p.add_argument("--outcome", choices=OUTCOMES)
    p.add_argument("--learner", metavar="NAME")
    paging(p)
    json_flag(p)
    p.set_defaults(handler=cmd_events_list)
    p = events.add_parser("consume", help="consume the Open edX event bus (Redis Streams) until "
                                          "interrupted")
    _bus_flags(p)
    p.add_argument("--group", help="consumer group (default: setting bus_group, badgetui)")
    p.add_argument("--consumer", help="consumer name, unique per process and stable across "
                                      "restarts (default: the host name)")
    p.add_argument("--start", metavar="ID", help="where a brand-new group starts: $ (default), "
                                                 "0 (everything retained), an entry id, or "
                                                 "group:NAME (where another group, e.g. Open "
                                                 "edX Credentials', stands: a take-over)")
    p.add_argument("--publish", action="store_true",
                   help="also publish badge.awarded/revoked events from the outbox")
    p.add_argument("--deliver", action="store_true",
                   help="also run the delivery worker (provider issue/revoke jobs)")
    p.add_argument("--drain", action="store_true",
                   help="stop once the stream is read to its end and no entry waits for a "
                        "retry")
    json_flag(p)
    p.set_defaults(handler=cmd_events_consume)
    p = events.add_parser("publish", help="publish badge.awarded/revoked events from the outbox "
                                          "to the event bus")
    _bus_flags(p)
    p.add_argument("--once", action="store_true",
                   help="publish what is waiting and exit (default: keep polling)")
    json_flag(p)
    p.set_defaults(handler=cmd_events_publish)
    from badgetui.cli import dlq
    dlq.register(events)

    p = sub.add_parser("deliver", help="run queued issue/revoke jobs until none is due")
    p.add_argument("--retry-failed", action="store_true", help="requeue failed jobs first")
    json_flag(p)
    p.set_defaults(handler=cmd_deliver)

