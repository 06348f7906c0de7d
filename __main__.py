"""Pulumi entry point: load the typed stack config, compose the platform, export per-cluster outputs."""
import pulumi

from cnplatform import gc_tuning, sdk_patches
from stacks.config import load_stack_config
from stacks.platform import build_platform

sdk_patches.apply()
gc_tuning.for_batch_program()

for name, value in build_platform(load_stack_config()).items():
    pulumi.export(name, value)
