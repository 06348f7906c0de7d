"""user service: create and fetch users (MySQL/MariaDB).

POST /users        {"name": str, "email": str}, optional Idempotency-Key
                   -> 201 | 400 invalid | 409 email taken | 422 key reused | 503 database (Retry-After)
                   A repeat with the same key returns the first user (201, Idempotent-Replayed: true).
GET  /users/{id}   -> 200 | 404 | 503 database
"""

from __future__ import annotations

import re
import sys
from datetime import UTC, datetime
from typing import Any, Protocol

from svc_common import App, DBConfig, HTTPError, Request, idempotency_key, json_response, require_str, run_service
from svc_common.db import Database, Migration, is_duplicate_key
from svc_common.idempotency import REPLAYED, check_same_request, fingerprint

SERVICE = "user"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

MIGRATIONS = (
    Migration(1, "users", ("""
    CREATE TABLE IF NOT EXISTS users (
        id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name       VARCHAR(100)    NOT NULL,
        email      VARCHAR(254)    NOT NULL,
        created_at TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        UNIQUE KEY uq_users_email (email)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
    """,)),
    Migration(2, "idempotency keys", ("""
    ALTER TABLE users
        ADD COLUMN idempotency_key VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NULL,
        ADD COLUMN request_hash CHAR(64) CHARACTER SET ascii NULL,
        ADD UNIQUE KEY uq_users_idempotency_key (idempotency_key)
    """,)),
)
_COLUMNS = "id, name, email, created_at"


class EmailTaken(Exception):
    pass


class UserRepository(Protocol):
    def create(self, name: str, email: str, key: str | None = None,
               request_hash: str | None = None) -> dict[str, Any]: ...  # EmailTaken if email or key is taken
    def get(self, user_id: int) -> dict[str, Any] | None: ...
    def get_by_key(self, key: str) -> dict[str, Any] | None: ...  # with "request_hash"
    def check_ready(self) -> None: ...


def now_ms() -> datetime:
    now = datetime.now(UTC).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class MySQLUserRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, email: str, key: str | None = None,
               request_hash: str | None = None) -> dict[str, Any]:
        created_at = now_ms()
        with self.db.connection() as conn, conn.cursor() as cur:
            try:
                cur.execute("INSERT INTO users (name, email, created_at, idempotency_key, request_hash) "
                            "VALUES (%s, %s, %s, %s, %s)", (name, email, created_at, key, request_hash))
            except Exception as exc:
                if is_duplicate_key(exc):
                    raise EmailTaken(email) from None
                raise
            # Built from what was inserted: no read after the commit that could fail and hide it.
            return {"id": cur.lastrowid, "name": name, "email": email, "created_at": created_at}

    def get(self, user_id: int) -> dict[str, Any] | None:
        with self.db.connection() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS} FROM users WHERE id = %s", (user_id,))
            return cur.fetchone()

    def get_by_key(self, key: str) -> dict[str, Any] | None:
        with self.db.connection() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {_COLUMNS}, request_hash FROM users WHERE idempotency_key = %s", (key,))
            return cur.fetchone()

    def check_ready(self) -> None:
        self.db.check_ready()


def create_app(repo: UserRepository) -> App:
    app = App(SERVICE)
    app.add_readiness_check("database", repo.check_ready)

    @app.route("POST", "/users")
    def create_user(req: Request):
        body = req.json_object()
        name = require_str(body, "name", max_length=100)
        email = require_str(body, "email", max_length=254, pattern=EMAIL).lower()
        key = idempotency_key(req.headers)
        digest = fingerprint(name, email)
        try:
            user = repo.create(name, email, key, digest if key else None)
        except EmailTaken:
            existing = repo.get_by_key(key) if key is not None else None
            if existing is None:
                raise HTTPError(409, "a user with this email already exists", code="email_taken") from None
            check_same_request(existing.pop("request_hash"), digest)
            return json_response(existing, 201, {"Location": f"/users/{existing['id']}", **REPLAYED})
        app.log.info("user created", extra={"user_id": user["id"]})
        return json_response(user, 201, {"Location": f"/users/{user['id']}"})

    @app.route("GET", "/users/{id}")
    def get_user(req: Request):
        user = repo.get(req.int_param("id"))
        if user is None:
            raise HTTPError(404, "user not found", code="user_not_found")
        return user

    return app


def build_app() -> App:
    db = Database(DBConfig.from_env(default_database="users", default_user="user_svc"))
    app = create_app(MySQLUserRepository(db))
    app.on_startup(lambda a: db.start_background_init(MIGRATIONS, a.draining))
    app.on_shutdown(db.close)
    return app


def main() -> int:
    return run_service(SERVICE, build_app)


if __name__ == "__main__":
    sys.exit(main())
