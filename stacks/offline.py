"""The platform program offline: under the library's mocks (``cnplatform.testing``), so the render and
the tests exercise exactly what ``pulumi up`` runs, its config read through ``pulumi.Config``."""
from __future__ import annotations

from typing import Optional

from cnplatform.testing import Capture, run_program
from stacks.config import PROJECT, StackConfig
from stacks.program import program


def run_stack(cfg: StackConfig, *, stack: str, raw: dict, secure: Optional[dict] = None) -> Capture:
    """Run the platform program under mocks with ``raw`` (and ``secure``) as the stack's config.

    ``cfg``: the checked config of ``raw``, kept on the capture for the render's reports."""
    return run_program(program, project=PROJECT, stack=stack, raw=raw, secure=secure, config=cfg)
