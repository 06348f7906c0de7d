"""Run a Pulumi program under mocks and capture everything it would create (:func:`run_program`)."""
from __future__ import annotations

import asyncio
import json
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.config import set_all_config
from pulumi.runtime.settings import SETTINGS
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from cnplatform import gc_tuning, sdk_patches
from cnplatform.testing.capture import Capture, RecordingMonitor, Secret
from cnplatform.testing.mocks import PlatformMocks, secret_placeholder


def flatten_config(raw: dict, secure: dict[str, str], project: str) -> tuple[dict, list[str]]:
    """Pulumi's flat config map: objects JSON-encoded, ``secure:`` values as ``secret::<key>``."""
    flat = {f"{project}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    secret_keys = []
    for key in secure:
        flat[f"{project}:{key}"] = secret_placeholder(key)
        secret_keys.append(f"{project}:{key}")
    return flat, secret_keys


#: Resources the program constructs between two turns of the event loop (:func:`interleaved_registration`).
INTERLEAVE_EVERY = 500
#: Loop iterations one turn runs at most (a turn ends as soon as no callback is ready; this only bounds it).
_TURN_LIMIT = 100_000


def _run_ready_callbacks(loop: asyncio.AbstractEventLoop) -> None:
    """Run the loop until no callback is ready, never waiting (what is blocked on a future stays blocked),
    from inside the task running the program: the reentrant stepping of ``pulumi.runtime.sync_await``."""
    task = asyncio.current_task(loop)
    if task is not None:
        asyncio.tasks._leave_task(loop, task)
    ready = loop._ready  # type: ignore[attr-defined]
    expected = len(ready)  # the calling _run_once pops this many handles after we return
    for _ in range(_TURN_LIMIT):
        if not ready:
            break
        loop._run_once()  # type: ignore[attr-defined]
    while len(ready) < expected:
        handle = asyncio.Handle(lambda: None, [], loop)
        handle._cancelled = True
        ready.append(handle)
    if task is not None:
        asyncio.tasks._enter_task(loop, task)


@contextmanager
def interleaved_registration(every: int = INTERLEAVE_EVERY) -> Iterator[None]:
    """While it is active, every ``every`` resources constructed the event loop runs what is ready.

    A program constructs its resources synchronously; their registrations (inputs awaited and serialised,
    the RegisterResource calls) run on the event loop, which gets control only once the program returns.
    Until then every resource's pending tasks, futures and inputs are alive at once: at 400 services x 3
    clusters that was the run's peak memory (~640 MiB traced, before the first registration), of which a
    resource keeps about half once registered. Letting registrations run as the program goes keeps the
    peak near what stays. Mocks answer at once, so nothing else changes: the same resources, inputs and
    dependencies (only their registration order, ``Registration.seq``, interleaves).
    """
    original = pulumi.Resource.__init__
    count = 0

    def init(self, *args: Any, **kwargs: Any) -> None:
        nonlocal count
        original(self, *args, **kwargs)
        count += 1
        if count % every == 0:
            loop = asyncio.get_event_loop()
            if loop.is_running():
                _run_ready_callbacks(loop)

    pulumi.Resource.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        pulumi.Resource.__init__ = original  # type: ignore[method-assign]


async def _resolve(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        inner = await value.future(with_unknowns=True)
        resolved = await _resolve(inner)
        return Secret(resolved) if await value.is_secret() else resolved
    if isinstance(value, dict):
        return {k: await _resolve(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [await _resolve(v) for v in value]
    if isinstance(value, pulumi.Resource):
        return f"<resource {type(value).__name__}>"
    return value


def run_program(program: Callable[[], dict], *, project: str, stack: str, raw: Optional[dict] = None,
                secure: Optional[dict] = None, config: Any = None,
                stack_references: Optional[dict[str, dict]] = None) -> Capture:
    """Run ``program`` (returns the stack outputs) under mocks and return what it registered.

    ``raw``: the project's config (``pulumi.Config()`` reads it; objects JSON-encoded as Pulumi does);
    ``secure``: secret config keys (their value is the placeholder ``secret::<key>``);
    ``stack_references``: outputs of the stacks the program reads, by stack name (``Secret(...)``
    values are secret outputs). Each run gets its own event loop, so runs are independent.
    """
    raw, secure = raw or {}, secure or {}
    asyncio.set_event_loop(asyncio.new_event_loop())
    sdk_patches.apply()  # as the program's entry point does
    monitor = RecordingMonitor(PlatformMocks(stack_references=stack_references))
    pulumi_mocks.set_mocks(monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor)
    flat, secret_keys = flatten_config(raw, secure, project)
    set_all_config(flat, secret_keys)
    SETTINGS.rpc_manager.clear()
    SETTINGS.outputs.clear()
    result: dict = {}

    def body():
        outputs = program()

        async def collect():
            result.update(await _resolve(outputs))
        return _sync_await(collect())

    with gc_tuning.batch_thresholds(), interleaved_registration():  # thresholds as __main__.py sets them
        _sync_await(run_pulumi_func(body))
    return Capture(project=project, stack=stack, config=config, outputs=result, reads=monitor.reads,
                   resources=sorted(monitor.registrations.values(), key=lambda r: r.urn))


