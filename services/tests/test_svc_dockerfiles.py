"""Static checks of the services' one parameterised Dockerfile (``services/Dockerfile``, build
argument ``SERVICE``), plus a run of each service from the exact file layout it builds for that
service (no Docker needed), and the build-time fetch of the RDS CA bundle."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
from pathlib import Path

import pytest

from services.tests.helpers import SERVICES_DIR, ServiceProcess, free_port, http

SERVICES = ["user", "product", "order", "payment"]
DOCKERFILE = SERVICES_DIR / "Dockerfile"


def instructions(name: str) -> list[tuple[str, str]]:
    """The shared Dockerfile's instructions as built for ``name`` (``${SERVICE}`` expanded)."""
    text = DOCKERFILE.read_text().replace("${SERVICE}", name)
    text = re.sub(r"\\\n", " ", text)
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def test_one_dockerfile_for_every_service():
    """The four images differ only by the service they copy: no per-service Dockerfile to drift."""
    assert DOCKERFILE.is_file()
    assert [name for name in SERVICES if (SERVICES_DIR / name / "Dockerfile").exists()] == []
    ins = instructions("user")
    stages = [i for i, (kw, _) in enumerate(ins) if kw == "FROM"]
    for start, end in zip(stages, [*stages[1:], len(ins)], strict=True):  # each stage declares the argument it uses
        assert ("ARG", "SERVICE") in ins[start:end]
    raw = DOCKERFILE.read_text()
    assert "COPY ${SERVICE}/requirements.txt" in raw and "COPY ${SERVICE}/app.py /app/app.py" in raw
    assert 'test -n "$SERVICE"' in raw  # a build without the argument fails instead of copying "/app.py"


def test_the_image_carries_the_rds_ca_bundle_fetched_over_https():
    ins = instructions("user")
    final = ins[max(i for i, (kw, _) in enumerate(ins) if kw == "FROM"):]
    args = dict(rest.partition("=")[::2] for kw, rest in ins if kw == "ARG" and "=" in rest)
    assert args["RDS_CA_BUNDLE_URL"] == "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
    assert "RDS_CA_BUNDLE_SHA256" in args  # the pin (a build argument: CI sets the reviewed one)
    fetch = next(rest for kw, rest in ins if kw == "RUN" and "fetch_ca_bundle.py" in rest)
    assert '"$RDS_CA_BUNDLE_SHA256"' in fetch
    assert ("COPY", "--from=builder /opt/ca/rds-global-bundle.pem /etc/ssl/rds/global-bundle.pem") in final


def test_ca_bundle_fetch_checks_pin_and_format():
    from services.image import fetch_ca_bundle as fetch

    pem = b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"
    digest = fetch.check(pem * 2)
    assert fetch.check(pem * 2, digest.upper()) == digest
    with pytest.raises(ValueError, match="does not match the pinned"):
        fetch.check(pem, digest)
    with pytest.raises(ValueError, match="not a list of PEM certificates"):
        fetch.check(pem + b"<html>oops</html>")
    with pytest.raises(SystemExit, match="HTTPS only"):
        fetch.main(["x", "http://truststore.pki.rds.amazonaws.com/global/global-bundle.pem", "/tmp/x"])


@pytest.mark.parametrize("name", SERVICES)
def test_dockerfile_hardening(name):
    ins = instructions(name)
    froms = [rest for kw, rest in ins if kw == "FROM"]
    assert froms == ["python:3.11-slim AS builder", "python:3.11-slim"]  # multi-stage, pinned tag
    final = ins[max(i for i, (kw, _) in enumerate(ins) if kw == "FROM"):]
    users = [rest for kw, rest in final if kw == "USER"]
    assert users == ["10001:10001"]
    assert ("EXPOSE", "8080") in final
    env = " ".join(rest for kw, rest in final if kw == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env
    assert not re.search(r"PASSWORD|SECRET|TOKEN", " ".join(rest for kw, rest in ins if kw in ("ENV", "ARG")))
    # nothing after USER may run as root or change the user back
    after_user = final[[kw for kw, _ in final].index("USER"):]
    assert not any(kw == "RUN" for kw, _ in after_user)
    entrypoint = next(rest for kw, rest in final if kw == "ENTRYPOINT")
    assert json.loads(entrypoint) == ["python", "/app/app.py"]  # exec form: SIGTERM reaches Python


@pytest.mark.parametrize("name", SERVICES)
def test_requirements_pinned(name):
    lines = [line.strip() for line in (SERVICES_DIR / name / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*", line) for line in lines)
    assert "prometheus-client==0.26.0" in lines
    assert ("PyMySQL==1.2.4" in lines) == (name in ("user", "order", "payment"))


def test_dockerignore_excludes_tests_and_caches():
    patterns = (SERVICES_DIR / ".dockerignore").read_text().split()
    assert "tests/" in patterns and "**/__pycache__" in patterns


def build_layout(name: str, root: Path) -> dict[str, str]:
    """Replay the final stage's COPY instructions (build context = services/) into ``root``."""
    ins = instructions(name)
    final = ins[max(i for i, (kw, _) in enumerate(ins) if kw == "FROM"):]
    env: dict[str, str] = {}
    for kw, rest in final:
        if kw == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                env[key] = value
        if kw == "COPY" and not rest.startswith("--from"):
            src, dest = rest.split()
            source = SERVICES_DIR / src
            target = root / dest.lstrip("/")
            assert source.exists(), f"COPY source {src} missing from the build context"
            if source.is_dir():
                shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(source, target)
    return env


@pytest.mark.parametrize("name", SERVICES)
def test_runs_from_image_layout(name, tmp_path):
    env = build_layout(name, tmp_path)
    app_dir = tmp_path / "app"
    assert sorted(p.name for p in app_dir.iterdir()) == ["app.py", "svc_common"]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    extra = {"PYTHONPATH": str(app_dir), "PYTHONDONTWRITEBYTECODE": env["PYTHONDONTWRITEBYTECODE"]}
    if name in ("user", "order", "payment"):
        extra.update({"MYSQL_PORT": str(free_port()), "MYSQL_CONNECT_BACKOFF_SECONDS": "0.2"})
    svc = ServiceProcess(app_dir / "app.py", extra, name=name)
    try:
        svc.wait_listening()
        assert http("GET", svc.url + "/healthz")[0] == 200
        svc.proc.send_signal(signal.SIGTERM)
        assert svc.proc.wait(timeout=5) == 0
    finally:
        svc.stop()
    # read-only root filesystem friendly: nothing was written next to the code
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
