"""The verdicts of benchmarks/services_load.py: ``tally`` must see every duplicate, orphan and lost
acknowledgement in the rows, and the CPU accounting must read real counters."""

from __future__ import annotations

import os

from svc_common.idempotency import key_digest

from benchmarks.svcload.stack import STOCK, cpu_seconds
from benchmarks.svcload.verify import Snapshot, key_of, tally


def ref(key: str, nonce: str = "00aa") -> str:
    return f"ord_{key_digest(key)}_{nonce}"  # the order service's reference format


def clean_snapshot() -> tuple[Snapshot, dict[str, int]]:
    confirmed = [{"id": 1, "reference": ref("k1"), "payment_id": "p1"},
                 {"id": 2, "reference": ref("k2"), "payment_id": "p2"}]
    authorised = [{"id": "p1", "reference": ref("k1")}, {"id": "p2", "reference": ref("k2")}]
    return Snapshot(confirmed, authorised, stock_left=STOCK - 2), {"k1": 1, "k2": 2}


def test_a_clean_run_has_no_findings():
    snap, acked = clean_snapshot()
    out = tally(snap, acked, acked, [])
    assert (out["duplicate_orders"], out["duplicate_payments"], out["orphan_authorisations"],
            out["confirmed_without_payment"], out["lost_acknowledged"], out["stock_leaked"]) == (0, 0, 0, 0, 0, 0)
    assert out["acknowledged"] == out["orders_confirmed"] == 2


def test_a_second_order_and_payment_for_one_key_are_duplicates():
    snap, acked = clean_snapshot()
    snap.confirmed.append({"id": 3, "reference": ref("k1", "ffff"), "payment_id": "p3"})
    snap.authorised.append({"id": "p3", "reference": ref("k1", "ffff")})
    snap.stock_left -= 1
    out = tally(snap, acked, acked, [])
    assert out["duplicate_orders"] == 1 and out["duplicate_payments"] == 1
    assert out["orphan_authorisations"] == 0 and out["stock_leaked"] == 0


def test_an_authorisation_without_a_confirmed_order_is_an_orphan():
    snap, acked = clean_snapshot()
    snap.authorised.append({"id": "p9", "reference": ref("k9")})
    out = tally(snap, [*acked, "k9"], acked, [])
    assert out["orphan_authorisations"] == 1 and out["duplicate_payments"] == 0


def test_a_voided_payment_behind_a_confirmed_order_is_reported():
    snap, acked = clean_snapshot()
    snap.authorised.pop()  # p2 voided although order 2 is confirmed
    assert tally(snap, acked, acked, [])["confirmed_without_payment"] == 1


def test_an_acknowledged_order_missing_from_the_database_is_lost():
    snap, acked = clean_snapshot()
    acked["k3"] = 77
    out = tally(snap, acked, acked, [])
    assert out["lost_acknowledged"] == 1


def test_stock_taken_without_a_confirmed_order_is_leaked():
    snap, acked = clean_snapshot()
    snap.stock_left -= 3
    assert tally(snap, acked, acked, [])["stock_leaked"] == 3


def test_rows_of_unknown_keys_are_not_duplicates_of_each_other():
    snap, acked = clean_snapshot()
    snap.authorised += [{"id": "x1", "reference": "ord_unknown_1"}, {"id": "x2", "reference": "ord_unknown_2"}]
    out = tally(snap, acked, acked, [])
    assert out["duplicate_payments"] == 0 and out["orphan_authorisations"] == 2


def test_references_map_back_to_the_client_key():
    digests = {key_digest("abc"): "abc"}
    assert key_of(ref("abc"), digests) == "abc"
    assert key_of("not-a-reference", digests) is None


def test_cpu_seconds_reads_this_process_and_grows_with_work():
    before = cpu_seconds(os.getpid())
    sum(i * i for i in range(3_000_000))
    assert cpu_seconds(os.getpid()) > before
    assert cpu_seconds(2**22 + 12345) != cpu_seconds(2**22 + 12345)  # no such process: NaN
