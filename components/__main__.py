"""Pulumi plugin entry point: serve cnplatform's components to every Pulumi language.

Pulumi runs this file when the plugin directory ``components/`` is used as a package
(``pulumi package add <repo>/components``, see ``PulumiPlugin.yaml``); an installed library runs
it as ``python -m cnplatform``. It speaks the provider gRPC protocol: GetSchema (inferred from the
components' annotations, see :mod:`cnplatform.provider`) and Construct.
"""
import importlib.util
import os
import sys


def _import_library() -> None:
    """Make ``cnplatform`` importable when running from a source checkout.

    The plugin's virtualenv (``components/.venv``) gets the library's dependencies from
    ``requirements.txt`` but not the library itself; its source is this folder, whose import
    name is ``cnplatform`` (the same ``package-dir`` mapping pyproject.toml declares). This folder
    itself must not be on ``sys.path``: ``mesh``, ``registry``, ``provider``... would shadow
    top-level modules of the same names.
    """
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == here:
        del sys.path[0]
    if "cnplatform" in sys.modules or importlib.util.find_spec("cnplatform") is not None:
        return
    spec = importlib.util.spec_from_file_location(
        "cnplatform", os.path.join(here, "__init__.py"), submodule_search_locations=[here])
    module = importlib.util.module_from_spec(spec)
    sys.modules["cnplatform"] = module
    spec.loader.exec_module(module)


if __name__ == "__main__":
    _import_library()
    from cnplatform.provider import main

    main()
