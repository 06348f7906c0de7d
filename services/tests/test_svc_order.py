from __future__ import annotations

import datetime as dt
import itertools

import pytest
from svc_common import UpstreamError, UpstreamResponse, UpstreamTimeout

from services.order.app import Upstreams, create_app
from services.tests.helpers import call


class FakeClient:
    """Stands in for ServiceClient: routes (method, path) to canned responses and records calls."""

    def __init__(self, name, routes):
        self.name = name
        self.metrics = None
        self.routes = routes  # {(method, path): UpstreamResponse | Exception | callable}
        self.calls = []

    def request(self, method, path, payload=None):
        self.calls.append((method, path, payload))
        result = self.routes.get((method, path), UpstreamResponse(404, {"error": {"code": "not_found"}}))
        if callable(result) and not isinstance(result, UpstreamResponse):
            result = result(payload)
        if isinstance(result, Exception):
            raise result
        return result

    def post(self, path, payload):
        return self.request("POST", path, payload)

    def get(self, path):
        return self.request("GET", path)


class FakeOrderRepo:
    def __init__(self):
        self.orders = {}
        self.ids = itertools.count(1)
        self.fail = False

    def create(self, order):
        if self.fail:
            raise RuntimeError("db down")
        row = {"id": next(self.ids), **order, "created_at": dt.datetime(2024, 5, 6, 7, 8, 9)}
        self.orders[row["id"]] = row
        return row

    def get(self, order_id):
        return self.orders.get(order_id)

    def check_ready(self):
        pass


def reservation(payload):
    return UpstreamResponse(200, {"product_id": "P-1", "quantity": payload["quantity"], "unit_price_cents": 1299,
                                  "currency": "EUR", "remaining_stock": 10})


@pytest.fixture
def env():
    user = FakeClient("user", {("GET", "/users/1"): UpstreamResponse(200, {"id": 1, "name": "Ada"})})
    product = FakeClient("product", {
        ("POST", "/products/P-1/reserve"): reservation,
        ("POST", "/products/P-1/release"): UpstreamResponse(200, {"released": 1}),
    })
    payment = FakeClient("payment", {
        ("POST", "/payments"): lambda p: UpstreamResponse(201, {"id": "pay_abc", "status": "authorized",
                                                                "amount_cents": p["amount_cents"]}),
        ("POST", "/payments/pay_abc/void"): UpstreamResponse(200, {"status": "voided"}),
    })
    repo = FakeOrderRepo()
    app = create_app(repo, Upstreams(user=user, product=product, payment=payment))
    return app, repo, user, product, payment


ORDER = {"user_id": 1, "product_id": "P-1", "quantity": 3}


def test_place_order_happy_path(env):
    app, repo, user, product, payment = env
    status, body, resp = call(app, "POST", "/orders", ORDER)
    assert status == 201, body
    assert body == {"id": 1, "user_id": 1, "product_id": "P-1", "quantity": 3, "unit_price_cents": 1299,
                    "total_cents": 3897, "currency": "EUR", "payment_id": "pay_abc", "status": "confirmed",
                    "created_at": "2024-05-06T07:08:09Z"}
    assert resp.headers["Location"] == "/orders/1"
    assert user.calls == [("GET", "/users/1", None)]
    assert product.calls == [("POST", "/products/P-1/reserve", {"quantity": 3})]
    assert payment.calls[0][2]["amount_cents"] == 3897 and payment.calls[0][2]["currency"] == "EUR"
    assert call(app, "GET", "/orders/1")[1] == body
    assert app.metrics.registry.get_sample_value("orders_total", {"service": "order", "outcome": "created"}) == 1


def test_unknown_user_is_422_and_nothing_else_called(env):
    app, repo, user, product, payment = env
    status, body, _ = call(app, "POST", "/orders", {**ORDER, "user_id": 2})
    assert status == 422 and body["error"]["code"] == "user_not_found"
    assert product.calls == [] and payment.calls == [] and repo.orders == {}


def test_unknown_product_is_422(env):
    app, *_ = env
    status, body, _ = call(app, "POST", "/orders", {**ORDER, "product_id": "P-9"})
    assert status == 422 and body["error"]["code"] == "product_not_found"


