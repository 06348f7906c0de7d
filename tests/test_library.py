"""The library as a consumer installs it: `pip install <repo>` gives `cnplatform` and nothing else.

Offline and fast: the wheel is built from a copy of the sources with the PEP 517 backend itself
(setuptools, no build isolation, no network). The real fresh-venv `pip install .` + the consumer
example's tests run in `make test-consumer` (part of `make test`).
"""
import ast
import email.parser
import importlib.metadata
import json
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
import tomllib

import cnplatform
from tests.helpers import ROOT

PLUGIN_DIR = ROOT / "components"
#: src layout: the library's folder is named like the package.
COMPONENTS = PLUGIN_DIR / "cnplatform"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: Never runtime dependencies of the library (test, validation and program-only tools).
NOT_RUNTIME = {"pytest", "pytest-xdist", "checkov", "parliament", "kubernetes-validate", "jsonschema", "yamllint",
               "pulumi-policy", "prometheus-client", "pymysql", "pydantic", "setuptools", "check-jsonschema"}
EXTRAS_PACKAGES = {"pulumi_aws": "aws", "pulumi_gcp": "gcp", "pulumi_docker": "images"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(req: str) -> str:
    return normalize(re.split(r"[\s<>=!~;\[(]", req.strip(), maxsplit=1)[0])


def source_files() -> list:
    return sorted(p for p in COMPONENTS.rglob("*")
                  if p.is_file() and ".venv" not in p.parts and "__pycache__" not in p.parts)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """Build the wheel from a copy of what a checkout holds (no stale build/ dir, no network)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(PLUGIN_DIR, src / "components", ignore=shutil.ignore_patterns(".venv", "__pycache__"))
    out = tmp_path_factory.mktemp("dist")
    setuptools_version = importlib.metadata.version("setuptools")
    required = PROJECT["build-system"]["requires"]
    assert int(setuptools_version.split(".")[0]) >= 77, (
        f"setuptools {setuptools_version} in the venv; pyproject needs {required}: run make venv")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from setuptools import build_meta as b; print(b.build_wheel(sys.argv[1]))",
         str(out)], cwd=src, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = out / proc.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(z.read(f"{dist_info}/METADATA").decode())
        top_level = z.read(f"{dist_info}/top_level.txt").decode().split()
    return {"names": names, "metadata": metadata, "top_level": top_level, "path": path}


def test_only_cnplatform_lands_in_site_packages(wheel):
    tops = {n.split("/")[0] for n in wheel["names"]}
    assert tops == {"cnplatform", f"cnplatform-{cnplatform.__version__}.dist-info"}
    assert wheel["top_level"] == ["cnplatform"]
    for forbidden in ("components/", "stacks/", "tests/", "services/", "policy/", "examples/"):
        assert not any(n.startswith(forbidden) for n in wheel["names"])


def test_every_library_file_is_packaged(wheel):
    """A subpackage missing from pyproject's explicit `packages` list would silently vanish."""
    expected = {"cnplatform/" + p.relative_to(COMPONENTS).as_posix() for p in source_files()
                if p.suffix == ".py" or p.name == "py.typed"}
    assert expected - set(wheel["names"]) == set()
    assert {"cnplatform/py.typed", "cnplatform/__main__.py",
            "cnplatform/provider.py", "cnplatform/microservice/component.py"} <= set(wheel["names"])
    for directory in {p.parent for p in source_files() if p.suffix == ".py"}:
        assert (directory / "__init__.py").exists(), f"{directory} holds modules but no __init__.py"
    assert not any(n.endswith(("requirements.txt", ".pyc")) for n in wheel["names"])


def test_version_is_single_sourced(wheel):
    assert wheel["metadata"]["Version"] == cnplatform.__version__
    assert "version" in PROJECT["project"]["dynamic"] and "version" not in PROJECT["project"]
    assert wheel["metadata"]["Name"] == "cnplatform"
    assert wheel["metadata"]["License-Expression"] == "Apache-2.0"


def test_only_runtime_dependencies(wheel):
    requires = wheel["metadata"].get_all("Requires-Dist") or []
    base = sorted(requirement_name(r) for r in requires if "extra ==" not in r)
    assert base == sorted(requirement_name(r) for r in PROJECT["project"]["dependencies"])
    assert not NOT_RUNTIME & {requirement_name(r) for r in requires}
    extras = {}
    for r in requires:
        if "extra ==" in r:
            extras.setdefault(r.split("extra ==")[1].strip(' "\''), set()).add(requirement_name(r))
    assert extras["aws"] == {"pulumi-aws"} and extras["gcp"] == {"pulumi-gcp"} and extras["images"] == {"pulumi-docker"}
    assert not {"pulumi-aws", "pulumi-gcp", "pulumi-docker"} & set(base), "cloud SDKs are optional extras"


def test_every_import_of_the_library_is_declared():
    """Each third-party module the library imports belongs to a declared dependency (base or extra),
    and each declared dependency is imported somewhere (no program-only package in the list)."""
    declared = {requirement_name(r) for r in PROJECT["project"]["dependencies"]}
    extras = {requirement_name(r) for reqs in PROJECT["project"]["optional-dependencies"].values() for r in reqs
              if requirement_name(r) != "cnplatform"}  # [all] = cnplatform[aws,gcp,images]
    dists = importlib.metadata.packages_distributions()
    used: set[str] = set()
    undeclared = {}
    for path in source_files():
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("cnplatform", "__future__"):
                    continue
                owners = {normalize(d) for d in dists.get(top, [top])}
                used |= owners
                if not owners & (declared | extras):
                    undeclared.setdefault(top, []).append(path.relative_to(ROOT).as_posix())
    assert not undeclared, f"imported but not in pyproject dependencies: {undeclared}"
    assert declared | extras <= used, f"declared but never imported: {sorted((declared | extras) - used)}"


BLOCK_EXTRAS = """
import importlib, json, sys, traceback
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, Block())
results = {{}}
for module in {modules!r}:
    try:
        importlib.import_module(module)
        results[module] = None
    except ModuleNotFoundError as e:
        results[module] = e.name
print(json.dumps(results))
"""


def test_base_install_imports_without_cloud_extras():
    """Without [aws]/[gcp]/[images]: the core imports; only cloud/image modules need their extra."""
    parts = [p.relative_to(COMPONENTS).with_suffix("").parts for p in source_files()
             if p.suffix == ".py" and p.name != "__main__.py"]
    modules = sorted({".".join(("cnplatform", *x)).removesuffix(".__init__") for x in parts})
    script = BLOCK_EXTRAS.format(blocked=tuple(EXTRAS_PACKAGES), modules=modules)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    for module in ("cnplatform", "cnplatform.microservice", "cnplatform.cluster.local", "cnplatform.cluster.baseline",
                   "cnplatform.naming", "cnplatform.topology", "cnplatform.provider", "cnplatform.mesh",
                   "cnplatform.monitoring", "cnplatform.addons", "cnplatform.cicd", "cnplatform.database"):
        assert results[module] is None, f"{module} needs {results[module]} (a cloud extra) to import"
    bad = {m: missing for m, missing in results.items()
           if missing is not None and missing.split(".")[0] not in EXTRAS_PACKAGES}
    assert not bad, f"modules failing on a non-extra import: {bad}"


def test_src_layout_folder_is_named_like_the_package():
    """A reader who greps for `cnplatform` finds its folder; the plugin files stay outside the package."""
    assert PROJECT["tool"]["setuptools"]["packages"]["find"]["where"] == ["components"]
    assert (COMPONENTS / "__init__.py").exists() and (COMPONENTS / "py.typed").exists()
    assert PROJECT["tool"]["setuptools"]["package-data"]["cnplatform"] == ["py.typed"]
    tracked = subprocess.run(["git", "ls-files", "components"], cwd=ROOT, capture_output=True, text=True).stdout
    assert sorted({line.split("/")[1] for line in tracked.split()}) == [
        "PulumiPlugin.yaml", "__main__.py", "cnplatform", "requirements.txt"]
    assert pathlib.Path(cnplatform.__file__).resolve().parent == COMPONENTS
