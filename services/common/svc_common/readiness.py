"""Readiness checks that answer within the probe's timeout.

A check that hangs (a frozen database answers nothing until the socket read timeout)
must not hang ``/readyz``: each check runs in a daemon thread and the probe waits at most
``timeout`` seconds for all of them. A check still running from an earlier probe is not
started again (one thread per check at most), its eventual result is used when it comes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

#: Default answer time of /readyz; below the platform's readiness probe timeoutSeconds (2).
DEFAULT_TIMEOUT_SECONDS = 1.0


class _Run:
    """One execution of a check in its own thread."""

    def __init__(self, name: str, check: Callable[[], Any]) -> None:
        self.done = threading.Event()
        self.error: str | None = None
        self.thread = threading.Thread(target=self._run, args=(check,), name=f"readyz-{name}", daemon=True)
        self.thread.start()

    def _run(self, check: Callable[[], Any]) -> None:
        try:
            if check() is False:
                self.error = "check returned False"
        except Exception as exc:  # noqa: BLE001 - reported, never raised
            self.error = str(exc) or type(exc).__name__
        finally:
            self.done.set()


class Readiness:
    def __init__(self, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.timeout = timeout
        self._checks: list[tuple[str, Callable[[], Any]]] = []
        self._running: dict[str, _Run] = {}
        self._lock = threading.Lock()

    def add(self, name: str, check: Callable[[], Any]) -> None:
        self._checks.append((name, check))

    def run(self) -> tuple[bool, dict[str, str]]:
        """(all ok, {name: "ok" | "error: ..."}), within ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        runs: dict[str, _Run] = {}
        with self._lock:
            for name, check in self._checks:
                run = self._running.get(name)
                if run is None or run.done.is_set():
                    run = self._running[name] = _Run(name, check)
                runs[name] = run
        results: dict[str, str] = {}
        for name, run in runs.items():
            if not run.done.wait(max(0.0, deadline - time.monotonic())):
                results[name] = f"error: no answer within {self.timeout:g}s"
            else:
                results[name] = "ok" if run.error is None else f"error: {run.error}"
        return all(r == "ok" for r in results.values()), results
