"""payment service: authorises payments, in its own MySQL/MariaDB database.

POST /payments            {"amount_cents": int > 0, "currency": "EUR", "user_id": int?, "reference": str?}
                          optional Idempotency-Key: a repeat returns the first result (201 or 402)
                          -> 201 authorised | 400 invalid | 402 declined (over PAYMENT_MAX_AMOUNT_CENTS)
                          | 409 duplicate_reference (the reference is unique) | 422 key reused | 503 database
GET  /payments?reference=R -> 200 the payment with that reference | 404
GET  /payments/{id}       -> 200 | 404
POST /payments/{id}/void  -> 200 (releases an authorisation) | 404 | 409 not authorised
POST /payments/void-by-reference {"reference": R}
                          -> 200: the authorisation with that reference is voided; a voided or declined one is
                          returned as is; if none exists yet, a voided record takes the reference, so an
                          authorisation arriving late for it is refused (409) instead of left unattached.
"""

from __future__ import annotations

import re
import sys
import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from svc_common import (
    App,
    DBConfig,
    HTTPError,
    Request,
    env_int,
    idempotency_key,
    json_response,
    require_int,
    require_str,
    run_service,
)
from svc_common.db import Database, Migration, is_duplicate_key
from svc_common.idempotency import REPLAYED, check_same_request, fingerprint

SERVICE = "payment"
CURRENCY = re.compile(r"^[A-Z]{3}$")
REFERENCE = re.compile(r"^[\x21-\x7e]{1,128}$")

MIGRATIONS = (
    Migration(1, "payments ledger", ("""
    CREATE TABLE IF NOT EXISTS payments (
        id              VARCHAR(40)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
        idempotency_key VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
        request_hash    CHAR(64)     CHARACTER SET ascii NULL,
        reference       VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
        status          VARCHAR(16)  NOT NULL,
        amount_cents    BIGINT UNSIGNED NULL,
        currency        CHAR(3)      NULL,
        user_id         BIGINT UNSIGNED NULL,
        created_at      TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        updated_at      TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
        UNIQUE KEY uq_payments_idempotency_key (idempotency_key),
        UNIQUE KEY uq_payments_reference (reference),
        KEY ix_payments_status (status)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
    """,)),
)
PUBLIC = ("id", "status", "amount_cents", "currency", "user_id", "reference", "created_at")
_COLUMNS = ", ".join(PUBLIC) + ", idempotency_key, request_hash"


def now_ms() -> datetime:
    """UTC now at the database's precision (TIMESTAMP(3)), naive like the rows read back."""
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class PaymentRepository(Protocol):
    def insert(self, payment: dict[str, Any]) -> None: ...  # raises on a duplicate key / reference
    def get(self, payment_id: str) -> dict[str, Any] | None: ...
    def get_by_key(self, key: str) -> dict[str, Any] | None: ...
    def get_by_reference(self, reference: str) -> dict[str, Any] | None: ...
    def void(self, payment_id: str) -> bool: ...  # authorised -> voided; False if it was not authorised
    def void_reference(self, reference: str) -> bool: ...
    def check_ready(self) -> None: ...


class Duplicate(Exception):
    """The idempotency key or the reference is already taken."""


class MySQLPaymentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, payment: dict[str, Any]) -> None:
        with self.db.connection() as conn, conn.cursor() as cur:
            try:
                cur.execute(
                    "INSERT INTO payments (id, idempotency_key, request_hash, reference, status, amount_cents, "
                    "currency, user_id, created_at) VALUES (%(id)s, %(idempotency_key)s, %(request_hash)s, "
                    "%(reference)s, %(status)s, %(amount_cents)s, %(currency)s, %(user_id)s, %(created_at)s)",
                    payment)
            except Exception as exc:
                if is_duplicate_key(exc):
                    raise Duplicate() from None
                raise

    def _one(self, where: str, value: str) -> dict[str, Any] | None:
        with self.db.connection() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM payments WHERE {where} = %s", (value,))
            return cur.fetchone()

    def get(self, payment_id: str) -> dict[str, Any] | None:
        return self._one("id", payment_id)

    def get_by_key(self, key: str) -> dict[str, Any] | None:
        return self._one("idempotency_key", key)

    def get_by_reference(self, reference: str) -> dict[str, Any] | None:
        return self._one("reference", reference)

    def _void(self, where: str, value: str) -> bool:
        with self.db.connection() as conn, conn.cursor() as cur:
            cur.execute(f"UPDATE payments SET status = 'voided' WHERE {where} = %s AND status = 'authorized'",
                        (value,))
            return cur.rowcount == 1

    def void(self, payment_id: str) -> bool:
        return self._void("id", payment_id)

    def void_reference(self, reference: str) -> bool:
        return self._void("reference", reference)

    def check_ready(self) -> None:
        self.db.check_ready()


def public(payment: dict[str, Any]) -> dict[str, Any]:
    return {k: payment.get(k) for k in PUBLIC}


def _replay(payment: dict[str, Any], max_amount: int) -> Any:
    if payment["status"] == "declined":
        raise _declined(payment, max_amount)
    return json_response(public(payment), 201, {"Location": f"/payments/{payment['id']}", **REPLAYED})


def _declined(payment: dict[str, Any], max_amount: int) -> HTTPError:
    return HTTPError(402, "payment declined", code="payment_declined",
                     details={"payment_id": payment["id"], "max_amount_cents": max_amount})


