from __future__ import annotations

import threading

import pytest

from services.product.app import Catalog, Product, create_app, default_catalog
from services.tests.helpers import call


@pytest.fixture
def app():
    return create_app(Catalog(default_catalog()))


def test_list_is_seeded(app):
    status, body, _ = call(app, "GET", "/products")
    assert status == 200
    ids = [p["id"] for p in body["products"]]
    assert "P-1001" in ids and len(ids) >= 3
    assert all(p["price_cents"] > 0 for p in body["products"])


def test_get_and_404(app):
    status, body, _ = call(app, "GET", "/products/P-1001")
    assert status == 200 and body["name"] == "Espresso cup" and body["price_cents"] == 1299
    status, body, _ = call(app, "GET", "/products/nope")
    assert status == 404 and body["error"]["code"] == "product_not_found"


def test_reserve_decrements_stock(app):
    before = call(app, "GET", "/products/P-1003")[1]["stock"]
    status, body, _ = call(app, "POST", "/products/P-1003/reserve", {"quantity": 2})
    assert status == 200
    assert body.pop("reservation_id").startswith("res_")
    assert body == {"product_id": "P-1003", "name": "Grinder", "quantity": 2, "unit_price_cents": 8999,
                    "currency": "EUR", "remaining_stock": before - 2}
    assert call(app, "GET", "/products/P-1003")[1]["stock"] == before - 2


def test_reserve_insufficient_stock_is_409_and_unchanged(app):
    status, body, _ = call(app, "POST", "/products/P-1003/reserve", {"quantity": 6})
    assert status == 409 and body["error"]["code"] == "insufficient_stock"
    assert body["error"]["details"] == {"available": 5, "requested": 6}
    assert call(app, "GET", "/products/P-1003")[1]["stock"] == 5


@pytest.mark.parametrize("payload", [{}, {"quantity": 0}, {"quantity": "2"}, {"quantity": 10_000}])
def test_reserve_validation(app, payload):
    assert call(app, "POST", "/products/P-1001/reserve", payload)[0] == 400


def test_reserve_unknown_product(app):
    assert call(app, "POST", "/products/nope/reserve", {"quantity": 1})[0] == 404


def test_release(app):
    reservation = call(app, "POST", "/products/P-1002/reserve", {"quantity": 4})[1]
    status, body, _ = call(app, "POST", "/products/P-1002/release", {"reservation_id": reservation["reservation_id"]})
    assert status == 200 and body["remaining_stock"] == 40 and body["released"] == 4


# -- issue 22 item 11: release only returns stock a reservation took -------------------------------
def stock(app, product_id="P-1002"):
    return call(app, "GET", f"/products/{product_id}")[1]["stock"]


@pytest.mark.parametrize("payload", [{"quantity": 4}, {}, {"reservation_id": "res_x", "reservation_key": "k"}])
def test_release_without_a_reservation_is_refused(app, payload):
    status, body, _ = call(app, "POST", "/products/P-1002/release", payload)
    assert status == 400 and stock(app) == 40


def test_release_of_an_unknown_or_foreign_reservation_is_404(app):
    other = call(app, "POST", "/products/P-1001/reserve", {"quantity": 1})[1]["reservation_id"]
    for rid in ("res_unknown", other):
        status, body, _ = call(app, "POST", "/products/P-1002/release", {"reservation_id": rid})
        assert status == 404 and body["error"]["code"] == "reservation_not_found"
    assert stock(app) == 40


def test_release_twice_returns_the_stock_once(app):
    rid = call(app, "POST", "/products/P-1002/reserve", {"quantity": 4})[1]["reservation_id"]
    assert call(app, "POST", "/products/P-1002/release", {"reservation_id": rid})[1]["released"] == 4
    assert call(app, "POST", "/products/P-1002/release", {"reservation_id": rid})[1]["released"] == 0
    assert stock(app) == 40


def test_reserve_with_a_key_takes_stock_once(app):
    key = {"Idempotency-Key": "ord_1"}
    first = call(app, "POST", "/products/P-1002/reserve", {"quantity": 4}, headers=key)
    again = call(app, "POST", "/products/P-1002/reserve", {"quantity": 4}, headers=key)
    assert again[1]["reservation_id"] == first[1]["reservation_id"] and again[2].headers["Idempotent-Replayed"]
    assert stock(app) == 36
    assert call(app, "POST", "/products/P-1002/release", {"reservation_key": "ord_1"})[1]["released"] == 4
    assert stock(app) == 40


def test_release_by_key_before_the_reserve_arrives(app):
    """The order service timed out on reserve and released by key; the reserve arrives late."""
    status, body, _ = call(app, "POST", "/products/P-1002/release", {"reservation_key": "ord_late"})
    assert status == 200 and body["released"] == 0
    status, body, _ = call(app, "POST", "/products/P-1002/reserve", {"quantity": 4},
                           headers={"Idempotency-Key": "ord_late"})
    assert status == 409 and body["error"]["code"] == "reservation_released" and stock(app) == 40


def test_catalog_file(tmp_path, monkeypatch):
    from services.product.app import build_app

    path = tmp_path / "catalog.json"
    path.write_text('[{"id": "X-1", "name": "x", "price_cents": 5, "currency": "EUR", "stock": 100000}]')
    monkeypatch.setenv("PRODUCT_CATALOG_FILE", str(path))
    assert call(build_app(), "GET", "/products")[1]["products"][0]["stock"] == 100000


def test_concurrent_reservations_never_oversell():
    catalog = Catalog([Product("X", "x", 100, "EUR", 50)])
    results = []

    def worker():
        for _ in range(10):
            try:
                results.append(catalog.reserve("X", 1) is not None)
            except Exception:  # OutOfStock
                results.append(False)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 50 and catalog.get("X")["stock"] == 0


def test_metrics_route_template(app):
    call(app, "GET", "/products/P-1001")
    call(app, "POST", "/products/P-1001/reserve", {"quantity": 1})
    reg = app.metrics.registry
    assert reg.get_sample_value("http_requests_total", {"service": "product", "route": "/products/{id}",
                                                        "method": "GET", "status": "200"}) == 1
    assert reg.get_sample_value("http_requests_total", {"service": "product", "route": "/products/{id}/reserve",
                                                        "method": "POST", "status": "200"}) == 1
    assert reg.get_sample_value("product_units_reserved_total", {"service": "product"}) == 1
