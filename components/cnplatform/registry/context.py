"""What a service image is built from: the files of its build context that its Dockerfile copies.

Pure functions (no Pulumi): the image tag is a hash of exactly those files, so editing one service
rebuilds, pushes and rolls out that service only, and an unchanged service keeps its tag.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Optional

#: Files never part of an image build (caches); they do not change the content hash.
IGNORED_PARTS = ("__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".git")
IGNORED_SUFFIXES = (".pyc", ".pyo")


def dockerignore_patterns(context: str | os.PathLike) -> list[tuple[bool, re.Pattern]]:
    """``.dockerignore`` of a context as (exclude?, regex) rules, in file order (the last match wins)."""
    file = Path(context) / ".dockerignore"
    if not file.is_file():
        return []
    rules = []
    for line in file.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        exclude = not line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.find("]", i)
                if end == -1:
                    regex, i = regex + re.escape(pattern[i]), i + 1
                else:
                    regex, i = regex + pattern[i:end + 1], end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((exclude, re.compile(f"^{regex}$")))
    return rules


def _ignored(rel: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """Docker semantics: a path is out when the last rule matching it or one of its parent dirs excludes."""
    parts = rel.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for exclude, regex in rules:
        if any(regex.match(c) for c in candidates):
            ignored = exclude
    return ignored


def context_digest(context: str | os.PathLike, length: int = 12) -> str:
    """A deterministic hash of a build context (relative paths + bytes), used as the image tag.

    Files the build never sees (``.dockerignore``) and caches do not count. A change anywhere else
    gives a new tag, so the Deployment changes and rolls; an unchanged tree gives the same tag, so
    nothing is rebuilt, pushed or rolled.
    """
    root = Path(context)
    rules = dockerignore_patterns(root)
    sha = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if any(part in IGNORED_PARTS for part in rel.parts) or path.suffix in IGNORED_SUFFIXES:
            continue
        if _ignored(rel.as_posix(), rules):
            continue
        sha.update(rel.as_posix().encode() + b"\0")
        sha.update(hashlib.sha256(path.read_bytes()).digest())
    return sha.hexdigest()[:length]


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        word, _, rest = current.partition(" ")
        out.append((word.upper(), rest.strip()))
        current = ""
    return out


def dockerfile_args(text: str, build_args: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """Values of the Dockerfile's ``ARG``s: their defaults, overridden by ``build_args``."""
    values: dict[str, str] = {}
    for word, rest in _instructions(text):
        if word == "ARG":
            name, _, default = rest.partition("=")
            values.setdefault(name.strip(), default.strip().strip('"'))
    return {**values, **(build_args or {})}


def _expand(text: str, values: Mapping[str, str]) -> str:
    """``${NAME}`` / ``$NAME`` replaced by a build argument's value (unknown names stay)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), m.group(0)), text)


def dockerfile_sources(text: str, build_args: Optional[Mapping[str, str]] = None) -> list[str]:
    """The build-context sources of every ``COPY`` / ``ADD`` (``--from=`` copies come from a stage),
    with ``ARG`` references expanded (a parameterised Dockerfile: ``COPY ${SERVICE}/app.py``)."""
    sources: list[str] = []
    values = dockerfile_args(text, build_args)
    for word, rest in _instructions(text):
        if word not in ("COPY", "ADD"):
            continue
        rest = _expand(rest, values)
        args = json.loads(rest) if rest.startswith("[") else shlex.split(rest)
        flags = [a for a in args if a.startswith("--")]
        if any(f.startswith("--from=") for f in flags):
            continue
        sources += [a for a in args if not a.startswith("--")][:-1]
    return sources


def image_files(context: str | os.PathLike, dockerfile: str | os.PathLike,
                build_args: Optional[Mapping[str, str]] = None) -> list[Path]:
    """Files of ``context`` the image gets (its Dockerfile's COPY/ADD sources, less ``.dockerignore``)."""
    root = Path(context).resolve()
    rules = dockerignore_patterns(root)
    files: set[Path] = set()
    for source in dockerfile_sources(Path(dockerfile).read_text(), build_args):
        for match in glob.glob(str(root / source.lstrip("/")), recursive=True):
            path = Path(match).resolve()
            candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
            files |= {c for c in candidates if c.is_file() and root in c.parents}
    kept = []
    for path in sorted(files):
        rel = path.relative_to(root)
        if any(part in IGNORED_PARTS for part in rel.parts) or path.suffix in IGNORED_SUFFIXES:
            continue
        if not _ignored(rel.as_posix(), rules):
            kept.append(path)
    return kept


def image_digest(context: str | os.PathLike, dockerfile: str | os.PathLike, length: int = 12,
                 build_args: Optional[Mapping[str, str]] = None) -> str:
    """The image tag of one service: a hash of its Dockerfile, its build arguments and exactly the files it copies."""
    root = Path(context).resolve()
    sha = hashlib.sha256(b"Dockerfile\0" + Path(dockerfile).read_bytes())
    if build_args:
        sha.update(json.dumps(dict(build_args), sort_keys=True).encode())
    for path in image_files(root, dockerfile, build_args):
        sha.update(path.relative_to(root).as_posix().encode() + b"\0")
        sha.update(hashlib.sha256(path.read_bytes()).digest())
    return sha.hexdigest()[:length]


def build_context(build: str, root: str | os.PathLike) -> tuple[str, str, dict[str, str]]:
    """``services/user`` -> (context ``services``, dockerfile, build args), relative to ``root``.

    The service's own ``services/user/Dockerfile`` when it has one, else the shared, parameterised
    ``services/Dockerfile`` with ``SERVICE=user``: the rule of the program and of CI (one place).
    """
    path = Path(build)
    context = path.parent.as_posix() or "."
    if (Path(root) / path / "Dockerfile").is_file():
        return context, (path / "Dockerfile").as_posix(), {}
    return context, (path.parent / "Dockerfile").as_posix(), {"SERVICE": path.name}
