"""order service: places orders by orchestrating user, product and payment.

POST /orders        {"user_id": int, "product_id": str, "quantity": int}
                    1. GET  user    /users/{user_id}                 (404 -> 422 user_not_found)
                    2. POST product /products/{id}/reserve           (404 -> 422, 409 -> 409 insufficient_stock)
                    3. POST payment /payments  amount = price * qty  (402 -> 402, stock released)
                    4. INSERT into MySQL                             (failure -> 503, payment voided, stock released)
                    -> 201 order
GET  /orders/{id}   -> 200 | 404

Upstream timeouts -> 504, unreachable/unexpected upstream answers -> 502.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from svc_common import (
    App,
    DBConfig,
    HTTPError,
    Request,
    ServiceClient,
    UpstreamError,
    UpstreamResponse,
    UpstreamTimeout,
    env_float,
    env_str,
    json_response,
    require_int,
    require_str,
    run_service,
)
from svc_common.db import Database

SERVICE = "order"
PRODUCT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_QUANTITY = 1000

SCHEMA = (
    """
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
    """,
)
_COLUMNS = ("id, user_id, product_id, quantity, unit_price_cents, total_cents, currency, payment_id, "
            "status, created_at")


class OrderRepository(Protocol):
    def create(self, order: dict[str, Any]) -> dict[str, Any]: ...
    def get(self, order_id: int) -> dict[str, Any] | None: ...
    def check_ready(self) -> None: ...


class MySQLOrderRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, order: dict[str, Any]) -> dict[str, Any]:
        with self.db.connection() as conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO orders (user_id, product_id, quantity, unit_price_cents, total_cents, currency, "
                "payment_id, status) VALUES (%(user_id)s, %(product_id)s, %(quantity)s, %(unit_price_cents)s, "
                "%(total_cents)s, %(currency)s, %(payment_id)s, %(status)s)", order)
            cur.execute(f"SELECT {_COLUMNS} FROM orders WHERE id = %s", (cur.lastrowid,))
            return cur.fetchone()

    def get(self, order_id: int) -> dict[str, Any] | None:
        with self.db.connection() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM orders WHERE id = %s", (order_id,))
            return cur.fetchone()

    def check_ready(self) -> None:
        self.db.check_ready()


@dataclass
class Upstreams:
    user: ServiceClient
    product: ServiceClient
    payment: ServiceClient


def _call(client: ServiceClient, method: str, path: str, payload: Any = None) -> UpstreamResponse:
    try:
        return client.request(method, path, payload)
    except UpstreamTimeout as exc:
        raise HTTPError(504, str(exc), code="upstream_timeout", details={"upstream": client.name}) from None
    except UpstreamError as exc:
        raise HTTPError(502, str(exc), code="upstream_unavailable", details={"upstream": client.name}) from None


def _unexpected(client: ServiceClient, resp: UpstreamResponse) -> HTTPError:
    return HTTPError(502, f"{client.name} answered HTTP {resp.status}", code="upstream_error",
                     details={"upstream": client.name, "status": resp.status})


def _field(client: ServiceClient, resp: UpstreamResponse, key: str, kind: type) -> Any:
    value = resp.body.get(key) if isinstance(resp.body, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise HTTPError(502, f"{client.name} answered without a valid {key!r}", code="upstream_error",
                        details={"upstream": client.name, "status": resp.status})
    return value


def create_app(repo: OrderRepository, upstreams: Upstreams) -> App:
    app = App(SERVICE)
    app.add_readiness_check("database", repo.check_ready)
    orders_total = app.metrics.counter("orders_total", "Order placement attempts by outcome.", ("outcome",))
    for client in (upstreams.user, upstreams.product, upstreams.payment):
        if client.metrics is None:
            client.metrics = app.metrics  # upstream_requests_total / upstream_request_duration_seconds

    def release_stock(product_id: str, quantity: int) -> None:
        try:
            resp = upstreams.product.post(f"/products/{product_id}/release", {"quantity": quantity})
            if not resp.ok:
                raise UpstreamError("product", f"HTTP {resp.status}")
        except UpstreamError as exc:
            app.log.error("compensation failed: stock not released",
                          extra={"product_id": product_id, "quantity": quantity, "error": str(exc)})

    def void_payment(payment_id: str) -> None:
        try:
            resp = upstreams.payment.post(f"/payments/{quote(payment_id, safe='')}/void", {})
            if not resp.ok:
                raise UpstreamError("payment", f"HTTP {resp.status}")
        except UpstreamError as exc:
            app.log.error("compensation failed: payment not voided",
                          extra={"payment_id": payment_id, "error": str(exc)})

    def place_order(user_id: int, product_id: str, quantity: int) -> dict[str, Any]:
        user = _call(upstreams.user, "GET", f"/users/{user_id}")
        if user.status == 404:
            raise HTTPError(422, f"user {user_id} does not exist", code="user_not_found")
        if not user.ok:
            raise _unexpected(upstreams.user, user)

        reservation = _call(upstreams.product, "POST", f"/products/{product_id}/reserve", {"quantity": quantity})
        if reservation.status == 404:
            raise HTTPError(422, f"product {product_id!r} does not exist", code="product_not_found")
        if reservation.status == 409:
            details = (reservation.body or {}).get("error", {}).get("details", {})
            raise HTTPError(409, f"insufficient stock for {product_id!r}", code="insufficient_stock",
                            details=details)
        if not reservation.ok:
            raise _unexpected(upstreams.product, reservation)
        try:
            unit_price = _field(upstreams.product, reservation, "unit_price_cents", int)
            currency = _field(upstreams.product, reservation, "currency", str)
        except HTTPError:
            release_stock(product_id, quantity)
            raise
        total = unit_price * quantity

        try:
            payment = _call(upstreams.payment, "POST", "/payments", {
                "amount_cents": total, "currency": currency, "user_id": user_id,
                "reference": f"order:{user_id}:{product_id}:{quantity}"})
        except HTTPError:
            release_stock(product_id, quantity)
            raise
        if payment.status == 402:
            release_stock(product_id, quantity)
            raise HTTPError(402, "payment declined", code="payment_declined")
        try:
            if payment.status != 201:
                raise _unexpected(upstreams.payment, payment)
            payment_id = _field(upstreams.payment, payment, "id", str)
        except HTTPError:
            release_stock(product_id, quantity)
            raise

        try:
            return repo.create({"user_id": user_id, "product_id": product_id, "quantity": quantity,
                                "unit_price_cents": unit_price, "total_cents": total, "currency": currency,
                                "payment_id": payment_id, "status": "confirmed"})
        except Exception:
            app.log.exception("storing the order failed; compensating", extra={"payment_id": payment_id})
            void_payment(payment_id)
            release_stock(product_id, quantity)
            raise HTTPError(503, "order could not be stored, please retry", code="storage_unavailable") from None

    @app.route("POST", "/orders")
    def create_order(req: Request):
        body = req.json_object()
        user_id = require_int(body, "user_id", minimum=1)
        product_id = require_str(body, "product_id", max_length=64, pattern=PRODUCT_ID)
        quantity = require_int(body, "quantity", minimum=1, maximum=MAX_QUANTITY)
        try:
            order = place_order(user_id, product_id, quantity)
        except HTTPError as err:
            orders_total.labels(SERVICE, err.code).inc()
            raise
        orders_total.labels(SERVICE, "created").inc()
        app.log.info("order created", extra={"order_id": order["id"], "payment_id": order["payment_id"],
                                             "total_cents": order["total_cents"]})
        return json_response(order, 201, {"Location": f"/orders/{order['id']}"})

    @app.route("GET", "/orders/{id}")
    def get_order(req: Request):
        order = repo.get(req.int_param("id"))
        if order is None:
            raise HTTPError(404, "order not found", code="order_not_found")
        return order

    return app


def build_app() -> App:
    timeout = env_float("UPSTREAM_TIMEOUT_SECONDS", 2.0, minimum=0.05)
    db = Database(DBConfig.from_env(default_database="orders", default_user="order_svc"))

    def client(name: str, env: str, default: str) -> ServiceClient:
        return ServiceClient(name, env_str(env, default), timeout)

    upstreams = Upstreams(
        user=client("user", "USER_SERVICE_URL", "http://user:8080"),
        product=client("product", "PRODUCT_SERVICE_URL", "http://product:8080"),
        payment=client("payment", "PAYMENT_SERVICE_URL", "http://payment:8080"),
    )
    app = create_app(MySQLOrderRepository(db), upstreams)
    app.on_startup(lambda a: db.start_background_init(SCHEMA, a.draining))
    app.on_shutdown(db.close)
    return app


def main() -> int:
    return run_service(SERVICE, build_app)


if __name__ == "__main__":
    sys.exit(main())
