"""The SDK fix the program applies: same answers as the SDK's own function, no cyclic garbage."""
from __future__ import annotations

import gc
from pathlib import Path

import pytest
from pulumi.output import Unknown
from pulumi.runtime import rpc

from cnplatform import sdk_patches
from tests.helpers import run_program


def sdk_original():
    """The SDK's own implementation, whether or not the fix is installed in this process."""
    fn = sdk_patches.replaced or rpc.contains_unknowns
    assert sdk_patches.has_recursive_closure(fn), "the pinned SDK no longer has the shape the fix replaces"
    return fn


def self_referencing() -> list:
    loop: list = [1, {"a": "b"}]
    loop.append(loop)
    return loop


CASES = [
    None, 1, "text", [], {}, Unknown(), [Unknown()], {"a": {"b": [1, 2, {"c": Unknown()}]}},
    {"a": {"b": [1, 2, {"c": 3}]}}, [[[]], {"k": [None, "x"]}], {"spec": {"replicas": 3, "ports": [{"port": 80}]}},
    self_referencing(), ({"tuples": "are not walked"}, Unknown()),
]


@pytest.mark.parametrize("value", CASES, ids=range(len(CASES)))
def test_same_answer_as_the_sdk(value):
    assert sdk_patches.contains_unknowns(value) == sdk_original()(value)


def _cyclic_garbage_after(fn, calls: int = 200) -> int:
    value = {"metadata": {"name": "x", "labels": {"a": "b"}}, "spec": {"ports": [{"port": 80}, {"port": 443}]}}
    gc.collect()
    gc.disable()
    try:
        for _ in range(calls):
            fn(value)
        return gc.collect()
    finally:
        gc.enable()


def test_the_sdk_function_leaves_cycles_and_the_fix_does_not():
    assert _cyclic_garbage_after(sdk_original()) >= 200  # one cycle (function + cell + ...) per call
    assert _cyclic_garbage_after(sdk_patches.contains_unknowns) == 0


def test_installed_for_the_program_and_idempotent():
    run_program(lambda: {}, stack="test", raw={})
    assert rpc.contains_unknowns is sdk_patches.contains_unknowns
    assert sdk_patches.apply() is True
    assert rpc.contains_unknowns is sdk_patches.contains_unknowns


def test_a_fixed_sdk_is_left_alone(monkeypatch):
    def upstream_fixed(val):
        return False
    monkeypatch.setattr(rpc, "contains_unknowns", upstream_fixed)
    assert sdk_patches.apply() is False
    assert rpc.contains_unknowns is upstream_fixed


MAIN = Path(__file__).resolve().parent.parent / "__main__.py"


def test_entry_point_applies_it():
    text = MAIN.read_text()
    assert "sdk_patches.apply()" in text and text.index("sdk_patches.apply()") < text.index("program()")


# ------------------------------------------------------------------------------------ GC policy


def test_offline_runs_use_the_batch_thresholds_and_restore_the_previous_ones():
    from cnplatform import gc_tuning

    seen = []
    before = gc.get_threshold()
    run_program(lambda: seen.append(gc.get_threshold()) or {}, stack="test", raw={})
    assert seen == [gc_tuning.BATCH_THRESHOLDS]
    assert gc.get_threshold() == before != gc_tuning.BATCH_THRESHOLDS


def test_entry_point_sets_the_batch_thresholds_before_composing():
    text = MAIN.read_text()
    assert text.index("gc_tuning.for_batch_program()") < text.index("program()")
