"""Run a Pulumi program under mocks and capture everything it would create (:func:`run_program`)."""
from __future__ import annotations

import asyncio
import json
from typing import Any, Callable, Optional

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

    with gc_tuning.batch_thresholds():  # as __main__.py sets them
        _sync_await(run_pulumi_func(body))
    return Capture(project=project, stack=stack, config=config, outputs=result, reads=monitor.reads,
                   resources=sorted(monitor.registrations.values(), key=lambda r: r.urn))


