"""svc_common.db and the MySQL repositories against the session's real MariaDB (issue 22 items
1, 3, 4, 6, 7, 9)."""

from __future__ import annotations

import datetime
import itertools
import signal
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from svc_common import DBConfig
from svc_common.db import Database, DatabaseUnavailable
from svc_common.migrations import apply_migrations

from services.order import app as order_app
from services.payment import app as payment_app
from services.tests.helpers import ServiceProcess, call, free_port, http, service_script
from services.user import app as user_app

_names = itertools.count(1)


@pytest.fixture
def database(mariadb):
    """A fresh database + account; yields a factory of Database objects on it (closed afterwards)."""
    name = f"t{next(_names)}"
    password = mariadb.create_database(name, f"{name}_svc")
    made: list[Database] = []

    def make(**overrides) -> Database:
        cfg = DBConfig(host="127.0.0.1", port=mariadb.port, user=f"{name}_svc", password=password, database=name,
                       connect_timeout=2, query_timeout=5, **overrides)
        db = Database(cfg)
        made.append(db)
        return db

    make.name, make.password = name, password
    yield make
    for db in made:
        db.close()


def migrated(make, migrations, **overrides) -> Database:
    db = make(**overrides)
    db.ensure_schema(migrations)
    return db


# -- item 6: a bounded pool that reuses connections and one TLS context ---------------------------------
def test_pool_reuses_one_connection_sequentially(database):
    db = database(pool_size=4)
    ids = set()
    for _ in range(20):
        with db.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID() AS id")
            ids.add(cur.fetchone()["id"])
    assert len(ids) == 1 and db.open_connections == 1


def test_pool_never_opens_more_than_its_size(database, mariadb):
    db = database(pool_size=2, pool_timeout=10)
    inside, peak, lock, gate = [0], [0], threading.Lock(), threading.Barrier(2, timeout=10)

    def borrow(_):
        with db.connection() as conn, conn.cursor() as cur:
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0], db.open_connections)
            cur.execute("SELECT 1")
            if _ < 2:
                gate.wait()  # the first two hold their connections together
            with lock:
                inside[0] -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(borrow, range(16)))
    assert peak[0] == 2 and db.open_connections <= 2
    with mariadb.root() as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE USER = %s",
                    (f"{database.name}_svc",))
        assert cur.fetchone()["n"] <= 2


def test_exhausted_pool_waits_then_is_503(database):
    db = database(pool_size=1, pool_timeout=0.2)
    with db.connection():
        with pytest.raises(DatabaseUnavailable) as info:
            with db.connection():
                pass
    assert info.value.status == 503 and info.value.headers["Retry-After"] == "1"
    with db.connection() as conn:  # and it is usable again once given back
        conn.ping(reconnect=False)


def test_one_tls_context_for_all_connections(database):
    db = database()
    first, second = db.connect(), db.connect()
    try:
        assert first.ctx is not None and first.ctx is second.ctx
    finally:
        first.close()
        second.close()


# -- item 7: an unreachable database is 503 with Retry-After ----------------------------------------
def test_unreachable_database_is_503(database):
    db = Database(DBConfig(host="127.0.0.1", port=free_port(), user="x", password="x", database="x",
                           connect_timeout=1))
    app = user_app.create_app(user_app.MySQLUserRepository(db))
    for method, path, body in (("POST", "/users", {"name": "A", "email": "a@example.org"}), ("GET", "/users/1", None)):
        status, payload, resp = call(app, method, path, body)
        assert status == 503 and payload["error"]["code"] == "database_unavailable"
        assert resp.headers["Retry-After"] == "1"


def test_lost_connection_is_503_and_the_connection_is_dropped(database, mariadb):
    db = database(pool_size=1)
    with db.connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID() AS id")
        victim = cur.fetchone()["id"]
    with mariadb.root() as root, root.cursor() as cur:
        cur.execute(f"KILL {int(victim)}")
    with pytest.raises(DatabaseUnavailable):
        with db.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
    assert db.open_connections == 0


# -- item 9: the readiness probe fails fast on a server that accepts and never answers ---------------
def test_probe_on_a_hung_server_fails_within_its_timeout():
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)  # the kernel completes the handshake; nobody ever answers
        db = Database(DBConfig(host="127.0.0.1", port=hung.getsockname()[1], user="x", password="x",
                               database="x", probe_timeout=0.2))
        db.initialized.set()
        with pytest.raises(DatabaseUnavailable, match="probe failed"):
            db.check_ready()


def test_probe_works_while_the_pool_is_exhausted(database):
    db = migrated(database, user_app.MIGRATIONS, pool_size=1, pool_timeout=0.1)
    with db.connection():
        db.check_ready()  # a busy pool is load, not "not ready"


# -- migrations -----------------------------------------------------------------------------------
def test_migrations_upgrade_an_existing_table_once(database):
    db = database()
    conn = db.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(order_app.MIGRATIONS[0].statements[0])  # the table as the previous release made it
            cur.execute("INSERT INTO orders (user_id, product_id, quantity, unit_price_cents, total_cents, currency, "
                        "payment_id, status) VALUES (1, 'P-1', 1, 100, 100, 'EUR', 'pay_old', 'confirmed')")
        with ThreadPoolExecutor(2) as pool:  # two replicas starting together
            applied = list(pool.map(lambda _: apply_migrations(db.connect(), database.name,
                                                               order_app.MIGRATIONS), range(2)))
        assert sorted(applied) == [[], [1, 2]]
        assert apply_migrations(conn, database.name, order_app.MIGRATIONS) == []
        with conn.cursor() as cur:
            cur.execute("SELECT payment_id, status, idempotency_key FROM orders")
            assert cur.fetchall() == [{"payment_id": "pay_old", "status": "confirmed", "idempotency_key": None}]
            cur.execute("SELECT version FROM schema_migrations ORDER BY version")
            assert [r["version"] for r in cur.fetchall()] == [1, 2]
    finally:
        conn.close()


