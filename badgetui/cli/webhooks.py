"""The Credly webhook receiver: `badgetui webhooks serve`, over HTTP or HTTPS.

Credly only POSTs to an HTTPS endpoint with a valid certificate. Either badgetui terminates TLS
itself (`--tls-cert` and `--tls-key`, handed to uvicorn) or a reverse proxy does and forwards
plain HTTP to a loopback port.
"""

from __future__ import annotations

import argparse
import os
import ssl
from typing import Any

from badgetui.cli.common import CliError, open_services


def _tls_files(cert: str | None, key: str | None) -> tuple[str, str] | None:
    """Both files or neither; each readable, and together a certificate chain with its key,
    so a mistake is one line here instead of a traceback from inside uvicorn."""
    if (cert is None) != (key is None):
        raise CliError("--tls-cert and --tls-key go together: give both or neither")
    if cert is None or key is None:
        return None
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not os.path.isfile(path):
            raise CliError(f"{flag} {path}: no such file")
        if not os.access(path, os.R_OK):
            raise CliError(f"{flag} {path}: not readable")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        raise CliError(f"--tls-cert {cert} / --tls-key {key}: not a usable certificate and "
                       f"key ({reason})") from None
    return cert, key


def cmd_webhooks_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from badgetui.services.webhooks import WEBHOOK_PATH, webhook_app

    tls = _tls_files(args.tls_cert, args.tls_key)
    services = open_services(args)
    scheme = "https" if tls else "http"
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"listening on {scheme}://{host}:{args.port}{WEBHOOK_PATH}", flush=True)
    options: dict[str, Any] = {}
    if tls:
        options = {"ssl_certfile": tls[0], "ssl_keyfile": tls[1]}
    uvicorn.run(webhook_app(services.webhooks), host=args.host, port=args.port,
                log_level="warning", **options)
    return 0


def register(sub: Any) -> None:
    """Add this module's commands to the top-level subparsers."""
    webhooks = sub.add_parser("webhooks", help="Credly webhook receiver").add_subparsers(
        dest="webhooks_command", metavar="ACTION", required=True)
    p = webhooks.add_parser("serve", help="serve POST /badges/credly/webhook/")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--tls-cert", metavar="FILE",
                   help="PEM certificate (chain) to serve HTTPS with; needs --tls-key")
    p.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert")
    p.set_defaults(handler=cmd_webhooks_serve)
