"""Delivery beside a consumer, in a thread of its own."""

from __future__ import annotations

import asyncio
import threading
import time

from badgetui.services.bus.config import DB_TRANSIENT, close_quietly, log
from badgetui.services.delivery import DeliveryService


class BackgroundDelivery:
    """The delivery worker in a thread of its own (its own event loop and database
    connection), so provider latency never slows the stream down."""

    def __init__(self, delivery: DeliveryService) -> None:
        self.delivery = delivery
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._main, name="badgetui-delivery",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self, timeout: float) -> None:
        """Wait (up to `timeout` s) for the queue to empty, then stop."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._thread.is_alive():
            try:
                if self.delivery.pending() == 0:
                    break
            except DB_TRANSIENT:
                close_quietly()
            time.sleep(0.2)
        self.stop()

    def stop(self, timeout: float = 30.0) -> None:
        self._halt.set()
        self._thread.join(timeout)

    def _main(self) -> None:
        try:
            while not self._halt.is_set():
                try:
                    asyncio.run(self._run())
                except Exception:
                    log.exception("delivery worker failed; restarting in 5 s")
                    close_quietly()
                    self._halt.wait(5.0)
        finally:
            close_quietly()

    async def _run(self) -> None:
        await self.delivery.run(until_idle=False, stop=self._halt)
