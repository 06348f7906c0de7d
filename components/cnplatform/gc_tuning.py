"""Garbage-collector thresholds for the program: a batch job that builds one large object graph.

The program registers every resource at once and the SDK keeps each one (its Outputs, futures and
tasks) until the deployment ends, so the heap only grows. CPython's default policy re-walks that whole
graph in a full collection each time it grows by a quarter: at 400 services x 3 clusters that was a
third of the run time, growing faster than the program (the render scale turned super-linear), and
it found almost nothing to free once ``sdk_patches`` removed the SDK's per-call cycles. A large young
generation still collects short-lived cycles; full collections become rare. Measured with
benchmarks/render_scale.py: 400 x 3 in 29 s instead of 45 s, peak memory lower, not higher.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

#: (young generation, young collections per middle one, middle collections per full one).
BATCH_THRESHOLDS = (100_000, 50, 100)


def for_batch_program() -> None:
    """Set the batch thresholds for the rest of the process (``__main__.py``: the process ends with the run)."""
    gc.set_threshold(*BATCH_THRESHOLDS)


@contextmanager
def batch_thresholds() -> Iterator[None]:
    """The batch thresholds for one run, then the previous ones (the offline runner, in long test sessions)."""
    previous = gc.get_threshold()
    gc.set_threshold(*BATCH_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
