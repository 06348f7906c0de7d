"""Pulumi entry point: load the typed stack config, check it, compose the platform, export its outputs."""
import pulumi

from cnplatform import gc_tuning, sdk_patches
from stacks.program import program

sdk_patches.apply()
gc_tuning.for_batch_program()

for name, value in program().items():
    pulumi.export(name, value)
