"""product service: in-memory catalogue with stock reservation.

GET  /products                 -> 200 {"products": [...]}
GET  /products/{id}            -> 200 | 404
POST /products/{id}/reserve    {"quantity": int >= 1} -> 200 reservation | 404 | 409 insufficient stock
POST /products/{id}/release    {"quantity": int >= 1} -> 200 (compensation for a failed order) | 404
"""

from __future__ import annotations

import sys
import threading
from dataclasses import asdict, dataclass
from typing import Any

from svc_common import App, HTTPError, Request, json_response, require_int, run_service

SERVICE = "product"
MAX_QUANTITY = 1000


@dataclass
class Product:
    id: str
    name: str
    price_cents: int
    currency: str
    stock: int


def default_catalog() -> list[Product]:
    return [
        Product("P-1001", "Espresso cup", 1299, "EUR", 100),
        Product("P-1002", "Coffee beans 1kg", 2450, "EUR", 40),
        Product("P-1003", "Grinder", 8999, "EUR", 5),
        Product("P-1004", "Milk jug", 1599, "EUR", 0),
    ]


class OutOfStock(Exception):
    def __init__(self, available: int) -> None:
        super().__init__(f"only {available} left")
        self.available = available


class Catalog:
    """Thread-safe in-memory catalogue."""

    def __init__(self, products: list[Product]) -> None:
        self._lock = threading.Lock()
        self._products = {p.id: Product(**asdict(p)) for p in products}

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(p) for p in self._products.values()]

    def get(self, product_id: str) -> dict[str, Any] | None:
        with self._lock:
            product = self._products.get(product_id)
            return asdict(product) if product else None

    def reserve(self, product_id: str, quantity: int) -> dict[str, Any] | None:
        with self._lock:
            product = self._products.get(product_id)
            if product is None:
                return None
            if product.stock < quantity:
                raise OutOfStock(product.stock)
            product.stock -= quantity
            return asdict(product)

    def release(self, product_id: str, quantity: int) -> dict[str, Any] | None:
        with self._lock:
            product = self._products.get(product_id)
            if product is None:
                return None
            product.stock += quantity
            return asdict(product)


def create_app(catalog: Catalog) -> App:
    app = App(SERVICE)
    reserved = app.metrics.counter("product_units_reserved_total", "Units of stock reserved.")

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
        try:
            product = catalog.reserve(req.params["id"], quantity)
        except OutOfStock as exc:
            raise HTTPError(409, f"insufficient stock for {req.params['id']}", code="insufficient_stock",
                            details={"available": exc.available, "requested": quantity}) from None
        if product is None:
            raise _not_found(req.params["id"])
        reserved.labels(SERVICE).inc(quantity)
        return json_response({"product_id": product["id"], "name": product["name"], "quantity": quantity,
                              "unit_price_cents": product["price_cents"], "currency": product["currency"],
                              "remaining_stock": product["stock"]})

    @app.route("POST", "/products/{id}/release")
    def release(req: Request):
        quantity = require_int(req.json_object(), "quantity", minimum=1, maximum=MAX_QUANTITY)
        product = catalog.release(req.params["id"], quantity)
        if product is None:
            raise _not_found(req.params["id"])
        return {"product_id": product["id"], "released": quantity, "remaining_stock": product["stock"]}

    return app


def build_app() -> App:
    return create_app(Catalog(default_catalog()))


def main() -> int:
    return run_service(SERVICE, build_app)


if __name__ == "__main__":
    sys.exit(main())
