"""Pulumi entry point: load the typed stack config, compose the platform, export per-cluster outputs."""
import pulumi

from stacks import sdk_patches
from stacks.config import load_stack_config
from stacks.platform import build_platform

sdk_patches.apply()

for name, value in build_platform(load_stack_config()).items():
    pulumi.export(name, value)