# -- the MySQL repositories: unique keys and conditional updates ------------------------------------
def test_user_key_is_unique_under_concurrency(database):
    repo = user_app.MySQLUserRepository(migrated(database, user_app.MIGRATIONS))
    app = user_app.create_app(repo)
    ada = {"name": "Ada", "email": "ada@example.org"}
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: call(app, "POST", "/users", ada, headers={"Idempotency-Key": "k"}),
                                range(16)))
    assert {r[0] for r in results} == {201} and len({r[1]["id"] for r in results}) == 1
    assert results[0][1] == call(app, "GET", f"/users/{results[0][1]['id']}")[1]  # no read after the insert


def test_payment_ledger_in_mysql(database):
    repo = payment_app.MySQLPaymentRepository(migrated(database, payment_app.MIGRATIONS))
    app = payment_app.create_app(repo, 10_000)
    body = {"amount_cents": 500, "reference": "ord_x_1"}
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: call(app, "POST", "/payments", body,
                                               headers={"Idempotency-Key": "ord_x_1"}), range(16)))
    assert {r[0] for r in results} == {201} and len({r[1]["id"] for r in results}) == 1
    assert call(app, "GET", f"/payments/{results[0][1]['id']}")[1] == results[0][1]
    assert call(app, "POST", "/payments/void-by-reference", {"reference": "ord_x_1"})[1]["status"] == "voided"
    assert call(app, "POST", "/payments/void-by-reference", {"reference": "ord_y_1"})[1]["status"] == "voided"
    late = call(app, "POST", "/payments", {**body, "reference": "ord_y_1"}, headers={"Idempotency-Key": "ord_y_1"})
    assert late[0] == 409


def test_order_attempts_in_mysql(database):
    repo = order_app.MySQLOrderRepository(migrated(database, order_app.MIGRATIONS))
    attempt = {"user_id": 1, "product_id": "P-1", "quantity": 2, "idempotency_key": "k1", "request_hash": "h",
               "reference": "ord_a_1", "created_at": order_app.now_ms()}
    order_id = repo.start(attempt)
    with pytest.raises(order_app.KeyInUse) as info:
        repo.start({**attempt, "reference": "ord_a_2"})
    assert info.value.row["status"] == "pending" and info.value.row["request_hash"] == "h"
    assert repo.stale(60, 10) == [] and [r["id"] for r in repo.stale(0, 10)] == [order_id]
    assert repo.claim(order_id, 0) and not repo.confirm(order_id, {
        "unit_price_cents": 5, "total_cents": 10, "currency": "EUR", "payment_id": "pay_1"})
    repo.fail(order_id)
    assert repo.get(order_id)["status"] == "failed"
    second = repo.start({**attempt, "reference": "ord_a_3"})  # the key is free again
    assert repo.confirm(second, {"unit_price_cents": 5, "total_cents": 10, "currency": "EUR", "payment_id": "pay_2"})
    assert not repo.claim(second, 0) and repo.get(second)["status"] == "confirmed"


def test_staleness_is_measured_on_the_database_clock(database):
    """The reconciler compares ``updated_at`` with the database's NOW(3): a pod whose clock is behind
    the database's must not make a fresh attempt look stale (it would be cancelled under the request)."""
    repo = order_app.MySQLOrderRepository(migrated(database, order_app.MIGRATIONS))
    behind = order_app.now_ms() - datetime.timedelta(hours=1)
    order_id = repo.start({"user_id": 1, "product_id": "P-1", "quantity": 1, "idempotency_key": "k-skew",
                           "request_hash": "h", "reference": "ord_skew_1", "created_at": behind})
    assert repo.stale(30, 10) == [] and not repo.claim(order_id, 30)
    assert repo.confirm(order_id, {"unit_price_cents": 5, "total_cents": 5, "currency": "EUR", "payment_id": "pay_1"})


# -- item 3: the payment ledger survives a restart ------------------------------------------------
def test_payments_survive_a_payment_restart(database, mariadb):
    env = {**mariadb.env(database.name, f"{database.name}_svc", database.password),
           "MYSQL_CONNECT_BACKOFF_SECONDS": "0.1"}
    svc = ServiceProcess(service_script("payment"), env).wait_ready()
    try:
        status, created, _ = http("POST", svc.url + "/payments", {"amount_cents": 700, "reference": "ord_r_1"},
                                  headers={"Idempotency-Key": "ord_r_1"})
        assert status == 201
        svc.proc.send_signal(signal.SIGKILL)
        svc.proc.wait(5)
    finally:
        svc.stop()
    again = ServiceProcess(service_script("payment"), env).wait_ready()
    try:
        assert http("GET", again.url + f"/payments/{created['id']}")[1] == created
        status, replay, _ = http("POST", again.url + "/payments", {"amount_cents": 700, "reference": "ord_r_1"},
                                 headers={"Idempotency-Key": "ord_r_1"})
        assert status == 201 and replay == created
    finally:
        again.stop()


def test_probe_recovers_from_a_dropped_probe_connection(database, mariadb):
    db = migrated(database, user_app.MIGRATIONS)
    db.check_ready()
    with db._probe.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID() AS id")
        victim = cur.fetchone()["id"]
    with mariadb.root() as root, root.cursor() as cur:
        cur.execute(f"KILL {int(victim)}")  # as after a database restart
    db.check_ready()  # not "not ready" because of a stale connection
