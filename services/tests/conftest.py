"""Make ``svc_common`` and the ``services`` package importable from the repo root."""

from __future__ import annotations

import sys
from pathlib import Path

SERVICES_DIR = Path(__file__).resolve().parent.parent
for entry in (SERVICES_DIR / "common", SERVICES_DIR.parent):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))
