"""Make ``svc_common`` and the ``services`` package importable from the repo root; the shared
throwaway MariaDB (one per test session, started on first use)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

SERVICES_DIR = Path(__file__).resolve().parent.parent
for entry in (SERVICES_DIR / "common", SERVICES_DIR.parent):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from services.tests.mariadb import MISSING, MariaDB, find_binaries  # noqa: E402


@pytest.fixture(scope="session")
def mariadb():
    """A running MariaDB; skipped without the binaries, except when ``CI`` is set (then it fails)."""
    binaries = find_binaries()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING, pytrace=False)
        pytest.skip(MISSING)
    db = MariaDB(*binaries)
    try:
        db.start()
        yield db
    finally:
        db.stop()
