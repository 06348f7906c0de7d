from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest
from svc_common import UpstreamError, UpstreamResponse, UpstreamTimeout
from svc_common.db import DatabaseUnavailable

from services.order.app import Upstreams, create_app
from services.tests.fakes import FakeClient, FakeOrderRepo
from services.tests.helpers import call

CREATED = dt.datetime(2024, 5, 6, 7, 8, 9, 123000)


def reservation(payload, headers):
    return UpstreamResponse(200, {"reservation_id": "res_1", "product_id": "P-1", "quantity": payload["quantity"],
                                  "unit_price_cents": 1299, "currency": "EUR", "remaining_stock": 10})


def authorised(payload, headers):
    return UpstreamResponse(201, {"id": "pay_abc", "status": "authorized", "amount_cents": payload["amount_cents"],
                                  "reference": payload["reference"]})


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setattr("services.order.app.now_ms", lambda: CREATED)
    user = FakeClient("user", {("GET", "/users/1"): UpstreamResponse(200, {"id": 1, "name": "Ada"})})
    product = FakeClient("product", {
        ("POST", "/products/P-1/reserve"): reservation,
        ("POST", "/products/P-1/release"): UpstreamResponse(200, {"released": 3}),
    })
    payment = FakeClient("payment", {
        ("POST", "/payments"): authorised,
        ("POST", "/payments/void-by-reference"): UpstreamResponse(200, {"status": "voided"}),
    })
    repo = FakeOrderRepo()
    app = create_app(repo, Upstreams(user=user, product=product, payment=payment), pending_timeout=30)
    return app, repo, user, product, payment


ORDER = {"user_id": 1, "product_id": "P-1", "quantity": 3}
KEY = {"Idempotency-Key": "client-key-1"}


def test_place_order_happy_path(env):
    app, repo, user, product, payment = env
    status, body, resp = call(app, "POST", "/orders", ORDER)
    assert status == 201, body
    assert body == {"id": 1, "user_id": 1, "product_id": "P-1", "quantity": 3, "unit_price_cents": 1299,
                    "total_cents": 3897, "currency": "EUR", "payment_id": "pay_abc", "status": "confirmed",
                    "created_at": "2024-05-06T07:08:09.123000Z"}
    assert resp.headers["Location"] == "/orders/1"
    assert user.calls == [("GET", "/users/1", None)]
    assert product.calls == [("POST", "/products/P-1/reserve", {"quantity": 3})]
    pay = payment.calls[0][2]
    assert pay["amount_cents"] == 3897 and pay["currency"] == "EUR"
    assert pay["reference"] == repo.orders[1]["reference"]  # the attempt's reference, stored before any call
    assert call(app, "GET", "/orders/1")[1] == body
    assert app.metrics.registry.get_sample_value("orders_total", {"service": "order", "outcome": "created"}) == 1


def test_unknown_user_is_422_and_nothing_else_called(env):
    app, repo, user, product, payment = env
    status, body, _ = call(app, "POST", "/orders", {**ORDER, "user_id": 2})
    assert status == 422 and body["error"]["code"] == "user_not_found"
    assert product.calls == [] and payment.calls == []
    assert [r["status"] for r in repo.orders.values()] == ["failed"]


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
    ref = repo.orders[1]["reference"]
    assert product.calls[-1] == ("POST", "/products/P-1/release", {"reservation_key": ref})
    assert repo.by_status("confirmed") == [] and repo.orders[1]["idempotency_key"] is None  # key freed


@pytest.mark.parametrize("exc, status, code", [
    (UpstreamTimeout("user", "timed out after 2s"), 504, "upstream_timeout"),
    (UpstreamError("user", "unreachable"), 502, "upstream_unavailable"),
])
def test_upstream_failures_map_to_gateway_errors(env, exc, status, code):
    app, repo, user, product, payment = env
    user.routes[("GET", "/users/1")] = exc
    got, body, _ = call(app, "POST", "/orders", ORDER)
    assert got == status and body["error"]["code"] == code and body["error"]["details"]["upstream"] == "user"


def test_unexpected_upstream_status_is_502(env):
    app, repo, user, product, payment = env
    user.routes[("GET", "/users/1")] = UpstreamResponse(500, {"error": {}})
    status, body, _ = call(app, "POST", "/orders", ORDER)
    assert status == 502 and body["error"]["details"] == {"upstream": "user", "status": 500}


