from __future__ import annotations

import pytest

from services.payment.app import PaymentStore, create_app
from services.tests.helpers import call


@pytest.fixture
def app():
    return create_app(PaymentStore(max_amount_cents=10_000))


def test_authorize_returns_payment_id(app):
    status, body, resp = call(app, "POST", "/payments", {"amount_cents": 2598, "currency": "EUR", "user_id": 3})
    assert status == 201
    assert body["id"].startswith("pay_") and body["status"] == "authorized"
    assert (body["amount_cents"], body["currency"], body["user_id"]) == (2598, "EUR", 3)
    assert resp.headers["Location"] == f"/payments/{body['id']}"
    assert call(app, "GET", f"/payments/{body['id']}")[1] == body


def test_ids_are_unique(app):
    ids = {call(app, "POST", "/payments", {"amount_cents": 1})[1]["id"] for _ in range(20)}
    assert len(ids) == 20


@pytest.mark.parametrize("amount", [0, -5, 1.5, "10", True, None])
def test_amount_must_be_positive_integer(app, amount):
    status, body, _ = call(app, "POST", "/payments", {"amount_cents": amount})
    assert status == 400
    assert body["error"]["code"] == "validation_error"
    assert body["error"]["details"]["field"] == "amount_cents"


def test_bad_currency(app):
    status, body, _ = call(app, "POST", "/payments", {"amount_cents": 1, "currency": "euro"})
    assert status == 400 and body["error"]["details"]["field"] == "currency"


def test_over_limit_is_declined(app):
    status, body, _ = call(app, "POST", "/payments", {"amount_cents": 10_001})
    assert status == 402 and body["error"]["code"] == "payment_declined"
    payment_id = body["error"]["details"]["payment_id"]
    assert call(app, "GET", f"/payments/{payment_id}")[1]["status"] == "declined"
    assert app.metrics.registry.get_sample_value(
        "payments_total", {"service": "payment", "outcome": "declined"}) == 1


def test_void(app):
    payment_id = call(app, "POST", "/payments", {"amount_cents": 100})[1]["id"]
    status, body, _ = call(app, "POST", f"/payments/{payment_id}/void", {})
    assert status == 200 and body["status"] == "voided"
    assert call(app, "POST", f"/payments/{payment_id}/void", {})[0] == 409
    assert call(app, "POST", "/payments/pay_nope/void", {})[0] == 404


def test_unknown_payment(app):
    assert call(app, "GET", "/payments/pay_missing")[0] == 404


def test_metrics_labels(app):
    call(app, "POST", "/payments", {"amount_cents": 100})
    call(app, "GET", "/payments/pay_missing")
    text = call(app, "GET", "/metrics")[2].body.decode()
    assert 'http_requests_total{method="POST",route="/payments",service="payment",status="201"} 1.0' in text
    assert 'route="/payments/{id}",service="payment",status="404"' in text
