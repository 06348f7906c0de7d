"""product service: in-memory catalogue with stock reservations.

GET  /products                 -> 200 {"products": [...]}
GET  /products/{id}            -> 200 | 404
POST /products/{id}/reserve    {"quantity": int >= 1}, optional Idempotency-Key
                               -> 200 reservation (with reservation_id) | 404 | 409 insufficient stock
                               A repeat with the same key returns the same reservation (stock taken once).
POST /products/{id}/release    {"reservation_id": str} or {"reservation_key": str}
                               -> 200: the reservation's stock is returned, once; a second release returns
                               nothing more. Releasing by key a reservation that never arrived records it as
                               released, so a late reserve with that key takes no stock (409).
                               No matching reservation: 404; no reservation named: 400.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

from svc_common import (
    App,
    ConfigError,
    HTTPError,
    Request,
    env_str,
    idempotency_key,
    json_response,
    require_int,
    require_str,
    run_service,
)
from svc_common.idempotency import REPLAYED

SERVICE = "product"
MAX_QUANTITY = 1000
#: Reservations remembered (oldest forgotten first): bounds memory in a long-running process.
MAX_RESERVATIONS = 200_000


@dataclass
class Product:
    id: str
    name: str
    price_cents: int
    currency: str
    stock: int


@dataclass
class Reservation:
    id: str
    product_id: str
    quantity: int
    key: str | None
    released: bool = False


def default_catalog() -> list[Product]:
    return [
        Product("P-1001", "Espresso cup", 1299, "EUR", 100),
        Product("P-1002", "Coffee beans 1kg", 2450, "EUR", 40),
        Product("P-1003", "Grinder", 8999, "EUR", 5),
        Product("P-1004", "Milk jug", 1599, "EUR", 0),
    ]


def load_catalog(path: str | None) -> list[Product]:
    """The seeded catalogue, or the JSON list of products in ``PRODUCT_CATALOG_FILE``."""
    if not path:
        return default_catalog()
    try:
        with open(path, encoding="utf-8") as fh:
            return [Product(**item) for item in json.load(fh)]
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"PRODUCT_CATALOG_FILE={path!r}: {exc}") from None


class OutOfStock(Exception):
    def __init__(self, available: int) -> None:
        super().__init__(f"only {available} left")
        self.available = available


class Catalog:
    """Thread-safe in-memory catalogue and reservations."""

    def __init__(self, products: list[Product], max_reservations: int = MAX_RESERVATIONS) -> None:
        self._lock = threading.Lock()
        self._products = {p.id: Product(**asdict(p)) for p in products}
        self._reservations: OrderedDict[str, Reservation] = OrderedDict()
        self._by_key: dict[str, str] = {}
        self._max = max_reservations

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(p) for p in self._products.values()]

    def get(self, product_id: str) -> dict[str, Any] | None:
        with self._lock:
            product = self._products.get(product_id)
            return asdict(product) if product else None

    def _remember(self, reservation: Reservation) -> None:
        self._reservations[reservation.id] = reservation
        if reservation.key is not None:
            self._by_key[reservation.key] = reservation.id
        while len(self._reservations) > self._max:
            _, old = self._reservations.popitem(last=False)
            if old.key is not None:
                self._by_key.pop(old.key, None)

    def reserve(self, product_id: str, quantity: int,
                key: str | None = None) -> tuple[dict[str, Any], Reservation, bool] | None:
        """(product, reservation, replayed); None if the product does not exist."""
        with self._lock:
            product = self._products.get(product_id)
            if product is None:
                return None
            if key is not None and key in self._by_key:
                existing = self._reservations[self._by_key[key]]
                if (existing.product_id, existing.quantity) != (product_id, quantity) and not existing.released:
                    raise HTTPError(422, "Idempotency-Key was already used with a different request",
                                    code="idempotency_key_reused")
                if existing.released:
                    raise HTTPError(409, "this reservation was released", code="reservation_released",
                                    details={"reservation_id": existing.id})
                return asdict(product), existing, True
            if product.stock < quantity:
                raise OutOfStock(product.stock)
            product.stock -= quantity
            reservation = Reservation(f"res_{uuid.uuid4().hex}", product_id, quantity, key)
            self._remember(reservation)
            return asdict(product), reservation, False

    def release(self, product_id: str, reservation_id: str | None = None,
                key: str | None = None) -> tuple[dict[str, Any], int] | None:
        """(product, units returned now); None if the product or the reservation does not exist."""
        with self._lock:
            product = self._products.get(product_id)
            if product is None:
                return None
            rid = reservation_id if reservation_id is not None else self._by_key.get(key or "")
            reservation = self._reservations.get(rid or "")
            if reservation is None:
                if key is None:
                    return None
                # Released before it arrived (the reserve call timed out): a late reserve takes nothing.
                self._remember(Reservation(f"res_{uuid.uuid4().hex}", product_id, 0, key, released=True))
                return asdict(product), 0
            if reservation.product_id != product_id:
                return None
            if reservation.released:
                return asdict(product), 0
            reservation.released = True
            product.stock += reservation.quantity
            return asdict(product), reservation.quantity


def create_app(catalog: Catalog) -> App:
    app = App(SERVICE)
    reserved = app.metrics.counter("product_units_reserved_total", "Units of stock reserved.")
    released = app.metrics.counter("product_units_released_total", "Units of stock released by compensation.")

    def _not_found(product_id: str) -> HTTPError:
        return HTTPError(404, f"product {product_id!r} not found", code="product_not_found")

    @app.route("GET", "/products")
    def list_products(_req: Request):
        return {"products": catalog.list()}

    @app.route("GET", "/products/{id}")
    def get_product(req: Request):
        product = catalog.get(req.params["id"])
        if product is None:
            raise _not_found(req.params["id"])
        return product

    @app.route("POST", "/products/{id}/reserve")
    def reserve(req: Request):
        quantity = require_int(req.json_object(), "quantity", minimum=1, maximum=MAX_QUANTITY)
        key = idempotency_key(req.headers)
        try:
            result = catalog.reserve(req.params["id"], quantity, key)
        except OutOfStock as exc:
            raise HTTPError(409, f"insufficient stock for {req.params['id']}", code="insufficient_stock",
                            details={"available": exc.available, "requested": quantity}) from None
        if result is None:
            raise _not_found(req.params["id"])
        product, reservation, replayed = result
        if not replayed:
            reserved.labels(SERVICE).inc(quantity)
        return json_response({"reservation_id": reservation.id, "product_id": product["id"], "name": product["name"],
                              "quantity": quantity, "unit_price_cents": product["price_cents"],
                              "currency": product["currency"], "remaining_stock": product["stock"]},
                             headers=REPLAYED if replayed else None)

    @app.route("POST", "/products/{id}/release")
    def release(req: Request):
        body = req.json_object()
        reservation_id = require_str(body, "reservation_id", max_length=64) if "reservation_id" in body else None
        key = require_str(body, "reservation_key", max_length=128) if "reservation_key" in body else None
        if (reservation_id is None) == (key is None):
            raise HTTPError(400, "name the reservation: 'reservation_id' or 'reservation_key'",
                            code="validation_error", details={"field": "reservation_id"})
        result = catalog.release(req.params["id"], reservation_id, key)
        if result is None:
            raise HTTPError(404, "no such reservation for this product", code="reservation_not_found")
        product, units = result
        released.labels(SERVICE).inc(units)
        return {"product_id": product["id"], "released": units, "remaining_stock": product["stock"]}

    return app


def build_app() -> App:
    return create_app(Catalog(load_catalog(env_str("PRODUCT_CATALOG_FILE"))))


def main() -> int:
    return run_service(SERVICE, build_app)


if __name__ == "__main__":
    sys.exit(main())
