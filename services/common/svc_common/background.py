"""Periodic background work (e.g. the order service's reconciler), stopped with the app."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("svc_common.background")


def run_periodically(name: str, interval: float, fn: Callable[[], object], stop: threading.Event) -> threading.Thread:
    """Call ``fn`` every ``interval`` seconds until ``stop`` is set; an exception is logged and
    the next round runs as planned."""
    def _loop() -> None:
        while not stop.wait(interval):
            try:
                fn()
            except Exception:  # noqa: BLE001 - a failed round must not end the loop
                log.exception("background task failed", extra={"task": name})

    thread = threading.Thread(target=_loop, name=name, daemon=True)
    thread.start()
    return thread
