"""Provider accounts, sync, backups, the webhook receiver and the emulator."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from badgetui.cli.common import CliError, json_flag, open_services, print_json, table


def cmd_provider_list(args: argparse.Namespace) -> int:
    services = open_services(args)
    accounts = services.templates.accounts()
    keys = {k.account_id: k for k in services.accounts.key_status()}
    if args.json:
        from dataclasses import asdict

        print_json([
            {**asdict(a),
             "key_expires_at": keys[a.id].expires_at.isoformat() if keys[a.id].expires_at
             else None,
             "key_warning": keys[a.id].warning}
            for a in accounts
        ])
        return 0
    table(
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

    services = open_services(args)
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

        print_json(asdict(view))
    else:
        print(f"added {view.provider} account {view.id}: {view.name} (key {view.api_key})")
    return 0


def cmd_provider_remove(args: argparse.Namespace) -> int:
    services = open_services(args)
    label = services.accounts.remove(args.id, force=args.force)
    print(f"removed {label}")
    return 0


def cmd_provider_resume(args: argparse.Namespace) -> int:
    services = open_services(args)
    print(f"delivery resumed for {services.accounts.resume(args.id)}")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    import asyncio

    services = open_services(args)

    def progress(stage: str, done: int, total: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\r{stage}: {done}/{total}", end="", file=sys.stderr, flush=True)

    results = asyncio.run(services.sync.sync(args.provider, dry_run=args.dry_run,
                                             on_progress=progress))
    if not args.json and sys.stderr.isatty():
        print(file=sys.stderr)
    if args.json:
        print_json([r.as_dict() for r in results])
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
    services = open_services(args)
    rows = services.sync.backups()
    if args.json:
        print_json(rows)
        return 0
    table([(b["id"], b["created_at"], b["provider"], b["account"], len(b["templates"]),
             b["reason"]) for b in rows],
           ["ID", "CREATED", "PROVIDER", "ACCOUNT", "TEMPLATES", "REASON"])
    return 0


def cmd_backup_restore(args: argparse.Namespace) -> int:
    services = open_services(args)
    restored = services.sync.restore_backup(args.id)
    if args.json:
        print_json({"restored": restored})
    else:
        print(f"restored {len(restored)} templates: {', '.join(restored)}")
    return 0


def cmd_webhooks_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from badgetui.services.webhooks import WEBHOOK_PATH, webhook_app

    services = open_services(args)
    print(f"listening on http://{args.host}:{args.port}{WEBHOOK_PATH}", flush=True)
    uvicorn.run(webhook_app(services.webhooks), host=args.host, port=args.port,
                log_level="warning")
    return 0


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from badgetui.sandbox.server import main_serve

    return main_serve(args.seed, args.host, args.port, args.latency_ms, args.error_rate,
                      args.hang_rate)



def register(sub: Any) -> None:
    """Add this module's commands to the top-level subparsers."""
    provider = sub.add_parser("provider", help="provider accounts").add_subparsers(
        dest="provider_command", metavar="ACTION", required=True)
    p = provider.add_parser("add", help="add a Credly organization or Accredible configuration")
    p.add_argument("provider", choices=("credly", "accredible"))
    p.add_argument("--uuid", help="Credly organization UUID")
    p.add_argument("--name", help="Accredible configuration name")
    p.add_argument("--api-key", required=True, help="the provider API key")
    json_flag(p)
    p.set_defaults(handler=cmd_provider_add)
    p = provider.add_parser("list", help="Credly organizations and Accredible configurations")
    json_flag(p)
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
    json_flag(p)
    p.set_defaults(handler=cmd_sync)

    backup = sub.add_parser("backup", help="configuration backups written by sync").add_subparsers(
        dest="backup_command", metavar="ACTION", required=True)
    p = backup.add_parser("list", help="backups, newest first")
    json_flag(p)
    p.set_defaults(handler=cmd_backup_list)
    p = backup.add_parser("restore", help="bring back what a sync removed")
    p.add_argument("id", metavar="ID", type=int)
    json_flag(p)
    p.set_defaults(handler=cmd_backup_restore)

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

