"""Numbered schema migrations, applied once each, in order, under a server-wide lock.

A service declares ``MIGRATIONS = (Migration(1, "...", (sql, ...)), Migration(2, ...))``;
``apply_migrations`` records what ran in ``schema_migrations`` so a restart (or a second
replica, serialised by ``GET_LOCK``) applies only what is missing. Released migrations are
never edited: a schema change is a new, higher version. Keep each migration to one
statement where possible (one ``ALTER TABLE`` with several clauses is atomic in InnoDB);
a statement that fails because its change is already there (a crash after the DDL but
before the bookkeeping row) is taken as applied.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import pymysql

log = logging.getLogger("svc_common.db")

LOCK_TIMEOUT_SECONDS = 60
#: "already there" errors: table exists, duplicate column, duplicate key name.
_ALREADY_APPLIED = frozenset({1050, 1060, 1061})

_BOOKKEEPING = """
    CREATE TABLE IF NOT EXISTS schema_migrations (
        version     INT UNSIGNED NOT NULL PRIMARY KEY,
        description VARCHAR(200) NOT NULL,
        applied_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


def _check(migrations: Sequence[Migration]) -> list[Migration]:
    ordered = sorted(migrations, key=lambda m: m.version)
    versions = [m.version for m in ordered]
    if len(set(versions)) != len(versions) or any(v < 1 for v in versions):
        raise ValueError(f"migration versions must be unique and >= 1: {versions}")
    return ordered


def apply_migrations(conn: pymysql.connections.Connection, database: str,
                     migrations: Sequence[Migration]) -> list[int]:
    """Apply the missing migrations; returns the versions applied now."""
    ordered = _check(migrations)
    lock = f"schema_migrations:{database}"[:64]
    with conn.cursor() as cur:
        cur.execute("SELECT GET_LOCK(%s, %s) AS got", (lock, LOCK_TIMEOUT_SECONDS))
        row = cur.fetchone()
        if not row or list(row.values())[0] != 1:
            raise pymysql.err.OperationalError(2013, f"could not take the migration lock {lock!r}")
        try:
            cur.execute(_BOOKKEEPING)
            cur.execute("SELECT version FROM schema_migrations")
            done = {r["version"] if isinstance(r, dict) else r[0] for r in cur.fetchall()}
            applied = []
            for migration in ordered:
                if migration.version in done:
                    continue
                for statement in migration.statements:
                    try:
                        cur.execute(statement)
                    except pymysql.err.MySQLError as exc:
                        if not (exc.args and exc.args[0] in _ALREADY_APPLIED):
                            raise
                        log.warning("migration statement already applied", extra={
                            "version": migration.version, "error": str(exc)})
                cur.execute("INSERT INTO schema_migrations (version, description) VALUES (%s, %s)",
                            (migration.version, migration.description))
                applied.append(migration.version)
                log.info("schema migration applied", extra={"database": database, "version": migration.version,
                                                            "description": migration.description})
            return applied
        finally:
            cur.execute("SELECT RELEASE_LOCK(%s)", (lock,))
            cur.fetchall()
