"""MySQL/MariaDB access with PyMySQL: connect-with-retry, a tiny pool, schema
bootstrap in the background and a readiness check.

Only the DB-backed services import this module (and need PyMySQL).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pymysql
import pymysql.cursors

from .config import DBConfig

log = logging.getLogger("svc_common.db")

ER_DUP_ENTRY = 1062


class DatabaseUnavailable(RuntimeError):
    pass


def is_duplicate_key(exc: BaseException) -> bool:
    return isinstance(exc, pymysql.err.IntegrityError) and bool(exc.args) and exc.args[0] == ER_DUP_ENTRY


class Database:
    def __init__(self, config: DBConfig) -> None:
        self.config = config
        self._pool: queue.LifoQueue[pymysql.connections.Connection] = queue.LifoQueue(maxsize=config.pool_size)
        #: Set once the schema exists; readiness fails before that.
        self.initialized = threading.Event()
        self._closed = False

    # -- connections -----------------------------------------------------------------
    def connect(self) -> pymysql.connections.Connection:
        cfg = self.config
        tls = {"ssl_ca": cfg.ssl_ca, "ssl_verify_cert": True} if cfg.ssl_ca else {}
        return pymysql.connect(
            host=cfg.host, port=cfg.port, user=cfg.user, password=cfg.password or "",
            database=cfg.database, unix_socket=cfg.unix_socket or None, **tls,
            connect_timeout=cfg.connect_timeout, read_timeout=cfg.query_timeout,
            write_timeout=cfg.query_timeout, charset="utf8mb4", autocommit=True,
            cursorclass=pymysql.cursors.DictCursor, init_command="SET time_zone = '+00:00'")

    def connect_with_retry(self, stop: threading.Event | None = None) -> pymysql.connections.Connection:
        """Connect, retrying with capped exponential backoff.

        Gives up after ``config.connect_retries`` attempts (0 = never) or when
        ``stop`` is set, raising ``DatabaseUnavailable``.
        """
        cfg = self.config
        delay, attempt = cfg.retry_backoff, 0
        while True:
            attempt += 1
            try:
                conn = self.connect()
                log.info("database connected", extra={"db_host": cfg.unix_socket or f"{cfg.host}:{cfg.port}",
                                                       "database": cfg.database, "attempt": attempt})
                return conn
            except pymysql.err.MySQLError as exc:
                exhausted = cfg.connect_retries and attempt >= cfg.connect_retries
                log.warning("database connection failed", extra={
                    "attempt": attempt, "error": str(exc), "retry_in_s": None if exhausted else delay})
                if exhausted:
                    raise DatabaseUnavailable(f"giving up after {attempt} attempts: {exc}") from exc
            if stop is not None:
                if stop.wait(delay):
                    raise DatabaseUnavailable("stopped while waiting for the database")
            else:
                threading.Event().wait(delay)
            delay = min(delay * 2, cfg.retry_backoff_max)

    @contextmanager
    def connection(self) -> Iterator[pymysql.connections.Connection]:
        """Borrow a pooled connection (reconnecting if the server dropped it)."""
        if self._closed:
            raise DatabaseUnavailable("database pool is closed")
        try:
            conn = self._pool.get_nowait()
            conn.ping(reconnect=True)
        except queue.Empty:
            conn = self.connect()
        try:
            yield conn
        except BaseException:
            conn.close()  # state unknown (e.g. mid-transaction or broken): drop it
            raise
        else:
            if self._closed:
                conn.close()
                return
            try:
                self._pool.put_nowait(conn)
            except queue.Full:
                conn.close()

    # -- schema / readiness ------------------------------------------------------------
    def ensure_schema(self, statements: Sequence[str], stop: threading.Event | None = None) -> None:
        conn = self.connect_with_retry(stop)
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
        finally:
            conn.close()
        self.initialized.set()
        log.info("database schema ready", extra={"database": self.config.database,
                                                 "statements": len(statements)})

    def start_background_init(self, statements: Sequence[str], stop: threading.Event) -> threading.Thread:
        """Create the schema in a background thread so the HTTP server (and /healthz)
        is up while the database is still unreachable; /readyz reports it."""
        def _init() -> None:
            try:
                self.ensure_schema(statements, stop)
            except DatabaseUnavailable as exc:
                log.error("database initialisation abandoned", extra={"error": str(exc)})
            except Exception:  # noqa: BLE001
                log.exception("database initialisation failed")

        thread = threading.Thread(target=_init, name="db-init", daemon=True)
        thread.start()
        return thread

    def check_ready(self) -> None:
        if not self.initialized.is_set():
            raise DatabaseUnavailable("schema not initialised yet")
        with self.connection() as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                return
            try:
                conn.close()
            except Exception:  # noqa: BLE001
                pass