@pytest.mark.parametrize("payload", [
    {"product_id": "P-1", "quantity": 1},
    {"user_id": 0, "product_id": "P-1", "quantity": 1},
    {"user_id": 1, "product_id": "P 1/../x", "quantity": 1},
    {"user_id": 1, "product_id": "..", "quantity": 1},
    {"user_id": 1, "product_id": "P-1", "quantity": 0},
    {"user_id": 1, "product_id": "P-1", "quantity": 1001},
    {"user_id": 2**63, "product_id": "P-1", "quantity": 1},
])
def test_validation(env, payload):
    app, repo, user, *_ = env
    assert call(app, "POST", "/orders", payload)[0] == 400
    assert user.calls == [] and repo.orders == {}


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


def test_malformed_upstream_body_is_502_and_compensates(env):
    app, repo, user, product, payment = env
    payment.routes[("POST", "/payments")] = UpstreamResponse(201, {"status": "authorized"})  # no id
    status, body, _ = call(app, "POST", "/orders", ORDER)
    assert status == 502 and body["error"]["details"]["upstream"] == "payment"
    assert product.paths()[-1] == "/products/P-1/release" and "/payments/void-by-reference" in payment.paths()
    assert repo.by_status("confirmed") == []


# -- issue 22 item 1: Idempotency-Key ---------------------------------------------------------------
def test_same_key_in_a_row_creates_one_order(env):
    app, repo, user, product, payment = env
    first = call(app, "POST", "/orders", ORDER, headers=KEY)
    again = call(app, "POST", "/orders", ORDER, headers=KEY)
    assert first[0] == again[0] == 201 and again[1] == first[1]
    assert again[2].headers["Idempotent-Replayed"] == "true"
    assert len(repo.orders) == 1 and len(payment.calls) == 1 and len(product.calls) == 1


def test_key_passed_on_is_derived_and_per_attempt(env):
    app, repo, user, product, payment = env
    seen = []
    payment.routes[("POST", "/payments")] = lambda p, h: (seen.append(h["Idempotency-Key"]), authorised(p, h))[1]
    call(app, "POST", "/orders", ORDER, headers=KEY)
    call(app, "POST", "/orders", ORDER, headers={"Idempotency-Key": "client-key-2"})
    assert seen == [repo.orders[1]["reference"], repo.orders[2]["reference"]] and seen[0] != seen[1]
    assert all(ref.startswith("ord_") for ref in seen)


def test_concurrent_repeats_create_one_order(env):
    app, repo, user, product, payment = env
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: call(app, "POST", "/orders", ORDER, headers=KEY), range(16)))
    statuses = {r[0] for r in results}
    assert statuses <= {201, 409} and 201 in statuses
    assert all(r[1]["error"]["code"] == "order_in_progress" for r in results if r[0] == 409)
    assert len(repo.orders) == 1 and len(payment.calls) == 1
    assert call(app, "POST", "/orders", ORDER, headers=KEY)[1]["id"] == 1  # settled: replays


def test_same_key_other_body_is_422(env):
    app, repo, *_ = env
    call(app, "POST", "/orders", ORDER, headers=KEY)
    status, body, _ = call(app, "POST", "/orders", {**ORDER, "quantity": 4}, headers=KEY)
    assert status == 422 and body["error"]["code"] == "idempotency_key_reused" and len(repo.orders) == 1


def test_a_failed_attempt_frees_the_key_for_a_retry(env):
    app, repo, user, product, payment = env
    payment.routes[("POST", "/payments")] = UpstreamResponse(402, {"error": {"code": "payment_declined"}})
    assert call(app, "POST", "/orders", ORDER, headers=KEY)[0] == 402
    payment.routes[("POST", "/payments")] = authorised
    status, body, _ = call(app, "POST", "/orders", ORDER, headers=KEY)
    assert status == 201 and body["id"] == 2 and len(repo.by_status("confirmed")) == 1


# -- issue 22 item 2: a payment timeout leaves no authorisation without an order -------------------
def test_payment_timeout_voids_by_reference_and_releases(env):
    app, repo, user, product, payment = env
    payment.routes[("POST", "/payments")] = UpstreamTimeout("payment", "timed out")
    assert call(app, "POST", "/orders", ORDER)[0] == 504
    ref = repo.orders[1]["reference"]
    assert payment.calls[-1] == ("POST", "/payments/void-by-reference", {"reference": ref})
    assert product.calls[-1] == ("POST", "/products/P-1/release", {"reservation_key": ref})
    assert repo.orders[1]["status"] == "failed"


