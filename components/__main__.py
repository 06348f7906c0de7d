"""Pulumi plugin entry point: serve cnplatform's components to every Pulumi language.

Pulumi runs this file when the plugin directory ``components/`` is used as a package
(``pulumi package add <repo>/components``, see ``PulumiPlugin.yaml``); an installed library runs
the same provider as ``python -m cnplatform``. It speaks the provider gRPC protocol: GetSchema
(inferred from the components' annotations, see :mod:`cnplatform.provider`) and Construct.

The plugin's virtualenv (``components/.venv``) gets the library's dependencies from
``requirements.txt`` but not the library itself: its source is ``components/cnplatform`` (the src
layout), so this folder on ``sys.path`` is all it takes, whatever directory Pulumi starts it from.
"""
import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from cnplatform.provider import main

    main()
