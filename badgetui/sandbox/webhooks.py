"""Credly webhook delivery: POST the small event notice, retry with backoff until a 200."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx

from badgetui.sandbox.clock import SandboxClock, iso_ms


class WebhookSender:
    """Fires deliveries in the background from any thread and records every attempt.

    Runs on the caller's event loop when there is one, else on the server's loop, else on a
    short-lived thread of its own, so in-process and uvicorn use both work.
    """

    def __init__(self, options: dict[str, Any], clock: SandboxClock,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.options = options
        self.clock = clock
        self.transport = transport
        self.server_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._deliveries: list[dict[str, Any]] = []
        self._pending = 0
        self._generation = 0
        self._tasks: set[asyncio.Future[None]] = set()

    def deliveries(self) -> list[dict[str, Any]]:
        """Every delivery so far: event, url, attempts (status or error), delivered."""
        with self._lock:
            return [{**d, "attempts": [dict(a) for a in d["attempts"]]}
                    for d in self._deliveries]

    def pending(self) -> int:
        with self._lock:
            return self._pending

    def reset(self) -> None:
        """Forget deliveries; ones still retrying stop at their next attempt."""
        with self._lock:
            self._deliveries = []
            self._generation += 1

    def fire(self, url: str, payload: dict[str, Any]) -> None:
        """Start delivering `payload` to `url` without waiting for it."""
        with self._lock:
            record: dict[str, Any] = {"event_id": payload.get("id"),
                                      "event_type": payload.get("event_type"), "url": url,
                                      "payload": dict(payload), "attempts": [],
                                      "delivered": False}
            self._deliveries.append(record)
            self._pending += 1
            generation = self._generation
        coroutine = self._deliver(record, generation)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            task = loop.create_task(coroutine)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif self.server_loop is not None and self.server_loop.is_running():
            asyncio.run_coroutine_threadsafe(coroutine, self.server_loop)
        else:
            threading.Thread(target=asyncio.run, args=(coroutine,), daemon=True,
                             name="sandbox-webhook").start()

    async def _deliver(self, record: dict[str, Any], generation: int) -> None:
        try:
            delays = list(self.options["webhook_retry_delays"])
            for attempt in range(len(delays) + 1):
                if generation != self._generation:
                    return
                status, error = await self._post(record["url"], record["payload"])
                lenient = bool(self.options["webhook_lenient"])
                ok = status == 200 or (lenient and status is not None and 200 <= status < 300)
                with self._lock:
                    record["attempts"].append({"status": status, "error": error,
                                               "at": iso_ms(self.clock.now())})
                    record["delivered"] = ok
                if ok or attempt == len(delays):
                    return
                await asyncio.sleep(delays[attempt])
        finally:
            with self._lock:
                self._pending -= 1

    async def _post(self, url: str, payload: dict[str, Any]) -> tuple[int | None, str | None]:
        timeout = float(self.options["webhook_timeout_s"])
        request = httpx.Request("POST", url, json=payload,
                                headers={"User-Agent": "badgetui-sandbox-credly-webhooks"})
        try:
            if self.transport is not None:
                response = await asyncio.wait_for(
                    self.transport.handle_async_request(request), timeout)
                await response.aread()
                await response.aclose()
                return response.status_code, None
            async with httpx.AsyncClient(timeout=timeout) as client:
                return (await client.send(request)).status_code, None
        except (httpx.HTTPError, OSError, TimeoutError) as error:
            return None, f"{type(error).__name__}: {error}"
