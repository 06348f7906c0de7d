import asyncio

import pytest

from tests.helpers import capture_stack, render_to


@pytest.fixture(autouse=True)
def _fresh_event_loop():
    """Each offline run gets its own event loop (the Pulumi SDK caches one per thread)."""
    asyncio.set_event_loop(asyncio.new_event_loop())
    yield


@pytest.fixture(scope="session")
def rendered(tmp_path_factory):
    """Render of each stack, made once per session: rendered("dev") -> Path."""
    cache = {}

    def get(stack: str):
        if stack not in cache:
            asyncio.set_event_loop(asyncio.new_event_loop())
            cache[stack] = render_to(capture_stack(stack), tmp_path_factory.mktemp(f"render-{stack}"))
        return cache[stack]
    return get
