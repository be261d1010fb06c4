"""Running the emulator over real HTTP: blocking `serve`, `start_in_thread`, `main_serve`."""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator

import uvicorn

from badgetui.sandbox.emulator import Emulator
from badgetui.sandbox.seed import demo_seed, load_seed

HANG_SECONDS = 3600.0
_GRACE_SECONDS = 2


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on the first address of `host` (port 0 picks a free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(128)
    sock.setblocking(False)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Server(uvicorn.Server):
    """uvicorn with a readiness callback, hanging requests released at shutdown, and signal
    handling that returns instead of re-raising the signal after a graceful stop."""

    def __init__(self, config: uvicorn.Config, emulator: Emulator,
                 on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._emulator = emulator
        self._on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self._on_started is not None:
            self._on_started()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._emulator.faults.release_hangs()
        await super().shutdown(sockets=sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)


def _server(emulator: Emulator, on_started: Callable[[], None] | None) -> _Server:
    config = uvicorn.Config(emulator.app, log_level="warning", access_log=False,
                            lifespan="on", timeout_graceful_shutdown=_GRACE_SECONDS)
    return _Server(config, emulator, on_started)


def serve(emulator: Emulator, host: str = "127.0.0.1", port: int = 0, *,
          on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM; `on_ready("http://HOST:PORT")` once listening."""
    sock = _bind(host, port)
    url = _url(sock)
    server = _server(emulator, (lambda: on_ready(url)) if on_ready else None)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def start_in_thread(emulator: Emulator,
                    host: str = "127.0.0.1") -> tuple[str, Callable[[], None]]:
    """Serve on a free port from a daemon thread; returns (base_url, stop) once listening."""
    sock = _bind(host, 0)
    started = threading.Event()
    server = _server(emulator, started.set)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="badgetui-sandbox")
    thread.start()
    if not started.wait(timeout=10):
        server.should_exit = True
        raise RuntimeError("the sandbox server did not start")

    def stop() -> None:
        server.should_exit = True
        emulator.faults.release_hangs()
        thread.join(timeout=_GRACE_SECONDS + 5)
        sock.close()

    return _url(sock), stop


def main_serve(seed: str | None, host: str, port: int, latency_ms: int, error_rate: float,
               hang_rate: float) -> int:
    """`badgetui sandbox serve`: first stdout line `listening on http://HOST:PORT`."""
    try:
        emulator = Emulator(load_seed(seed) if seed else demo_seed())
        rule: dict[str, object] = {}
        if latency_ms:
            rule["latency_ms"] = latency_ms
        if error_rate:
            rule.update(rate_429=error_rate / 2, retry_after=1, rate_5xx=error_rate / 2,
                        statuses=[500])
        if hang_rate:
            rule.update(rate_hang=hang_rate, hang_s=HANG_SECONDS)
        emulator.set_faults({"*": rule} if rule else {})
    except (OSError, ValueError) as error:
        print(f"sandbox: {error}", file=sys.stderr)
        return 2

    def ready(url: str) -> None:
        print(f"listening on {url}", flush=True)

    try:
        serve(emulator, host, port, on_ready=ready)
    except OSError as error:
        print(f"sandbox: {error}", file=sys.stderr)
        return 1
    return 0