def test_unsettled_attempt_is_reconciled(env):
    """The timeout's void fails too (payment frozen): the attempt stays pending, a retry is told to
    wait, and the reconciler voids, releases and frees the key once the attempt is stale."""
    app, repo, user, product, payment = env
    payment.routes[("POST", "/payments")] = UpstreamTimeout("payment", "timed out")
    payment.routes[("POST", "/payments/void-by-reference")] = UpstreamTimeout("payment", "timed out")
    assert call(app, "POST", "/orders", ORDER, headers=KEY)[0] == 504
    assert repo.orders[1]["status"] == "pending"
    status, body, resp = call(app, "POST", "/orders", ORDER, headers=KEY)
    assert status == 409 and body["error"]["code"] == "order_in_progress" and resp.headers["Retry-After"] == "1"
    assert app.orders.reconcile() == 0  # not stale yet
    payment.routes[("POST", "/payments/void-by-reference")] = UpstreamResponse(200, {"status": "voided"})
    repo.now += 31
    assert app.orders.reconcile() == 1
    ref = repo.orders[1]["reference"]
    assert payment.calls[-1] == ("POST", "/payments/void-by-reference", {"reference": ref})
    assert product.calls[-1] == ("POST", "/products/P-1/release", {"reservation_key": ref})
    assert repo.orders[1]["status"] == "failed"
    payment.routes[("POST", "/payments")] = authorised
    assert call(app, "POST", "/orders", ORDER, headers=KEY)[0] == 201  # the retry goes through


def test_reconciler_and_a_slow_confirm_never_both_win(env):
    app, repo, user, product, payment = env

    def slow_payment(p, h):  # the reconciler claims the attempt while payment is answering
        repo.now += 31
        app.orders.reconcile()
        return authorised(p, h)

    payment.routes[("POST", "/payments")] = slow_payment
    status, body, _ = call(app, "POST", "/orders", ORDER)
    assert status == 503 and body["error"]["code"] == "order_expired"
    assert repo.orders[1]["status"] == "failed" and "/payments/void-by-reference" in payment.paths()


# -- issue 22 item 4: a failure after the commit never compensates an order that exists -----------
def test_confirm_committed_then_failed_is_not_compensated(env):
    app, repo, user, product, payment = env
    repo.fail_confirm, repo.confirm_commits_then_fails = DatabaseUnavailable("lost connection"), True
    status, body, resp = call(app, "POST", "/orders", ORDER, headers=KEY)
    assert status == 503 and body["error"]["code"] == "storage_unavailable" and resp.headers["Retry-After"]
    assert "/payments/void-by-reference" not in payment.paths()
    assert "/products/P-1/release" not in product.paths()
    assert repo.orders[1]["status"] == "confirmed"
    repo.fail_confirm = None
    status, body, _ = call(app, "POST", "/orders", ORDER, headers=KEY)  # the client's retry
    assert status == 201 and body["payment_id"] == "pay_abc" and len(repo.orders) == 1
    repo.now += 31
    assert app.orders.reconcile() == 0 and repo.orders[1]["status"] == "confirmed"


def test_confirm_that_did_not_commit_is_settled_by_the_reconciler(env):
    app, repo, user, product, payment = env
    repo.fail_confirm = DatabaseUnavailable("lost connection")
    assert call(app, "POST", "/orders", ORDER)[0] == 503
    assert "/payments/void-by-reference" not in payment.paths()  # not in the request: it may have committed
    repo.fail_confirm = None
    repo.now += 31
    assert app.orders.reconcile() == 1 and repo.orders[1]["status"] == "failed"
    assert "/payments/void-by-reference" in payment.paths()


# -- issue 22 item 7: an upstream or database outage is 503 with Retry-After, not 502 ---------------
def test_user_service_503_is_passed_on_as_503(env):
    app, repo, user, *_ = env
    user.routes[("GET", "/users/1")] = UpstreamResponse(503, {"error": {"code": "database_unavailable"}},
                                                        {"retry-after": "2"})
    status, body, resp = call(app, "POST", "/orders", ORDER)
    assert status == 503 and body["error"]["code"] == "upstream_unavailable"
    assert resp.headers["Retry-After"] == "2"


def test_own_database_down_is_503(env):
    app, repo, user, *_ = env
    repo.fail_start = DatabaseUnavailable("cannot connect")
    status, body, resp = call(app, "POST", "/orders", ORDER)
    assert status == 503 and body["error"]["code"] == "database_unavailable" and resp.headers["Retry-After"]
    assert user.calls == []
