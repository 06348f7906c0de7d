from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from services.payment.app import create_app
from services.tests.fakes import FakePaymentRepo
from services.tests.helpers import call


@pytest.fixture
def repo():
    return FakePaymentRepo()


@pytest.fixture
def app(repo):
    return create_app(repo, max_amount_cents=10_000)


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


@pytest.mark.parametrize("amount", [0, -5, 1.5, "10", True, None, 2**63])
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


# -- issue 22 item 1: idempotency ---------------------------------------------------------------
PAY = {"amount_cents": 500, "currency": "EUR", "user_id": 7, "reference": "ord_abc_1"}


def test_same_key_in_a_row_returns_the_first_payment(app, repo):
    first = call(app, "POST", "/payments", PAY, headers={"Idempotency-Key": "k-1"})
    again = call(app, "POST", "/payments", PAY, headers={"Idempotency-Key": "k-1"})
    assert first[0] == again[0] == 201
    assert again[1] == first[1] and again[2].headers["Idempotent-Replayed"] == "true"
    assert len(repo.rows) == 1


def test_concurrent_repeats_create_one(app, repo):
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: call(app, "POST", "/payments", PAY, headers={"Idempotency-Key": "k-2"}),
                                range(16)))
    assert {r[0] for r in results} == {201}
    assert len({r[1]["id"] for r in results}) == 1 and len(repo.rows) == 1


def test_same_key_other_body_is_422(app):
    call(app, "POST", "/payments", PAY, headers={"Idempotency-Key": "k-3"})
    status, body, _ = call(app, "POST", "/payments", {**PAY, "amount_cents": 501}, headers={"Idempotency-Key": "k-3"})
    assert status == 422 and body["error"]["code"] == "idempotency_key_reused"


def test_declined_replays_as_declined(app, repo):
    big = {**PAY, "amount_cents": 10_001}
    assert call(app, "POST", "/payments", big, headers={"Idempotency-Key": "k-4"})[0] == 402
    assert call(app, "POST", "/payments", big, headers={"Idempotency-Key": "k-4"})[0] == 402
    assert len(repo.rows) == 1


def test_reference_is_unique(app, repo):
    assert call(app, "POST", "/payments", PAY)[0] == 201
    status, body, _ = call(app, "POST", "/payments", PAY)  # no key: a second authorisation is refused
    assert status == 409 and body["error"]["code"] == "duplicate_reference"
    assert len(repo.rows) == 1


@pytest.mark.parametrize("header", ["", "a" * 129, "with space", "naïve"])
def test_malformed_key_is_400(app, header):
    status, body, _ = call(app, "POST", "/payments", PAY, headers={"Idempotency-Key": header})
    assert status == 400 and body["error"]["code"] == "invalid_idempotency_key"


def test_find_by_reference(app):
    created = call(app, "POST", "/payments", PAY)[1]
    assert call(app, "GET", "/payments?reference=ord_abc_1")[1] == created
    assert call(app, "GET", "/payments?reference=nope")[0] == 404
    assert call(app, "GET", "/payments")[0] == 400


# -- issue 22 item 2: uncertain outcomes are settled by reference ----------------------------------
def test_void_by_reference_voids_the_authorisation(app):
    created = call(app, "POST", "/payments", PAY, headers={"Idempotency-Key": "ord_abc_1"})[1]
    status, body, _ = call(app, "POST", "/payments/void-by-reference", {"reference": "ord_abc_1"})
    assert status == 200 and body["id"] == created["id"] and body["status"] == "voided"
    again = call(app, "POST", "/payments/void-by-reference", {"reference": "ord_abc_1"})
    assert again[0] == 200 and again[1]["status"] == "voided"


def test_void_before_the_authorisation_arrives_refuses_it(app, repo):
    """The order service timed out and voided; the original request reaches payment late."""
    status, body, _ = call(app, "POST", "/payments/void-by-reference", {"reference": "ord_late_1"})
    assert status == 200 and body["status"] == "voided" and body["amount_cents"] is None
    late = call(app, "POST", "/payments", {**PAY, "reference": "ord_late_1"}, headers={"Idempotency-Key": "ord_late_1"})
    assert late[0] == 409 and late[1]["error"]["code"] == "duplicate_reference"
    assert [r["status"] for r in repo.rows.values()] == ["voided"]  # no authorisation left behind


def test_void_by_reference_leaves_a_declined_payment(app):
    call(app, "POST", "/payments", {**PAY, "amount_cents": 10_001})
    status, body, _ = call(app, "POST", "/payments/void-by-reference", {"reference": PAY["reference"]})
    assert status == 200 and body["status"] == "declined"


def test_readiness_reflects_database(app, repo):
    assert call(app, "GET", "/readyz")[0] == 200
    repo.ready_error = RuntimeError("connection refused")
    status, body, _ = call(app, "GET", "/readyz")
    assert status == 503 and body["checks"]["database"] == "error: connection refused"
