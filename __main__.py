"""Pulumi entry point: load the typed stack config, compose the platform, export per-cluster outputs."""
import pulumi

from stacks.config import load_stack_config
from stacks.platform import build_platform

for name, value in build_platform(load_stack_config()).items():
    pulumi.export(name, value)
