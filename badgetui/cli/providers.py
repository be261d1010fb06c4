"""Provider accounts, sync, backups and the emulator (the webhook receiver: `cli.webhooks`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from badgetui.cli.common import (
    CliError,
    deliver_now,
    json_flag,
    open_services,
    print_delivery,
    print_json,
    table,
)

API_KEY_ENV = "BADGETUI_API_KEY"
CLIENT_SECRET_ENV = "BADGETUI_CLIENT_SECRET"


def read_secret(what: str, value: str | None, path: str | None, env: str, flag: str) -> str:
    """A secret from its option, a file, the environment or a no-echo prompt, in that order.

    Why: a secret on the command line shows in the process list and the shell history, so
    the file, the variable and the prompt (only on a terminal) are the ways to prefer; with
    none of them the error names every option in one line.
    """
    import getpass
    import os

    if value:
        return value.strip()
    if path:
        from badgetui.cli.common import read_text

        secret = read_text(path).strip()
        if not secret:
            raise CliError(f"{path} holds no {what}")
        return secret
    if os.environ.get(env, "").strip():
        return os.environ[env].strip()
    if sys.stdin is not None and sys.stdin.isatty():
        secret = getpass.getpass(f"{what} (not shown): ").strip()
        if secret:
            return secret
    raise CliError(f"no {what}: use {flag}-file FILE, set {env}, or run in a terminal to be "
                   f"asked ({flag} also works, but shows it in the process list)")


def _auth(a: Any) -> str:
    return f"oauth {a.client_id} {a.client_secret}" if a.auth == "oauth" else "api key"


def cmd_provider_list(args: argparse.Namespace) -> int:
    from badgetui.services.accounts import base_label

    services = open_services(args)
    accounts = services.templates.accounts()
    keys = {k.account_id: k for k in services.accounts.key_status()}
    if args.json:
        from dataclasses import asdict

        print_json([
            {**asdict(a),
             "base": base_label(a.api_url),
             "key_expires_at": keys[a.id].expires_at.isoformat() if keys[a.id].expires_at
             else None,
             "key_expiry_assumed": keys[a.id].assumed,
             "key_warning": keys[a.id].warning}
            for a in accounts
        ])
        return 0

    def expiry(a: Any) -> str:
        status = keys[a.id]
        if not status.expires_at:
            return "-"
        return f"{status.expires_at:%Y-%m-%d}" + (" (assumed)" if status.assumed else "")

    table(
        [(a.id, a.provider, a.identifier, a.name, _auth(a), a.api_key or "-", expiry(a),
          base_label(a.api_url), a.last_sync_at or "never",
          "delivery paused" if a.paused_reason else a.last_sync_result)
         for a in accounts],
        ["ID", "PROVIDER", "IDENTIFIER", "NAME", "AUTH", "KEY", "KEY EXPIRES", "BASE",
         "LAST SYNC", "STATUS"],
    )
    for status in keys.values():
        if status.warning:
            print(f"warning: {status.warning}", file=sys.stderr)
    return 0


def cmd_provider_add(args: argparse.Namespace) -> int:
    import asyncio

    from badgetui.services.accounts import region_url

    services = open_services(args)
    api_url = region_url(args.provider, args.region, args.api_url)
    if args.provider == "credly":
        if not args.uuid:
            raise CliError("a Credly organization needs --uuid")
        client_id = (args.client_id or "").strip()
        secret = ""
        if client_id:
            secret = read_secret("OAuth client secret", args.client_secret,
                                 args.client_secret_file, CLIENT_SECRET_ENV, "--client-secret")
        elif args.client_secret or args.client_secret_file:
            raise CliError("a client secret needs its --client-id")
        # With OAuth the key is optional: only an explicit one (option or file) is used.
        key = (args.api_key or "").strip() if client_id else ""
        if client_id and args.api_key_file:
            key = read_secret("API key", None, args.api_key_file, API_KEY_ENV, "--api-key")
        if not client_id:
            key = read_secret("API key", args.api_key, args.api_key_file, API_KEY_ENV,
                              "--api-key")
        view = asyncio.run(services.accounts.add_credly(
            args.uuid, key, client_id=client_id, client_secret=secret, api_url=api_url))
    else:
        if not args.name:
            raise CliError("an Accredible configuration needs --name")
        if args.client_id or args.client_secret or args.client_secret_file:
            raise CliError("OAuth client credentials are Credly's; Accredible uses an API key")
        key = read_secret("API key", args.api_key, args.api_key_file, API_KEY_ENV, "--api-key")
        view = asyncio.run(services.accounts.add_accredible(args.name, key, api_url=api_url))
    if args.json:
        from dataclasses import asdict

        print_json(asdict(view))
    else:
        auth = (f"OAuth client {view.client_id}, secret {view.client_secret}"
                if view.auth == "oauth" else f"key {view.api_key}")
        where = f", base {view.api_url}" if view.api_url else ""
        print(f"added {view.provider} account {view.id}: {view.name} ({auth}{where})")
    return 0


def cmd_provider_rotate(args: argparse.Namespace) -> int:
    """Rotate a Credly key through the API, or replace any key with one issued by hand."""
    import asyncio

    services = open_services(args)
    was_paused = bool(services.templates.account(args.id).paused_reason)
    if args.api_key or args.api_key_file or args.replace:
        key = read_secret("API key", args.api_key, args.api_key_file, API_KEY_ENV, "--api-key")
        view = asyncio.run(services.accounts.update_key(args.id, key))
        status = next(k for k in services.accounts.key_status() if k.account_id == view.id)
        expires, assumed = status.expires_at, status.assumed
        what = "replaced"
    else:
        rotation = asyncio.run(services.accounts.rotate(args.id))
        view, expires, assumed = rotation.view, rotation.expires_at, rotation.assumed
        what = "rotated"
    if args.json:
        from dataclasses import asdict

        print_json({**asdict(view), "key_expires_at": expires.isoformat() if expires else None,
                    "key_expiry_assumed": assumed})
        return 0
    until = "no expiry listed" if expires is None else f"expires {expires:%Y-%m-%d}" + (
        " (assumed: 180 days, Credly listed no expiry)" if assumed else "")
    print(f"{what} the API key of {view.provider} {view.name}: now {view.api_key}, {until}"
          + ("; delivery resumed" if was_paused else ""))
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


def cmd_reconcile(args: argparse.Namespace) -> int:
    import asyncio

    services = open_services(args)

    def progress(done: int, total: int) -> None:
        if not args.json and sys.stderr.isatty():
            print(f"\rtemplates: {done}/{total}", end="", file=sys.stderr, flush=True)

    report = asyncio.run(services.reconcile.reconcile(
        args.provider, dry_run=args.dry_run, all_templates=args.all, on_progress=progress))
    if not args.json and sys.stderr.isatty():
        print(file=sys.stderr)
    delivery = None
    if report.fixed and not args.no_deliver:
        delivery = deliver_now(services)
    if args.json:
        body = report.as_dict()
        body["delivery"] = delivery.as_dict() if delivery is not None else None
        print_json(body)
    else:
        if report.drifts:
            table([(d.kind, d.account, d.template, d.badge_id or "", d.username or "",
                    d.external_id or "", d.here, d.there, d.action) for d in report.drifts],
                  ["DRIFT", "ACCOUNT", "TEMPLATE", "BADGE", "LEARNER", "EXTERNAL ID", "HERE",
                   "THERE", "ACTION"])
        print(report.summary() + (" (dry run: nothing changed)" if args.dry_run else ""))
        if delivery is not None:
            print_delivery(delivery)
    for error in report.errors:
        print(f"failed: {error}", file=sys.stderr)
    return 1 if report.errors else 0


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


def cmd_sandbox_serve(args: argparse.Namespace) -> int:
    from badgetui.sandbox.server import main_serve

    return main_serve(args.seed, args.host, args.port, args.latency_ms, args.error_rate,
                      args.hang_rate)



def _key_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--api-key", help=f"the API key (prefer --api-key-file, {API_KEY_ENV} or "
                   "the prompt: an option shows in the process list)")
    p.add_argument("--api-key-file", metavar="FILE", help="read the API key from FILE (- stdin)")


def register(sub: Any) -> None:
    """Add this module's commands to the top-level subparsers."""
    provider = sub.add_parser("provider", help="provider accounts").add_subparsers(
        dest="provider_command", metavar="ACTION", required=True)
    p = provider.add_parser("add", help="add a Credly organization or Accredible configuration")
    p.add_argument("provider", choices=("credly", "accredible"))
    p.add_argument("--uuid", help="Credly organization UUID")
    p.add_argument("--name", help="Accredible configuration name")
    _key_options(p)
    p.add_argument("--client-id", help="Credly OAuth 2.0 client id (used instead of a key)")
    p.add_argument("--client-secret", help="its secret (prefer --client-secret-file, "
                   f"{CLIENT_SECRET_ENV} or the prompt)")
    p.add_argument("--client-secret-file", metavar="FILE", help="read the client secret here")
    p.add_argument("--region", choices=("us", "eu"), help="Accredible region (US or EU API)")
    p.add_argument("--api-url", metavar="URL",
                   help="this account's API base (a sandbox, the emulator); default: settings")
    json_flag(p)
    p.set_defaults(handler=cmd_provider_add)
    p = provider.add_parser("rotate", help="rotate a Credly key, or replace a key by hand")
    p.add_argument("id", metavar="ID", help="account id, organization UUID or name")
    _key_options(p)
    p.add_argument("--replace", action="store_true",
                   help=f"replace with a key issued by hand (from {API_KEY_ENV} or the prompt)")
    json_flag(p)
    p.set_defaults(handler=cmd_provider_rotate)
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

    p = sub.add_parser("reconcile", help="compare the provider's badges with badgetui's and "
                       "fix the drift (missing, revoked or expired there, unpublished, stuck)")
    p.add_argument("--provider", metavar="ID", help="one account (id, organization or name)")
    p.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    p.add_argument("--all", action="store_true",
                   help="every synced template, not only active ones and those with badges")
    p.add_argument("--no-deliver", action="store_true", help="leave the queued fixes queued")
    json_flag(p)
    p.set_defaults(handler=cmd_reconcile)
    backup = sub.add_parser("backup", help="configuration backups written by sync").add_subparsers(
        dest="backup_command", metavar="ACTION", required=True)
    p = backup.add_parser("list", help="backups, newest first")
    json_flag(p)
    p.set_defaults(handler=cmd_backup_list)
    p = backup.add_parser("restore", help="bring back what a sync removed")
    p.add_argument("id", metavar="ID", type=int)
    json_flag(p)
    p.set_defaults(handler=cmd_backup_restore)

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

