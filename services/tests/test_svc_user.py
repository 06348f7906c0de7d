from __future__ import annotations

import datetime as dt
import itertools

import pytest

from services.tests.helpers import call
from services.user.app import EmailTaken, create_app


class FakeUserRepo:
    def __init__(self):
        self.users = {}
        self.ids = itertools.count(1)
        self.ready_error = None

    def create(self, name, email):
        if any(u["email"] == email for u in self.users.values()):
            raise EmailTaken(email)
        user = {"id": next(self.ids), "name": name, "email": email,
                "created_at": dt.datetime(2024, 1, 2, 3, 4, 5)}
        self.users[user["id"]] = user
        return user

    def get(self, user_id):
        return self.users.get(user_id)

    def check_ready(self):
        if self.ready_error:
            raise self.ready_error


@pytest.fixture
def repo():
    return FakeUserRepo()


@pytest.fixture
def app(repo):
    return create_app(repo)


def test_create_and_get(app):
    status, body, resp = call(app, "POST", "/users", {"name": " Ada ", "email": "Ada@Example.org"})
    assert status == 201
    assert body == {"id": 1, "name": "Ada", "email": "ada@example.org", "created_at": "2024-01-02T03:04:05Z"}
    assert resp.headers["Location"] == "/users/1"
    status, fetched, _ = call(app, "GET", "/users/1")
    assert status == 200 and fetched == body


def test_duplicate_email_is_409(app):
    call(app, "POST", "/users", {"name": "A", "email": "a@example.org"})
    status, body, _ = call(app, "POST", "/users", {"name": "B", "email": "A@example.org"})
    assert status == 409 and body["error"]["code"] == "email_taken"


@pytest.mark.parametrize("payload", [
    {"email": "a@example.org"},
    {"name": "", "email": "a@example.org"},
    {"name": "A", "email": "not-an-email"},
    {"name": "A" * 101, "email": "a@example.org"},
    {"name": 5, "email": "a@example.org"},
])
def test_validation(app, payload):
    status, body, _ = call(app, "POST", "/users", payload)
    assert status == 400 and body["error"]["code"] == "validation_error"


@pytest.mark.parametrize("path", ["/users/999", "/users/abc", "/users/0", "/users/-1", "/users/01", "/users/\u00b2"])
def test_missing_or_invalid_id_is_404(app, path):
    assert call(app, "GET", path)[0] == 404


def test_readiness_reflects_database(app, repo):
    assert call(app, "GET", "/readyz")[0] == 200
    repo.ready_error = RuntimeError("connection refused")
    status, body, _ = call(app, "GET", "/readyz")
    assert status == 503 and body["checks"]["database"] == "error: connection refused"


def test_metrics_use_template_not_raw_path(app):
    call(app, "POST", "/users", {"name": "A", "email": "a@example.org"})
    call(app, "GET", "/users/1")
    call(app, "GET", "/users/2")
    text = call(app, "GET", "/metrics")[2].body.decode()
    assert 'http_requests_total{method="GET",route="/users/{id}",service="user",status="200"} 1.0' in text
    assert 'http_requests_total{method="GET",route="/users/{id}",service="user",status="404"} 1.0' in text
    assert 'http_requests_total{method="POST",route="/users",service="user",status="201"} 1.0' in text
    assert 'route="/users/1"' not in text