def parse_payment(req: Request) -> tuple[int, str, int | None, str | None]:
    body = req.json_object()
    amount = require_int(body, "amount_cents")
    if amount <= 0:
        raise HTTPError(400, "'amount_cents' must be > 0", code="validation_error", details={"field": "amount_cents"})
    currency = require_str(body, "currency", max_length=3, pattern=CURRENCY) if "currency" in body else "EUR"
    user_id = require_int(body, "user_id", minimum=1) if body.get("user_id") is not None else None
    reference = (require_str(body, "reference", max_length=128, pattern=REFERENCE)
                 if body.get("reference") is not None else None)
    return amount, currency, user_id, reference


class Ledger:
    """Authorisations and voids on top of the repository's unique key and reference."""

    def __init__(self, app: App, repo: PaymentRepository, max_amount_cents: int) -> None:
        self.repo, self.max_amount = repo, max_amount_cents
        self.outcomes = app.metrics.counter("payments_total", "Payment authorisations by outcome.", ("outcome",))

    def authorize(self, req: Request) -> Any:
        amount, currency, user_id, reference = parse_payment(req)
        key = idempotency_key(req.headers)
        digest = fingerprint(amount, currency, user_id, reference)
        payment = {"id": f"pay_{uuid.uuid4().hex}", "idempotency_key": key, "request_hash": digest,
                   "reference": reference, "status": "authorized" if amount <= self.max_amount else "declined",
                   "amount_cents": amount, "currency": currency, "user_id": user_id, "created_at": now_ms()}
        try:
            self.repo.insert(payment)
        except Duplicate:
            existing = self.repo.get_by_key(key) if key is not None else None
            if existing is not None:
                check_same_request(existing["request_hash"], digest)
                return _replay(existing, self.max_amount)
            taken = self.repo.get_by_reference(reference) if reference is not None else None
            raise HTTPError(409, "a payment with this reference exists", code="duplicate_reference",
                            details={"payment_id": taken["id"] if taken else None,
                                     "status": taken["status"] if taken else None}) from None
        self.outcomes.labels(SERVICE, payment["status"]).inc()
        if payment["status"] != "authorized":
            raise _declined(payment, self.max_amount)
        return json_response(public(payment), 201, {"Location": f"/payments/{payment['id']}"})

    def void_by_reference(self, reference: str) -> dict[str, Any]:
        if self.repo.void_reference(reference):
            self.outcomes.labels(SERVICE, "voided").inc()
        else:
            tombstone = {"id": f"pay_{uuid.uuid4().hex}", "idempotency_key": None, "request_hash": None,
                         "reference": reference, "status": "voided", "amount_cents": None, "currency": None,
                         "user_id": None, "created_at": now_ms()}
            try:
                self.repo.insert(tombstone)
            except Duplicate:  # it exists (or just arrived): void it if it is authorised
                if self.repo.void_reference(reference):
                    self.outcomes.labels(SERVICE, "voided").inc()
        payment = self.repo.get_by_reference(reference)
        if payment is None:  # cannot happen: the reference is taken
            raise HTTPError(500, "payment vanished")
        return public(payment)

    def void(self, payment_id: str) -> dict[str, Any]:
        if not self.repo.void(payment_id):
            payment = self.repo.get(payment_id)
            if payment is None:
                raise HTTPError(404, "payment not found")
            raise HTTPError(409, f"payment is {payment['status']}", code="invalid_state")
        self.outcomes.labels(SERVICE, "voided").inc()
        return public(self.repo.get(payment_id) or {})


def create_app(repo: PaymentRepository, max_amount_cents: int) -> App:
    app = App(SERVICE)
    app.add_readiness_check("database", repo.check_ready)
    ledger = Ledger(app, repo, max_amount_cents)
    app.route("POST", "/payments")(ledger.authorize)

    @app.route("GET", "/payments")
    def find_payment(req: Request):
        reference = (req.query.get("reference") or [""])[0]
        if not REFERENCE.fullmatch(reference):
            raise HTTPError(400, "query parameter 'reference' is required", code="validation_error",
                            details={"field": "reference"})
        payment = repo.get_by_reference(reference)
        if payment is None:
            raise HTTPError(404, "payment not found")
        return public(payment)

    @app.route("POST", "/payments/void-by-reference")
    def void_by_reference(req: Request):
        return ledger.void_by_reference(require_str(req.json_object(), "reference", max_length=128,
                                                    pattern=REFERENCE))

    @app.route("GET", "/payments/{id}")
    def get_payment(req: Request):
        payment = repo.get(req.params["id"])
        if payment is None:
            raise HTTPError(404, "payment not found")
        return public(payment)

    @app.route("POST", "/payments/{id}/void")
    def void_payment(req: Request):
        return ledger.void(req.params["id"])

    return app


def build_app() -> App:
    max_amount = env_int("PAYMENT_MAX_AMOUNT_CENTS", 1_000_000, minimum=1)
    db = Database(DBConfig.from_env(default_database="payments", default_user="payment_svc"))
    app = create_app(MySQLPaymentRepository(db), max_amount)
    app.on_startup(lambda a: db.start_background_init(MIGRATIONS, a.draining))
    app.on_shutdown(db.close)
    return app


def main() -> int:
    return run_service(SERVICE, build_app)


if __name__ == "__main__":
    sys.exit(main())
