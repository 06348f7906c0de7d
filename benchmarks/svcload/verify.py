"""After the load: what the databases hold against what the clients were told.

``tally`` is a pure function of the rows and the clients' results, so its verdicts (a duplicate,
an orphan authorisation, a lost acknowledgement) are tested with crafted rows.
"""
from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from svc_common.idempotency import key_digest

from services.tests.mariadb import MariaDB

from .load import Results
from .stack import STOCK


@dataclass
class Snapshot:
    """The rows ``tally`` needs, read once the reconciler has settled every attempt."""
    confirmed: list[dict[str, Any]]  # id, reference, payment_id of every confirmed order
    authorised: list[dict[str, Any]]  # id, reference of every authorised payment
    order_statuses: dict[str, int] = field(default_factory=dict)
    payment_statuses: dict[str, int] = field(default_factory=dict)
    unsettled: int = 0
    stock_left: int = STOCK


def key_of(reference: str, digests: dict[str, str]) -> str | None:
    """The client key behind an order/payment reference ``ord_<key digest>_<nonce>``."""
    parts = reference.split("_")
    return digests.get(parts[1]) if len(parts) == 3 else None


def duplicates(per_key: Counter[str | None]) -> int:
    """Rows beyond the first per client key (rows of no known key are not duplicates of each other)."""
    return sum(n - 1 for key, n in per_key.items() if key is not None and n > 1)


def tally(snap: Snapshot, keys: Iterable[str], acked: dict[str, int], unresolved: list[str]) -> dict[str, Any]:
    digests = {key_digest(k): k for k in keys}
    confirmed = {r["id"]: r["reference"] for r in snap.confirmed}
    attached = {r["payment_id"] for r in snap.confirmed}
    authorised_ids = {r["id"] for r in snap.authorised}
    orders_per_key = Counter(key_of(ref, digests) for ref in confirmed.values())
    payments_per_key = Counter(key_of(r["reference"], digests) for r in snap.authorised)
    return {
        "acknowledged": len(acked), "orders_confirmed": len(confirmed), "order_rows": snap.order_statuses,
        "payments": snap.payment_statuses, "unsettled": snap.unsettled,
        "lost_acknowledged": sum(1 for order_id in acked.values() if order_id not in confirmed),
        "duplicate_orders": duplicates(orders_per_key),
        "duplicate_payments": duplicates(payments_per_key),
        "orphan_authorisations": len(authorised_ids - attached),  # authorised, no confirmed order points to it
        "confirmed_without_payment": len(attached - authorised_ids),  # confirmed, payment not (or no longer) authorised
        "stock_leaked": STOCK - snap.stock_left - len(confirmed),
        "unresolved_clients": unresolved[:10], "unresolved_count": len(unresolved),
    }


def settle(db: MariaDB, timeout: float = 60) -> int:
    """Wait until the reconciler settled every pending attempt; the number still unsettled."""
    deadline = time.monotonic() + timeout
    while True:
        with db.root("orders") as conn, conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) AS n FROM orders WHERE status IN ('pending', 'cancelling')")
            left = cur.fetchone()["n"]
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def snapshot(db: MariaDB, unsettled: int, stock_left: int) -> Snapshot:
    with db.root() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, reference, payment_id FROM orders.orders WHERE status = 'confirmed'")
        confirmed = list(cur.fetchall())
        cur.execute("SELECT status, COUNT(*) AS n FROM orders.orders GROUP BY status")
        order_statuses = {r["status"]: r["n"] for r in cur.fetchall()}
        cur.execute("SELECT status, COUNT(*) AS n FROM payments.payments GROUP BY status")
        payment_statuses = {r["status"]: r["n"] for r in cur.fetchall()}
        cur.execute("SELECT id, reference FROM payments.payments WHERE status = 'authorized'")
        authorised = list(cur.fetchall())
    return Snapshot(confirmed, authorised, order_statuses, payment_statuses, unsettled, stock_left)


def verify(db: MariaDB, stock_left: Callable[[], int], results: Results) -> dict[str, Any]:
    unsettled = settle(db)
    snap = snapshot(db, unsettled, stock_left())
    return tally(snap, results.keys, results.acked, results.unresolved)