def test_insufficient_stock_is_409(env):
    app, repo, user, product, payment = env
    product.routes[("POST", "/products/P-1/reserve")] = UpstreamResponse(
        409, {"error": {"code": "insufficient_stock", "details": {"available": 1, "requested": 3}}})
    status, body, _ = call(app, "POST", "/orders", ORDER)
    assert status == 409 and body["error"]["details"] == {"available": 1, "requested": 3}
    assert payment.calls == []


def test_payment_declined_releases_stock(env):
    app, repo, user, product, payment = env
    payment.routes[("POST", "/payments")] = UpstreamResponse(402, {"error": {"code": "payment_declined"}})
    status, body, _ = call(app, "POST", "/orders", ORDER)
    assert status == 402 and body["error"]["code"] == "payment_declined"
    assert product.calls[-1] == ("POST", "/products/P-1/release", {"quantity": 3})
    assert repo.orders == {}


@pytest.mark.parametrize("exc, status, code", [
    (UpstreamTimeout("user", "timed out after 2s"), 504, "upstream_timeout"),
    (UpstreamError("user", "unreachable"), 502, "upstream_unavailable"),
])
def test_upstream_failures_map_to_gateway_errors(env, exc, status, code):
    app, repo, user, product, payment = env
    user.routes[("GET", "/users/1")] = exc
    got, body, _ = call(app, "POST", "/orders", ORDER)
    assert got == status and body["error"]["code"] == code and body["error"]["details"]["upstream"] == "user"


def test_payment_timeout_releases_stock(env):
    app, repo, user, product, payment = env
    payment.routes[("POST", "/payments")] = UpstreamTimeout("payment", "timed out")
    assert call(app, "POST", "/orders", ORDER)[0] == 504
    assert product.calls[-1][1] == "/products/P-1/release"


def test_unexpected_upstream_status_is_502(env):
    app, repo, user, product, payment = env
    user.routes[("GET", "/users/1")] = UpstreamResponse(500, {"error": {}})
    status, body, _ = call(app, "POST", "/orders", ORDER)
    assert status == 502 and body["error"]["details"] == {"upstream": "user", "status": 500}


def test_storage_failure_compensates(env):
    app, repo, user, product, payment = env
    repo.fail = True
    status, body, _ = call(app, "POST", "/orders", ORDER)
    assert status == 503 and body["error"]["code"] == "storage_unavailable"
    assert payment.calls[-1][:2] == ("POST", "/payments/pay_abc/void")
    assert product.calls[-1][1] == "/products/P-1/release"


@pytest.mark.parametrize("payload", [
    {"product_id": "P-1", "quantity": 1},
    {"user_id": 0, "product_id": "P-1", "quantity": 1},
    {"user_id": 1, "product_id": "P 1/../x", "quantity": 1},
    {"user_id": 1, "product_id": "..", "quantity": 1},
    {"user_id": 1, "product_id": "P-1", "quantity": 0},
    {"user_id": 1, "product_id": "P-1", "quantity": 1001},
])
def test_validation(env, payload):
    app, repo, user, *_ = env
    assert call(app, "POST", "/orders", payload)[0] == 400
    assert user.calls == []


def test_get_missing_order(env):
    app, *_ = env
    assert call(app, "GET", "/orders/42")[0] == 404
    assert call(app, "GET", "/orders/x")[0] == 404


def test_metrics_labels(env):
    app, *_ = env
    call(app, "POST", "/orders", ORDER)
    call(app, "GET", "/orders/1")
    reg = app.metrics.registry
    assert reg.get_sample_value("http_requests_total", {"service": "order", "route": "/orders",
                                                        "method": "POST", "status": "201"}) == 1
    assert reg.get_sample_value("http_request_duration_seconds_count", {
        "service": "order", "route": "/orders/{id}", "method": "GET", "status": "200"}) == 1


def test_malformed_upstream_body_is_502_and_releases_stock(env):
    app, repo, user, product, payment = env
    payment.routes[("POST", "/payments")] = UpstreamResponse(201, {"status": "authorized"})  # no id
    status, body, _ = call(app, "POST", "/orders", ORDER)
    assert status == 502 and body["error"]["details"]["upstream"] == "payment"
    assert product.calls[-1][1] == "/products/P-1/release" and repo.orders == {}
