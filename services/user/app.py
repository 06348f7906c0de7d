"""user service: create and fetch users (MySQL/MariaDB).

POST /users        {"name": str, "email": str} -> 201 | 400 invalid | 409 email taken
GET  /users/{id}   -> 200 | 404
"""

from __future__ import annotations

import re
import sys
from typing import Any, Protocol

from svc_common import App, DBConfig, HTTPError, Request, json_response, require_str, run_service
from svc_common.db import Database, is_duplicate_key

SERVICE = "user"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS users (
        id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
        name       VARCHAR(100)    NOT NULL,
        email      VARCHAR(254)    NOT NULL,
        created_at TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
        UNIQUE KEY uq_users_email (email)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
    """,
)


class EmailTaken(Exception):
    pass


class UserRepository(Protocol):
    def create(self, name: str, email: str) -> dict[str, Any]: ...
    def get(self, user_id: int) -> dict[str, Any] | None: ...
    def check_ready(self) -> None: ...


class MySQLUserRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(self, name: str, email: str) -> dict[str, Any]:
        with self.db.connection() as conn, conn.cursor() as cur:
            try:
                cur.execute("INSERT INTO users (name, email) VALUES (%s, %s)", (name, email))
            except Exception as exc:
                if is_duplicate_key(exc):
                    raise EmailTaken(email) from None
                raise
            cur.execute("SELECT id, name, email, created_at FROM users WHERE id = %s", (cur.lastrowid,))
            return cur.fetchone()

    def get(self, user_id: int) -> dict[str, Any] | None:
        with self.db.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT id, name, email, created_at FROM users WHERE id = %s", (user_id,))
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
        try:
            user = repo.create(name, email)
        except EmailTaken:
            raise HTTPError(409, "a user with this email already exists", code="email_taken") from None
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
    app.on_startup(lambda a: db.start_background_init(SCHEMA, a.draining))
    app.on_shutdown(db.close)
    return app


def main() -> int:
    return run_service(SERVICE, build_app)


if __name__ == "__main__":
    sys.exit(main())
