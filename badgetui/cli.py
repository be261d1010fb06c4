"""Headless command line (formats.md "Command line").

Every command prints records as text or, with `--json`, as JSON; failures exit non-zero with one
line on stderr. Commands only call services: no SQL and no HTTP here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from badgetui import __version__
from badgetui.domain.events import OUTCOMES

Handler = Callable[[argparse.Namespace], int]


class CliError(Exception):
    """A one-line reason to stop with a non-zero exit."""


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """A plain aligned table; the last column is never padded."""
    cells = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    for row in [list(headers), *cells]:
        line = "  ".join(v.ljust(widths[i]) if i < len(row) - 1 else v for i, v in enumerate(row))
        print(line.rstrip())


def _settings() -> Any:
    from badgetui.settings import load_settings

    try:
        return load_settings()
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        raise CliError(f"bad setting {where}: {err['msg']}") from None


def _services(args: argparse.Namespace) -> Any:
    from badgetui.services import Services

    return Services.open(_settings())


def _template_id(services: Any, ref: str | None) -> int | None:
    return None if ref is None else services.templates.get(ref).id


# -- events ----------------------------------------------------------------------------------
def cmd_events_ingest(args: argparse.Namespace) -> int:
    services = _services(args)
    name = "stdin" if args.file == "-" else args.file
    with ExitStack() as stack:
        if args.file == "-":
            stream: Iterable[str] = sys.stdin
        else:
            path = Path(args.file)
            if not path.is_file():
                raise CliError(f"cannot read {args.file}: no such file")
            try:
                stream = stack.enter_context(path.open(encoding="utf-8", errors="replace"))
            except OSError as exc:
                raise CliError(f"cannot read {args.file}: {exc.strerror}") from None

        def problem(p: Any) -> None:
            where = f"{name}:{p.line}" if p.line is not None else name
            print(f"{where}: {p.outcome}: {p.reason}", file=sys.stderr)

        report = services.intake.ingest_lines(stream, name, on_problem=problem)
    counts = report.as_dict()
    delivery = None if args.no_deliver else _deliver(services)
    from badgetui.services.queries import queue_depth

    queued = queue_depth()
    if args.json:
        _print_json({**counts, "queued_jobs": queued,
                     "delivery": delivery.as_dict() if delivery else None})
    else:
        print(", ".join(f"{k} {v}" for k, v in counts.items()))
        if delivery:
            _print_delivery(delivery)
        elif queued:
            print(f"delivery: {queued} provider jobs queued (run `badgetui deliver`)")
    return 0


def _deliver(services: Any) -> Any:
    import asyncio

    return asyncio.run(services.delivery.run(until_idle=True))


def _print_delivery(report: Any) -> None:
    counts = report.as_dict()
    print("delivery: " + ", ".join(f"{k} {counts[k]}" for k in
                                   ("issued", "adopted", "revoked", "retried", "failed",
                                    "cancelled")))
    for reason in report.paused:
        print(f"paused: {reason}", file=sys.stderr)
    for error in report.errors:
        print(f"failed: {error}", file=sys.stderr)
    if report.gave_up:
        print(f"delivery: {report.gave_up} jobs still queued (provider not answering); "
              "run `badgetui deliver` later", file=sys.stderr)


def cmd_deliver(args: argparse.Namespace) -> int:
    services = _services(args)
    if args.retry_failed:
        again = services.delivery.retry_failed()
        if not args.json:
            print(f"requeued {again} failed jobs")
    report = _deliver(services)
    if args.json:
        _print_json(report.as_dict())
    else:
        _print_delivery(report)
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

    services = _services(args)
    config, client, stop = _bus(args, services, group=args.group, consumer=args.consumer,
                                start=args.start)
    publisher = None
    if args.publish:
        publisher = BusPublisher(client, config.stream, services.clock, maxlen=config.maxlen)
    consumer = BusConsumer(services.intake, config, services.clock, client=client, stop=stop,
                           publisher=publisher, drain=args.drain)
    print(f"consuming {config.stream} as {config.group}/{config.consumer} "
          f"(dead letters to {config.dlq_stream})", file=sys.stderr, flush=True)
    delivery = BackgroundDelivery(services.delivery) if args.deliver else None
    if delivery:
        delivery.start()
    try:
        stats = consumer.run()
    finally:
        if delivery and args.drain and not stop.is_set():
            delivery.finish(services.settings.delivery_stall)
        elif delivery:
            delivery.stop()
    if args.json:
        _print_json(stats.as_dict())
    else:
        print(", ".join(f"{k} {v}" for k, v in stats.as_dict().items()))
    return 0


def cmd_events_publish(args: argparse.Namespace) -> int:
    from badgetui.services.bus import BusPublisher

    services = _services(args)
    config, client, stop = _bus(args, services)
    publisher = BusPublisher(client, config.stream, services.clock, maxlen=config.maxlen)
    count = publisher.publish_pending() if args.once else publisher.run(stop)
    if args.json:
        _print_json({"published": count})
    else:
        print(f"published {count} events to {config.stream}")
    return 0


def cmd_events_list(args: argparse.Namespace) -> int:
    from badgetui.services.queries import list_intake

    _services(args)
    rows = list_intake(outcome=args.outcome, learner=args.learner, limit=args.limit,
                       offset=args.offset)
    if args.json:
        _print_json([r.as_dict() for r in rows])
        return 0
    _table(
        [(r.id, r.outcome, r.event_id, r.username, r.line, r.reason or r.effects) for r in rows],
        ["ID", "OUTCOME", "EVENT", "LEARNER", "LINE", "REASON / EFFECTS"],
    )
    return 0


# -- config ----------------------------------------------------------------------------------
def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"cannot read {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from None


def cmd_config_export(args: argparse.Namespace) -> int:
    from badgetui.services.config_io import export_config

    _services(args)
    text = export_config()
    if args.output and args.output != "-":
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_config_import(args: argparse.Namespace) -> int:
    from badgetui.services.config_io import ConfigImportError

    services = _services(args)
    text = _read_text(args.file)
    try:
        plan = services.config.import_text(text, dry_run=args.dry_run)
    except ConfigImportError as exc:
        if args.json:
            _print_json({"applied": False, "problems": exc.problems})
        noun = "problem" if len(exc.problems) == 1 else "problems"
        lines = [f"configuration refused, nothing changed ({len(exc.problems)} {noun}):"]
        lines += [f"  {p}" for p in exc.problems]
        print("\n".join(lines), file=sys.stderr)
        return 1
    if args.json:
        _print_json({"applied": plan.applied, "dry_run": args.dry_run, "changes": plan.changes,
                     "warnings": plan.warnings})
        return 0
    for warning in plan.warnings:
        print(warning, file=sys.stderr)
    if not plan.changes:
        print("no changes")
        return 0
    print("plan:" if args.dry_run else "applied:")
    for change in plan.changes:
        print(f"  {change}")
    return 0


def cmd_config_lint(args: argparse.Namespace) -> int:
    from badgetui.services.config_io import parse_config

    services = _services(args)
    config = parse_config(_read_text(args.file)) if args.file else None
    findings = services.config.lint(config)
    if args.json:
        _print_json([{"level": f.level, "template": f.template, "message": f.message}
                     for f in findings])
    else:
        for finding in findings:
            print(finding)
        errors = sum(1 for f in findings if f.level == "error")
        print(f"{errors} errors, {len(findings) - errors} warnings")
    return 1 if any(f.level == "error" for f in findings) else 0


# -- providers and templates -----------------------------------------------------------------
def cmd_provider_list(args: argparse.Namespace) -> int:
    services = _services(args)
    accounts = services.templates.accounts()
    keys = {k.account_id: k for k in services.accounts.key_status()}
    if args.json:
        from dataclasses import asdict

        _print_json([
            {**asdict(a),
             "key_expires_at": keys[a.id].expires_at.isoformat() if keys[a.id].expires_at
             else None,
             "key_warning": keys[a.id].warning}
            for a in accounts
        ])
        return 0
    _table(
        [(a.id, a.provider, a.identifier, a.name, a.api_key,
          f"{keys[a.id].expires_at:%Y-%m-%d}" if keys[a.id].expires_at else "-",
          a.last_sync_at or "never",
          "delivery paused" if a.paused_reason else a.last_sync_result)
         for a in accounts],
        ["ID", "PROVIDER", "IDENTIFIER", "NAME", "KEY", "KEY EXPIRES", "LAST SYNC", "STATUS"],
    )
    for status in keys.values():
        if status.warning:
            print(f"warning: {status.warning}", file=sys.stderr)
    return 0


def cmd_provider_add(args: argparse.Namespace) -> int:
    import asyncio

    services = _services(args)
    if args.provider == "credly":
        if not args.uuid:
            raise CliError("a Credly organization needs --uuid")
        view = asyncio.run(services.accounts.add_credly(args.uuid, args.api_key))
    else:
        if not args.name:
            raise CliError("an Accredible configuration needs --name")
        view = asyncio.run(services.accounts.add_accredible(args.name, args.api_key))
    if args.json:
        from dataclasses import asdict

        _print_json(asdict(view))
    else:
        print(f"added {view.provider} account {view.id}: {view.name} (key {view.api_key})")
    return 0


def cmd_provider_remove(args: argparse.Namespace) -> int:
    services = _services(args)
    label = services.accounts.remove(args.id, force=args.force)
    print(f"removed {label}")
    return 0


def cmd_provider_resume(args: argparse.Namespace) -> int:
    services = _services(args)
    print(f"delivery resumed for {services.accounts.resume(args.id)}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    import asyncio

    services = _services(args)

    def progress(stage: str, done: int, total: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r{stage}: {done}/{total}", end="", file=sys.stderr, flush=True)

    results = asyncio.run(services.sync.sync(args.provider, dry_run=args.dry_run,
                                             on_progress=progress))
    if not args.json and sys.stderr.isatty():
        print(file=sys.stderr)
    if args.json:
        _print_json([r.as_dict() for r in results])
    else:
        for result in results:
            if result.error:
                print(f"{result.plan.provider} {result.plan.account}: failed: {result.error}")
                continue
            for line in result.plan.lines():
                print(line)
            if result.backup_id:
                print(f"  backup {result.backup_id} written before removing "
                      f"(badgetui backup restore {result.backup_id})")
            if args.dry_run:
                print("  (dry run: nothing changed)")
    return 1 if any(r.error for r in results) else 0


def cmd_backup_list(args: argparse.Namespace) -> int:
    services = _services(args)
    rows = services.sync.backups()
    if args.json:
        _print_json(rows)
        return 0
    _table([(b["id"], b["created_at"], b["provider"], b["account"], len(b["templates"]),
             b["reason"]) for b in rows],
           ["ID", "CREATED", "PROVIDER", "ACCOUNT", "TEMPLATES", "REASON"])
    return 0


def cmd_backup_restore(args: argparse.Namespace) -> int:
    services = _services(args)
    restored = services.sync.restore_backup(args.id)
    if args.json:
        _print_json({"restored": restored})
    else:
        print(f"restored {len(restored)} templates: {', '.join(restored)}")
    return 0


def cmd_webhooks_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from badgetui.services.webhooks import WEBHOOK_PATH, webhook_app

    services = _services(args)
    print(f"listening on http://{args.host}:{args.port}{WEBHOOK_PATH}", flush=True)
    uvicorn.run(webhook_app(services.webhooks), host=args.host, port=args.port,
                log_level="warning")
    return 0


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from badgetui.sandbox.server import main_serve

    return main_serve(args.seed, args.host, args.port, args.latency_ms, args.error_rate,
                      args.hang_rate)


def cmd_template_list(args: argparse.Namespace) -> int:
    services = _services(args)
    rows = services.templates.list(provider=args.provider, active=args.active, text=args.search)
    if args.json:
        _print_json([r.as_dict() for r in rows])
        return 0
    _table(
        [
            (r.id, r.provider, r.external_id, "yes" if r.active else "no",
             "stale" if r.stale else ("deleted" if r.deleted else r.state),
             r.requirements, r.awarded, r.name)
            for r in rows
        ],
        ["ID", "PROVIDER", "EXTERNAL ID", "ACTIVE", "STATE", "REQS", "AWARDED", "NAME"],
    )
    return 0


def _set_active(args: argparse.Namespace, active: bool) -> int:
    services = _services(args)
    view = services.templates.set_active(args.id, active)
    if args.json:
        _print_json(view.as_dict())
    else:
        print(f"template {view.id} ({view.name}) is {'active' if view.active else 'inactive'}")
    return 0


def cmd_template_activate(args: argparse.Namespace) -> int:
    return _set_active(args, True)


def cmd_template_deactivate(args: argparse.Namespace) -> int:
    return _set_active(args, False)


# -- progress and badges ---------------------------------------------------------------------
def cmd_progress_list(args: argparse.Namespace) -> int:
    from badgetui.services.queries import list_progress

    services = _services(args)
    rows = list_progress(template=_template_id(services, args.template), learner=args.learner,
                         complete=args.complete, limit=args.limit, offset=args.offset)
    if args.json:
        _print_json([r.as_dict() for r in rows])
        return 0
    _table(
        [(r.username, r.template_id, f"{r.fulfilled_groups}/{r.total_groups}",
          "yes" if r.holds_badge else "no", ", ".join(r.fulfilled), r.template)
         for r in rows],
        ["LEARNER", "TEMPLATE", "GROUPS", "BADGE", "FULFILLED", "NAME"],
    )
    return 0


def cmd_badges_list(args: argparse.Namespace) -> int:
    from badgetui.services.queries import list_badges

    services = _services(args)
    rows = list_badges(status=args.status, template=_template_id(services, args.template),
                       learner=args.learner, provider_state=args.provider_state,
                       failed_only=args.failed_only, limit=args.limit, offset=args.offset)
    if args.json:
        _print_json([r.as_dict() for r in rows])
        return 0
    _table(
        [(r.id, r.username, r.provider, r.external_template_id, r.status, r.provider_state,
          r.external_id or "", r.last_error)
         for r in rows],
        ["ID", "LEARNER", "PROVIDER", "TEMPLATE", "STATUS", "PROVIDER STATE", "EXTERNAL ID",
         "LAST ERROR"],
    )
    return 0


def cmd_badges_why(args: argparse.Namespace) -> int:
    from badgetui.services.queries import why, why_lines

    _services(args)
    data = why(args.badge_id)
    if args.json:
        _print_json(data)
    else:
        print("\n".join(why_lines(data)))
    return 0


def _badge_action(args: argparse.Namespace, services: Any, done: str) -> int:
    delivery = None if args.no_deliver else _deliver(services)
    if args.json:
        _print_json({"badge": args.badge_id, "result": done,
                     "delivery": delivery.as_dict() if delivery else None})
        return 0
    print(f"badge {args.badge_id}: {done}")
    if delivery:
        _print_delivery(delivery)
    return 0


def cmd_badges_revoke(args: argparse.Namespace) -> int:
    services = _services(args)
    return _badge_action(args, services, services.badges.revoke(args.badge_id, args.reason))


def cmd_badges_resend(args: argparse.Namespace) -> int:
    services = _services(args)
    return _badge_action(args, services, services.badges.resend(args.badge_id))


def cmd_demo(args: argparse.Namespace) -> int:
    from badgetui.demo import run_demo

    return run_demo()


def cmd_tui(args: argparse.Namespace) -> int:
    from badgetui.tui.app import make_app

    make_app(_settings()).run()
    return 0


# -- parser ----------------------------------------------------------------------------------
def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=1000, help="at most this many rows")
    parser.add_argument("--offset", type=int, default=0, help="skip this many rows")


def _bus_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--redis", metavar="URL",
                        help="Redis URL, e.g. redis://127.0.0.1:6379/0 (default: setting "
                             "redis_url)")
    parser.add_argument("--stream", metavar="S", help="stream name (default: setting "
                                                      "bus_stream)")


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

    events = sub.add_parser("events", help="event intake").add_subparsers(
        dest="events_command", metavar="ACTION", required=True)
    p = events.add_parser("ingest", help="process a JSON Lines file of events (- for stdin)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--no-deliver", action="store_true", help="leave provider jobs queued")
    _json_flag(p)
    p.set_defaults(handler=cmd_events_ingest)
    p = events.add_parser("list", help="the intake log with reasons")
    p.add_argument("--outcome", choices=OUTCOMES)
    p.add_argument("--learner", metavar="NAME")
    _paging(p)
    _json_flag(p)
    p.set_defaults(handler=cmd_events_list)
    p = events.add_parser("consume", help="consume the Open edX event bus (Redis Streams) until "
                                          "interrupted")
    _bus_flags(p)
    p.add_argument("--group", help="consumer group (default: setting bus_group, badgetui)")
    p.add_argument("--consumer", help="consumer name, unique per process and stable across "
                                      "restarts (default: the host name)")
    p.add_argument("--start", metavar="ID", help="where a brand-new group starts: $ (default), "
                                                 "0 (everything retained) or an entry id")
    p.add_argument("--publish", action="store_true",
                   help="also publish badge.awarded/revoked events from the outbox")
    p.add_argument("--deliver", action="store_true",
                   help="also run the delivery worker (provider issue/revoke jobs)")
    p.add_argument("--drain", action="store_true",
                   help="stop once the stream is read to its end and no entry waits for a "
                        "retry")
    _json_flag(p)
    p.set_defaults(handler=cmd_events_consume)
    p = events.add_parser("publish", help="publish badge.awarded/revoked events from the outbox "
                                          "to the event bus")
    _bus_flags(p)
    p.add_argument("--once", action="store_true",
                   help="publish what is waiting and exit (default: keep polling)")
    _json_flag(p)
    p.set_defaults(handler=cmd_events_publish)

    config = sub.add_parser("config", help="badge configuration as code").add_subparsers(
        dest="config_command", metavar="ACTION", required=True)
    p = config.add_parser("export", help="write the configuration as JSON")
    p.add_argument("-o", "--output", metavar="FILE")
    p.set_defaults(handler=cmd_config_export)
    p = config.add_parser("import", help="apply a configuration file (all or nothing)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    _json_flag(p)
    p.set_defaults(handler=cmd_config_import)
    p = config.add_parser("lint", help="check the stored configuration (or FILE)")
    p.add_argument("file", metavar="FILE", nargs="?")
    _json_flag(p)
    p.set_defaults(handler=cmd_config_lint)

    provider = sub.add_parser("provider", help="provider accounts").add_subparsers(
        dest="provider_command", metavar="ACTION", required=True)
    p = provider.add_parser("add", help="add a Credly organization or Accredible configuration")
    p.add_argument("provider", choices=("credly", "accredible"))
    p.add_argument("--uuid", help="Credly organization UUID")
    p.add_argument("--name", help="Accredible configuration name")
    p.add_argument("--api-key", required=True, help="the provider API key")
    _json_flag(p)
    p.set_defaults(handler=cmd_provider_add)
    p = provider.add_parser("list", help="Credly organizations and Accredible configurations")
    _json_flag(p)
    p.set_defaults(handler=cmd_provider_list)
    p = provider.add_parser("remove", help="remove an account and its templates")
    p.add_argument("id", metavar="ID", help="account id, organization UUID or name")
    p.add_argument("--force", action="store_true", help="even when it holds awarded badges")
    p.set_defaults(handler=cmd_provider_remove)
    p = provider.add_parser("resume", help="resume delivery paused after an auth error")
    p.add_argument("id", metavar="ID")
    p.set_defaults(handler=cmd_provider_resume)

    p = sub.add_parser("sync", help="pull templates (Credly) or groups (Accredible)")
    p.add_argument("--provider", metavar="ID", help="one account (id, UUID or name)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    _json_flag(p)
    p.set_defaults(handler=cmd_sync)

    backup = sub.add_parser("backup", help="configuration backups written by sync").add_subparsers(
        dest="backup_command", metavar="ACTION", required=True)
    p = backup.add_parser("list", help="backups, newest first")
    _json_flag(p)
    p.set_defaults(handler=cmd_backup_list)
    p = backup.add_parser("restore", help="bring back what a sync removed")
    p.add_argument("id", metavar="ID", type=int)
    _json_flag(p)
    p.set_defaults(handler=cmd_backup_restore)

    p = sub.add_parser("deliver", help="run queued issue/revoke jobs until none is due")
    p.add_argument("--retry-failed", action="store_true", help="requeue failed jobs first")
    _json_flag(p)
    p.set_defaults(handler=cmd_deliver)

    webhooks = sub.add_parser("webhooks", help="Credly webhook receiver").add_subparsers(
        dest="webhooks_command", metavar="ACTION", required=True)
    p = webhooks.add_parser("serve", help="serve POST /badges/credly/webhook/")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.set_defaults(handler=cmd_webhooks_serve)

    sandbox = sub.add_parser("sandbox", help="the Credly + Accredible emulator").add_subparsers(
        dest="sandbox_command", metavar="ACTION", required=True)
    p = sandbox.add_parser("serve", help="serve the emulator on loopback")
    p.add_argument("--seed", metavar="FILE")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency-ms", type=int, default=0)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--hang-rate", type=float, default=0.0)
    p.set_defaults(handler=cmd_sandbox_serve)

    template = sub.add_parser("template", help="badge templates").add_subparsers(
        dest="template_command", metavar="ACTION", required=True)
    p = template.add_parser("list", help="all templates")
    p.add_argument("--provider", choices=("credly", "accredible"))
    group = p.add_mutually_exclusive_group()
    group.add_argument("--active", dest="active", action="store_const", const=True)
    group.add_argument("--inactive", dest="active", action="store_const", const=False)
    p.add_argument("--search", metavar="TEXT", help="name or external id contains TEXT")
    _json_flag(p)
    p.set_defaults(handler=cmd_template_list)
    for name, handler, text in (
        ("activate", cmd_template_activate, "activate (refused without requirements)"),
        ("deactivate", cmd_template_deactivate, "deactivate (issued badges stay)"),
    ):
        p = template.add_parser(name, help=text)
        p.add_argument("id", metavar="ID", help="template id or external id")
        _json_flag(p)
        p.set_defaults(handler=handler)

    progress = sub.add_parser("progress", help="learner progress").add_subparsers(
        dest="progress_command", metavar="ACTION", required=True)
    p = progress.add_parser("list", help="progress rows")
    p.add_argument("--template", metavar="ID")
    p.add_argument("--learner", metavar="NAME")
    done = p.add_mutually_exclusive_group()
    done.add_argument("--complete", dest="complete", action="store_const", const=True)
    done.add_argument("--incomplete", dest="complete", action="store_const", const=False)
    _paging(p)
    _json_flag(p)
    p.set_defaults(handler=cmd_progress_list)

    badges = sub.add_parser("badges", help="awarded and revoked badges").add_subparsers(
        dest="badges_command", metavar="ACTION", required=True)
    p = badges.add_parser("list", help="badges")
    p.add_argument("--status", choices=("awarded", "revoked"))
    p.add_argument("--template", metavar="ID")
    p.add_argument("--learner", metavar="NAME")
    p.add_argument("--provider-state", metavar="STATE",
                   help="created, pending, accepted, rejected, revoked, expired, error, cancelled")
    p.add_argument("--failed-only", action="store_true",
                   help="badges whose delivery failed (provider state error or a failed job)")
    _paging(p)
    _json_flag(p)
    p.set_defaults(handler=cmd_badges_list)
    p = badges.add_parser("why", help="the events and rules behind a badge")
    p.add_argument("badge_id", metavar="BADGE_ID", help="badge id or uuid")
    _json_flag(p)
    p.set_defaults(handler=cmd_badges_why)
    p = badges.add_parser("revoke", help="revoke an awarded badge, with a reason")
    p.add_argument("badge_id", metavar="BADGE_ID", type=int)
    p.add_argument("--reason", required=True, help="shown to the learner by the provider")
    p.add_argument("--no-deliver", action="store_true", help="leave the provider job queued")
    _json_flag(p)
    p.set_defaults(handler=cmd_badges_revoke)
    p = badges.add_parser("resend", help="make sure the provider holds an awarded badge")
    p.add_argument("badge_id", metavar="BADGE_ID", type=int)
    p.add_argument("--no-deliver", action="store_true", help="leave the provider job queued")
    _json_flag(p)
    p.set_defaults(handler=cmd_badges_resend)
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
