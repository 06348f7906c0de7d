"""In-memory stand-ins for the repositories and upstream clients, with the same unique
constraints and conditional updates as the MySQL ones (the MySQL ones are tested against a
real MariaDB in test_svc_database.py)."""

from __future__ import annotations

import datetime as dt
import itertools
import threading

from svc_common import UpstreamResponse

from services.order.app import KeyInUse
from services.payment.app import Duplicate


class FakeClient:
    """Stands in for ServiceClient: routes (method, path) to canned responses and records calls."""

    def __init__(self, name, routes):
        self.name = name
        self.metrics = None
        self.routes = routes  # {(method, path): UpstreamResponse | Exception | callable(payload, headers)}
        self.calls = []

    def request(self, method, path, payload=None, headers=None):
        self.calls.append((method, path, payload))
        result = self.routes.get((method, path), UpstreamResponse(404, {"error": {"code": "not_found"}}))
        if callable(result) and not isinstance(result, UpstreamResponse):
            result = result(payload, headers or {})
        if isinstance(result, Exception):
            raise result
        return result

    def post(self, path, payload, headers=None):
        return self.request("POST", path, payload, headers)

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def paths(self):
        return [path for _, path, _ in self.calls]


class FakeOrderRepo:
    def __init__(self):
        self.orders = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.now = 1000.0  # seconds; tests move it to make attempts stale
        self.fail_start = self.fail_confirm = None  # an exception to raise
        self.confirm_commits_then_fails = False

    def start(self, attempt):
        if self.fail_start:
            raise self.fail_start
        with self.lock:
            for row in self.orders.values():
                if row["idempotency_key"] == attempt["idempotency_key"]:
                    raise KeyInUse(self._public(row, with_hash=True))
            row = {"id": next(self.ids), **attempt, "status": "pending", "unit_price_cents": None,
                   "total_cents": None, "currency": None, "payment_id": None, "updated": self.now}
            self.orders[row["id"]] = row
            return row["id"]

    def confirm(self, order_id, fields):
        with self.lock:
            if self.fail_confirm and not self.confirm_commits_then_fails:
                raise self.fail_confirm
            row = self.orders[order_id]
            if row["status"] != "pending":
                return False
            row.update(fields, status="confirmed", updated=self.now)
            if self.fail_confirm:  # committed, then the connection broke before the answer
                raise self.fail_confirm
            return True

    def fail(self, order_id):
        with self.lock:
            row = self.orders[order_id]
            if row["status"] in ("pending", "cancelling"):
                row.update(status="failed", idempotency_key=None, updated=self.now)

    def get(self, order_id):
        row = self.orders.get(order_id)
        return self._public(row) if row else None

    def stale(self, older_than, limit):
        return [{"id": r["id"], "product_id": r["product_id"], "reference": r["reference"], "status": r["status"]}
                for r in self.orders.values()
                if r["status"] in ("pending", "cancelling") and r["updated"] < self.now - older_than][:limit]

    def claim(self, order_id, older_than):
        with self.lock:
            row = self.orders[order_id]
            if row["status"] in ("pending", "cancelling") and row["updated"] < self.now - older_than:
                row.update(status="cancelling", updated=self.now)
                return True
            return False

    def check_ready(self):
        pass

    def by_status(self, status):
        return [r for r in self.orders.values() if r["status"] == status]

    @staticmethod
    def _public(row, with_hash=False):
        keys = ["id", "user_id", "product_id", "quantity", "unit_price_cents", "total_cents", "currency",
                "payment_id", "status", "created_at"] + (["request_hash"] if with_hash else [])
        return {k: row[k] for k in keys}


class FakePaymentRepo:
    def __init__(self):
        self.rows = {}
        self.lock = threading.Lock()
        self.ready_error = None

    def insert(self, payment):
        with self.lock:
            for row in self.rows.values():
                if ((payment["idempotency_key"] is not None and row["idempotency_key"] == payment["idempotency_key"])
                        or (payment["reference"] is not None and row["reference"] == payment["reference"])):
                    raise Duplicate()
            self.rows[payment["id"]] = dict(payment)

    def get(self, payment_id):
        row = self.rows.get(payment_id)
        return dict(row) if row else None

    def _find(self, column, value):
        return next((dict(r) for r in self.rows.values() if r[column] == value), None)

    def get_by_key(self, key):
        return self._find("idempotency_key", key)

    def get_by_reference(self, reference):
        return self._find("reference", reference)

    def _void(self, column, value):
        with self.lock:
            for row in self.rows.values():
                if row[column] == value and row["status"] == "authorized":
                    row["status"] = "voided"
                    return True
            return False

    def void(self, payment_id):
        return self._void("id", payment_id)

    def void_reference(self, reference):
        return self._void("reference", reference)

    def check_ready(self):
        if self.ready_error:
            raise self.ready_error


class FakeUserRepo:
    def __init__(self):
        self.users = {}
        self.ids = itertools.count(1)
        self.ready_error = None
        self.error = None

    def create(self, name, email, key=None, request_hash=None):
        from services.user.app import EmailTaken

        if self.error:
            raise self.error
        if any(u["email"] == email or (key is not None and u["key"] == key) for u in self.users.values()):
            raise EmailTaken(email)
        user = {"id": next(self.ids), "name": name, "email": email, "created_at": dt.datetime(2024, 1, 2, 3, 4, 5),
                "key": key, "request_hash": request_hash}
        self.users[user["id"]] = user
        return self._public(user)

    def get(self, user_id):
        if self.error:
            raise self.error
        user = self.users.get(user_id)
        return self._public(user) if user else None

    def get_by_key(self, key):
        user = next((u for u in self.users.values() if u["key"] == key), None)
        return {**self._public(user), "request_hash": user["request_hash"]} if user else None

    def check_ready(self):
        if self.ready_error:
            raise self.ready_error

    @staticmethod
    def _public(user):
        return {k: user[k] for k in ("id", "name", "email", "created_at")}
