"""order service: places orders by orchestrating user, product and payment.

POST /orders        {"user_id": int, "product_id": str, "quantity": int}, optional Idempotency-Key
                    0. INSERT the attempt as 'pending' (the key is unique: a repeat returns the first
                       order, 201 + Idempotent-Replayed; while the first is still running: 409
                       order_in_progress + Retry-After)
                    1. GET  user    /users/{user_id}                 (404 -> 422 user_not_found)
                    2. POST product /products/{id}/reserve           (404 -> 422, 409 -> 409 insufficient_stock)
                    3. POST payment /payments  amount = price * qty  (402 -> 402, stock released)
                    4. UPDATE the attempt to 'confirmed'             -> 201 order
GET  /orders/{id}   -> 200 order | 404

Every side effect is keyed by the attempt's ``reference`` (derived from the idempotency key plus a
nonce): the reservation's and the payment's Idempotency-Key, and the payment's unique reference.
A failed step is compensated by reference (void-by-reference, release-by-key: both also cover a
call whose request is still in flight) and the attempt is marked 'failed', freeing the key for a
retry. When the outcome cannot be settled (the compensation fails too, or the confirming UPDATE
fails and may have committed), the attempt stays 'pending' and the reconciler settles it once it is
older than ORDER_PENDING_TIMEOUT_SECONDS: a conditional UPDATE claims it ('cancelling'), it voids
and releases, marks it 'failed'. Confirming is conditional too (WHERE status = 'pending'), so an
order is either confirmed with its payment or cancelled with its payment voided, never both.

Upstream timeouts -> 504, unreachable/unexpected upstream answers -> 502, an upstream's or the
database's 503 -> 503 with Retry-After.
"""

from __future__ import annotations

import re
import secrets
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol

from svc_common import (
    App,
    DBConfig,
    HTTPError,
    Request,
    ServiceClient,
    ServiceUnavailable,
    UpstreamError,
    UpstreamResponse,
    UpstreamTimeout,
    env_float,
    env_str,
    idempotency_key,
    json_response,
    require_int,
    require_str,
    run_periodically,
    run_service,
)
from svc_common.db import Database, Migration, is_duplicate_key
from svc_common.idempotency import REPLAYED, check_same_request, fingerprint, key_digest

SERVICE = "order"
PRODUCT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_QUANTITY = 1000

MIGRATIONS = (
    Migration(1, "orders", ("""
    CREATE TABLE IF NOT EXISTS orders (
        id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        user_id          BIGINT UNSIGNED NOT NULL,
        product_id       VARCHAR(64)     NOT NULL,
        quantity         INT UNSIGNED    NOT NULL,
        unit_price_cents BIGINT UNSIGNED NOT NULL,
        total_cents      BIGINT UNSIGNED NOT NULL,
        currency         CHAR(3)         NOT NULL,
        payment_id       VARCHAR(64)     NOT NULL,
        status           VARCHAR(20)     NOT NULL,
        created_at       TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        KEY ix_orders_user (user_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
    """,)),
    Migration(2, "idempotency keys, pending attempts, side-effect reference", ("""
    ALTER TABLE orders
        ADD COLUMN idempotency_key VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
        ADD COLUMN request_hash CHAR(64) CHARACTER SET ascii NULL,
        ADD COLUMN reference VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL,
        ADD COLUMN updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        MODIFY unit_price_cents BIGINT UNSIGNED NULL,
        MODIFY total_cents BIGINT UNSIGNED NULL,
        MODIFY currency CHAR(3) NULL,
        MODIFY payment_id VARCHAR(64) NULL,
        ADD UNIQUE KEY uq_orders_idempotency_key (idempotency_key),
        ADD UNIQUE KEY uq_orders_reference (reference),
        ADD KEY ix_orders_status_updated (status, updated_at)
    """,)),
)
PUBLIC = ("id", "user_id", "product_id", "quantity", "unit_price_cents", "total_cents", "currency", "payment_id",
          "status", "created_at")
_COLUMNS = ", ".join(PUBLIC)


