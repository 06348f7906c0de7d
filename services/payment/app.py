"""payment service: authorises payments (in memory).

POST /payments            {"amount_cents": int > 0, "currency": "EUR", "user_id": int?, "reference": str?}
                          -> 201 authorised | 400 invalid | 402 declined (over PAYMENT_MAX_AMOUNT_CENTS)
GET  /payments/{id}       -> 200 | 404
POST /payments/{id}/void  -> 200 (releases an authorisation) | 404 | 409 already voided
"""

from __future__ import annotations

import re
import sys
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from svc_common import App, HTTPError, Request, env_int, json_response, require_int, require_str, run_service

SERVICE = "payment"
CURRENCY = re.compile(r"^[A-Z]{3}$")


class PaymentStore:
    """Thread-safe in-memory payment ledger."""

    def __init__(self, max_amount_cents: int) -> None:
        self.max_amount_cents = max_amount_cents
        self._lock = threading.Lock()
        self._payments: dict[str, dict[str, Any]] = {}

    def authorize(self, amount_cents: int, currency: str, user_id: int | None,
                  reference: str | None) -> dict[str, Any]:
        if amount_cents <= 0:
            raise ValueError("amount must be > 0")
        payment = {
            "id": f"pay_{uuid.uuid4().hex}",
            "status": "authorized" if amount_cents <= self.max_amount_cents else "declined",
            "amount_cents": amount_cents,
            "currency": currency,
            "user_id": user_id,
            "reference": reference,
            "created_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        with self._lock:
            self._payments[payment["id"]] = payment
        return dict(payment)

    def get(self, payment_id: str) -> dict[str, Any] | None:
        with self._lock:
            payment = self._payments.get(payment_id)
            return dict(payment) if payment else None

    def void(self, payment_id: str) -> dict[str, Any] | None:
        with self._lock:
            payment = self._payments.get(payment_id)
            if payment is None:
                return None
            if payment["status"] != "authorized":
                raise ValueError(f"payment is {payment['status']}")
            payment["status"] = "voided"
            return dict(payment)


def create_app(store: PaymentStore) -> App:
    app = App(SERVICE)
    outcomes = app.metrics.counter("payments_total", "Payment authorisations by outcome.", ("outcome",))

    @app.route("POST", "/payments")
    def authorize(req: Request):
        body = req.json_object()
        amount = require_int(body, "amount_cents")
        if amount <= 0:
            raise HTTPError(400, "'amount_cents' must be > 0", code="validation_error",
                            details={"field": "amount_cents"})
        currency = require_str(body, "currency", max_length=3, pattern=CURRENCY) if "currency" in body else "EUR"
        user_id = require_int(body, "user_id", minimum=1) if body.get("user_id") is not None else None
        reference = require_str(body, "reference", max_length=128) if body.get("reference") is not None else None
        payment = store.authorize(amount, currency, user_id, reference)
        outcomes.labels(SERVICE, payment["status"]).inc()
        if payment["status"] != "authorized":
            raise HTTPError(402, "payment declined", code="payment_declined",
                            details={"payment_id": payment["id"], "max_amount_cents": store.max_amount_cents})
        return json_response(payment, 201, {"Location": f"/payments/{payment['id']}"})

    @app.route("GET", "/payments/{id}")
    def get_payment(req: Request):
        payment = store.get(req.params["id"])
        if payment is None:
            raise HTTPError(404, "payment not found")
        return payment

    @app.route("POST", "/payments/{id}/void")
    def void_payment(req: Request):
        try:
            payment = store.void(req.params["id"])
        except ValueError as exc:
            raise HTTPError(409, str(exc), code="invalid_state") from None
        if payment is None:
            raise HTTPError(404, "payment not found")
        outcomes.labels(SERVICE, "voided").inc()
        return payment

    return app


def build_app() -> App:
    return create_app(PaymentStore(env_int("PAYMENT_MAX_AMOUNT_CENTS", 1_000_000, minimum=1)))


def main() -> int:
    return run_service(SERVICE, build_app)


if __name__ == "__main__":
    sys.exit(main())
