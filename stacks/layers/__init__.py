"""Platform layers: each module has deploy(ctx) and is listed in stacks.platform.LAYERS."""