def now_ms() -> datetime:
    """UTC now at the database's precision (TIMESTAMP(3)), naive like the rows read back."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class KeyInUse(Exception):
    """An attempt with this idempotency key exists (``row``: it, with ``request_hash``)."""

    def __init__(self, row: dict[str, Any]) -> None:
        super().__init__(row.get("id"))
        self.row = row


class OrderRepository(Protocol):
    def start(self, attempt: dict[str, Any]) -> int: ...  # the new id; KeyInUse if the key is taken
    def confirm(self, order_id: int, fields: dict[str, Any]) -> bool: ...  # pending -> confirmed
    def fail(self, order_id: int) -> None: ...  # pending/cancelling -> failed, key freed
    def get(self, order_id: int) -> dict[str, Any] | None: ...
    def stale(self, older_than: float, limit: int) -> list[dict[str, Any]]: ...  # unsettled attempts
    def claim(self, order_id: int, older_than: float) -> bool: ...  # -> cancelling, if still stale
    def check_ready(self) -> None: ...


class MySQLOrderRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def start(self, attempt: dict[str, Any]) -> int:
        for _ in range(3):
            with self.db.connection() as conn, conn.cursor() as cur:
                try:
                    cur.execute(
                        "INSERT INTO orders (user_id, product_id, quantity, status, idempotency_key, request_hash, "
                        "reference, created_at, updated_at) VALUES (%(user_id)s, %(product_id)s, %(quantity)s, "
                        "'pending', %(idempotency_key)s, %(request_hash)s, %(reference)s, %(created_at)s, "
                        "NOW(3))", attempt)  # updated_at on the database's clock, like stale() and claim()
                    return cur.lastrowid
                except Exception as exc:
                    if not is_duplicate_key(exc):
                        raise
                cur.execute(f"SELECT {_COLUMNS}, request_hash FROM orders WHERE idempotency_key = %s",
                            (attempt["idempotency_key"],))
                row = cur.fetchone()
                if row is not None:
                    raise KeyInUse(row)
            # the other attempt failed and freed the key in between: try again
        raise ServiceUnavailable("idempotency key is contended", code="order_in_progress")

    def confirm(self, order_id: int, fields: dict[str, Any]) -> bool:
        with self.db.connection() as conn, conn.cursor() as cur:
            cur.execute("UPDATE orders SET status = 'confirmed', unit_price_cents = %(unit_price_cents)s, "
                        "total_cents = %(total_cents)s, currency = %(currency)s, payment_id = %(payment_id)s, "
                        "updated_at = NOW(3) WHERE id = %(id)s AND status = 'pending'", {**fields, "id": order_id})
            return cur.rowcount == 1

    def fail(self, order_id: int) -> None:
        with self.db.connection() as conn, conn.cursor() as cur:
            cur.execute("UPDATE orders SET status = 'failed', idempotency_key = NULL, updated_at = NOW(3) "
                        "WHERE id = %s AND status IN ('pending', 'cancelling')", (order_id,))

    def get(self, order_id: int) -> dict[str, Any] | None:
        with self.db.connection() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM orders WHERE id = %s", (order_id,))
            return cur.fetchone()

    def stale(self, older_than: float, limit: int) -> list[dict[str, Any]]:
        with self.db.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT id, product_id, reference, status FROM orders WHERE status IN ('pending', "
                        "'cancelling') AND updated_at < NOW(3) - INTERVAL %s MICROSECOND ORDER BY updated_at "
                        "LIMIT %s", (int(older_than * 1e6), limit))
            return list(cur.fetchall())

    def claim(self, order_id: int, older_than: float) -> bool:
        with self.db.connection() as conn, conn.cursor() as cur:
            cur.execute("UPDATE orders SET status = 'cancelling', updated_at = NOW(3) WHERE id = %s AND status IN "
                        "('pending', 'cancelling') AND updated_at < NOW(3) - INTERVAL %s MICROSECOND",
                        (order_id, int(older_than * 1e6)))
            return cur.rowcount == 1

    def check_ready(self) -> None:
        self.db.check_ready()


@dataclass
class Upstreams:
    user: ServiceClient
    product: ServiceClient
    payment: ServiceClient


@dataclass
class Attempt:
    id: int
    reference: str
    user_id: int
    product_id: str
    quantity: int
    created_at: datetime


def gateway_error(client: ServiceClient, exc: UpstreamError) -> HTTPError:
    if isinstance(exc, UpstreamTimeout):
        return HTTPError(504, str(exc), code="upstream_timeout", details={"upstream": client.name})
    return HTTPError(502, str(exc), code="upstream_unavailable", details={"upstream": client.name})


def unexpected(client: ServiceClient, resp: UpstreamResponse) -> HTTPError:
    details = {"upstream": client.name, "status": resp.status}
    if resp.status == 503:  # the upstream's dependency is down: so are we, retry later
        return ServiceUnavailable(f"{client.name} is unavailable", code="upstream_unavailable", details=details,
                                  retry_after=resp.headers.get("retry-after", "1"))
    return HTTPError(502, f"{client.name} answered HTTP {resp.status}", code="upstream_error", details=details)


def field(client: ServiceClient, resp: UpstreamResponse, key: str, kind: type) -> Any:
    value = resp.body.get(key) if isinstance(resp.body, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise HTTPError(502, f"{client.name} answered without a valid {key!r}", code="upstream_error",
                        details={"upstream": client.name, "status": resp.status})
    return value


class Orders:
    """The placement saga, its compensations and the reconciler of unsettled attempts."""

    def __init__(self, app: App, repo: OrderRepository, up: Upstreams, pending_timeout: float) -> None:
        self.app, self.repo, self.up, self.pending_timeout = app, repo, up, pending_timeout
        self.outcomes = app.metrics.counter("orders_total", "Order placement attempts by outcome.", ("outcome",))
        self.settled = app.metrics.counter("orders_reconciled_total", "Unsettled attempts cancelled by the "
                                           "reconciler, by outcome.", ("outcome",))

    # -- placement --------------------------------------------------------------------
    def place(self, user_id: int, product_id: str, quantity: int, key: str | None) -> tuple[dict[str, Any], bool]:
        """(order, replayed)."""
        key = key or f"auto:{secrets.token_hex(16)}"
        digest = fingerprint(user_id, product_id, quantity)
        attempt = {"user_id": user_id, "product_id": product_id, "quantity": quantity, "idempotency_key": key,
                   "request_hash": digest, "reference": f"ord_{key_digest(key)}_{secrets.token_hex(8)}",
                   "created_at": now_ms()}
        try:
            order_id = self.repo.start(attempt)
        except KeyInUse as exc:
            check_same_request(exc.row.pop("request_hash", None), digest)
            if exc.row["status"] != "confirmed":
                raise HTTPError(409, "an order with this Idempotency-Key is in progress", code="order_in_progress",
                                headers={"Retry-After": "1"}) from None
            return exc.row, True
        a = Attempt(order_id, attempt["reference"], user_id, product_id, quantity, attempt["created_at"])
        self.check_user(a)
        unit_price, currency = self.reserve(a)
        total = unit_price * quantity
        payment_id = self.pay(a, total, currency)
        return self.confirm(a, {"unit_price_cents": unit_price, "total_cents": total, "currency": currency,
                                "payment_id": payment_id}), False

    def abort(self, a: Attempt, error: HTTPError, *, paid: bool) -> NoReturn:
        """Undo what the attempt may have done, mark it failed, raise ``error``. If undoing fails
        the attempt stays pending: the reconciler retries later."""
        if self.undo(a.product_id, a.reference, paid=paid):
            self.mark_failed(a.id)
        raise error

    def check_user(self, a: Attempt) -> None:
        """No side effect yet: a failure only marks the attempt failed."""
        error: HTTPError | None = None
        try:
            resp = self.up.user.get(f"/users/{a.user_id}")
        except UpstreamError as exc:
            error = gateway_error(self.up.user, exc)
        else:
            if resp.status == 404:
                error = HTTPError(422, f"user {a.user_id} does not exist", code="user_not_found")
            elif not resp.ok:
                error = unexpected(self.up.user, resp)
        if error is not None:
            self.mark_failed(a.id)
            raise error

    def reserve(self, a: Attempt) -> tuple[int, str]:
        product = self.up.product
        try:
            resp = product.post(f"/products/{a.product_id}/reserve", {"quantity": a.quantity},
                                headers={"Idempotency-Key": a.reference})
        except UpstreamError as exc:
            self.abort(a, gateway_error(product, exc), paid=False)
        if resp.status == 404:
            self.abort(a, HTTPError(422, f"product {a.product_id!r} does not exist", code="product_not_found"),
                       paid=False)
        error = (resp.body or {}).get("error", {}) if isinstance(resp.body, dict) else {}
        if resp.status == 409 and error.get("code") == "insufficient_stock":
            self.abort(a, HTTPError(409, f"insufficient stock for {a.product_id!r}", code="insufficient_stock",
                                    details=error.get("details", {})), paid=False)
        try:
            if not resp.ok:
                raise unexpected(product, resp)
            return field(product, resp, "unit_price_cents", int), field(product, resp, "currency", str)
        except HTTPError as err:
            self.abort(a, err, paid=False)

    def pay(self, a: Attempt, total: int, currency: str) -> str:
        payment = self.up.payment
        try:
            resp = payment.post("/payments", {"amount_cents": total, "currency": currency, "user_id": a.user_id,
                                              "reference": a.reference}, headers={"Idempotency-Key": a.reference})
        except UpstreamError as exc:  # it may have been authorised: void by reference
            self.abort(a, gateway_error(payment, exc), paid=True)
        if resp.status == 402:
            self.abort(a, HTTPError(402, "payment declined", code="payment_declined"), paid=False)
        try:
            if resp.status != 201:
                raise unexpected(payment, resp)
            return field(payment, resp, "id", str)
        except HTTPError as err:
            self.abort(a, err, paid=True)

    def confirm(self, a: Attempt, fields: dict[str, Any]) -> dict[str, Any]:
        try:
            confirmed = self.repo.confirm(a.id, fields)
        except Exception as exc:  # noqa: BLE001 - it may have committed: never compensate here
            self.app.log.warning("confirming the order failed; left to the reconciler",
                                 extra={"order_id": a.id, "error": str(exc)})
            raise ServiceUnavailable("the order could not be stored; retry with the same Idempotency-Key",
                                     code="storage_unavailable") from None
        if not confirmed:  # the reconciler took it over (too slow): it voids and releases
            raise ServiceUnavailable("the order attempt expired; retry", code="order_expired")
        return {"id": a.id, "user_id": a.user_id, "product_id": a.product_id, "quantity": a.quantity, **fields,
                "status": "confirmed", "created_at": a.created_at}

    # -- compensation -----------------------------------------------------------------
    def undo(self, product_id: str, reference: str, *, paid: bool) -> bool:
        """Void the payment (if one may exist) and release the stock of ``reference``; True if both
        are settled. Both calls are idempotent and also cover a request still in flight."""
        ok = True
        if paid:
            ok = self._compensate(self.up.payment, "/payments/void-by-reference", {"reference": reference})
        return self._compensate(self.up.product, f"/products/{product_id}/release",
                                {"reservation_key": reference}, also_ok=(404,)) and ok

    def _compensate(self, client: ServiceClient, path: str, payload: dict[str, Any],
                    also_ok: tuple[int, ...] = ()) -> bool:
        try:
            resp = client.post(path, payload)
            if resp.ok or resp.status in also_ok:
                return True
            error = f"HTTP {resp.status}"
        except UpstreamError as exc:
            error = str(exc)
        self.app.log.error("compensation failed; left to the reconciler",
                           extra={"upstream": client.name, "path": path, "error": error})
        return False

    def mark_failed(self, order_id: int) -> None:
        try:
            self.repo.fail(order_id)
        except Exception as exc:  # noqa: BLE001 - the reconciler finishes it
            self.app.log.warning("marking the attempt failed did not work", extra={"order_id": order_id,
                                                                                   "error": str(exc)})

    def reconcile(self, limit: int = 100) -> int:
        """Cancel the attempts left pending for longer than ``pending_timeout``; returns how many."""
        settled = 0
        for row in self.repo.stale(self.pending_timeout, limit):
            if not self.repo.claim(row["id"], self.pending_timeout):
                continue  # confirmed meanwhile, or another replica has it
            if self.undo(row["product_id"], row["reference"], paid=True):
                self.repo.fail(row["id"])
                settled += 1
                self.settled.labels(SERVICE, "cancelled").inc()
            else:
                self.settled.labels(SERVICE, "retry").inc()
        return settled


def create_app(repo: OrderRepository, upstreams: Upstreams, pending_timeout: float = 30.0) -> App:
    app = App(SERVICE)
    app.add_readiness_check("database", repo.check_ready)
    for client in (upstreams.user, upstreams.product, upstreams.payment):
        if client.metrics is None:
            client.metrics = app.metrics  # upstream_requests_total / upstream_request_duration_seconds
    orders = Orders(app, repo, upstreams, pending_timeout)
    app.orders = orders  # type: ignore[attr-defined] - the reconciler and tests reach it here

    @app.route("POST", "/orders")
    def create_order(req: Request):
        body = req.json_object()
        user_id = require_int(body, "user_id", minimum=1)
        product_id = require_str(body, "product_id", max_length=64, pattern=PRODUCT_ID)
        quantity = require_int(body, "quantity", minimum=1, maximum=MAX_QUANTITY)
        key = idempotency_key(req.headers)
        try:
            order, replayed = orders.place(user_id, product_id, quantity, key)
        except HTTPError as err:
            orders.outcomes.labels(SERVICE, err.code).inc()
            raise
        orders.outcomes.labels(SERVICE, "replayed" if replayed else "created").inc()
        if not replayed:
            app.log.info("order created", extra={"order_id": order["id"], "payment_id": order["payment_id"],
                                                 "total_cents": order["total_cents"]})
        headers = {"Location": f"/orders/{order['id']}", **(REPLAYED if replayed else {})}
        return json_response(order, 201, headers)

    @app.route("GET", "/orders/{id}")
    def get_order(req: Request):
        order = repo.get(req.int_param("id"))
        if order is None:
            raise HTTPError(404, "order not found", code="order_not_found")
        return order

    return app


def build_app() -> App:
    timeout = env_float("UPSTREAM_TIMEOUT_SECONDS", 2.0, minimum=0.05)
    pending_timeout = env_float("ORDER_PENDING_TIMEOUT_SECONDS", 30.0, minimum=0.1)
    interval = env_float("ORDER_RECONCILE_INTERVAL_SECONDS", 5.0, minimum=0.05)
    db = Database(DBConfig.from_env(default_database="orders", default_user="order_svc"))

    def client(name: str, env: str, default: str) -> ServiceClient:
        return ServiceClient(name, env_str(env, default), timeout)

    upstreams = Upstreams(
        user=client("user", "USER_SERVICE_URL", "http://user:8080"),
        product=client("product", "PRODUCT_SERVICE_URL", "http://product:8080"),
        payment=client("payment", "PAYMENT_SERVICE_URL", "http://payment:8080"),
    )
    app = create_app(MySQLOrderRepository(db), upstreams, pending_timeout)

    def reconcile() -> None:
        if db.initialized.is_set():
            app.orders.reconcile()  # type: ignore[attr-defined]

    app.on_startup(lambda a: db.start_background_init(MIGRATIONS, a.draining))
    app.on_startup(lambda a: run_periodically("order-reconciler", interval, reconcile, a.draining))
    app.on_shutdown(db.close)
    return app


def main() -> int:
    return run_service(SERVICE, build_app)


if __name__ == "__main__":
    sys.exit(main())
