from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from svc_common.db import DatabaseUnavailable

from services.tests.fakes import FakeUserRepo
from services.tests.helpers import call
from services.user.app import create_app


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


# -- issue 22 item 1: Idempotency-Key ----------------------------------------------------------------
ADA = {"name": "Ada", "email": "ada@example.org"}


def test_same_key_returns_the_first_user(app, repo):
    first = call(app, "POST", "/users", ADA, headers={"Idempotency-Key": "u-1"})
    again = call(app, "POST", "/users", ADA, headers={"Idempotency-Key": "u-1"})
    assert first[0] == again[0] == 201 and again[1] == first[1]
    assert again[2].headers["Idempotent-Replayed"] == "true" and len(repo.users) == 1
    # without the key the same email is still a conflict
    assert call(app, "POST", "/users", ADA)[0] == 409


def test_concurrent_repeats_create_one(app, repo):
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: call(app, "POST", "/users", ADA, headers={"Idempotency-Key": "u-2"}),
                                range(16)))
    assert {r[0] for r in results} == {201} and len({r[1]["id"] for r in results}) == 1
    assert len(repo.users) == 1


def test_same_key_other_body_is_422(app):
    call(app, "POST", "/users", ADA, headers={"Idempotency-Key": "u-3"})
    status, body, _ = call(app, "POST", "/users", {**ADA, "name": "Eve"}, headers={"Idempotency-Key": "u-3"})
    assert status == 422 and body["error"]["code"] == "idempotency_key_reused"


# -- issue 22 item 7: a database outage is 503 with Retry-After, not 500 -------------------------------
@pytest.mark.parametrize("method, path, body", [("POST", "/users", ADA), ("GET", "/users/1", None)])
def test_database_down_is_503_with_retry_after(app, repo, method, path, body):
    repo.error = DatabaseUnavailable("cannot connect to the database: refused")
    status, payload, resp = call(app, method, path, body)
    assert status == 503 and payload["error"]["code"] == "database_unavailable"
    assert resp.headers["Retry-After"] == "1"
