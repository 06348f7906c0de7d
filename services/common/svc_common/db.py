"""MySQL/MariaDB access with PyMySQL: a bounded connection pool, schema migrations in the
background, a readiness probe that answers in time, and database errors as 503.

* **Pool**: at most ``pool_size`` connections are open; a borrower reuses an idle one or,
  below the cap, opens one; otherwise it waits up to ``pool_timeout`` seconds and then gets
  ``DatabaseUnavailable`` (503 + ``Retry-After``). A connection idle for longer than
  ``PING_AFTER_IDLE_SECONDS`` is pinged before use; one that failed is closed, not reused.
* **TLS**: one ``SSLContext`` per process (verified against ``ssl_ca`` if set, and the host
  name with ``ssl_verify_identity``; otherwise PyMySQL's "preferred" mode, unverified), not one
  per connection: building a context loads the CA store, ~28 ms of CPU each time.
* **Errors**: connection-level errors (refused, lost, timed out, lock wait) raised while a
  connection is borrowed become ``DatabaseUnavailable``; integrity errors (duplicate keys)
  pass through unchanged and keep the connection.

Only the DB-backed services import this module (and need PyMySQL).
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import pymysql
import pymysql.connections
import pymysql.cursors

from .config import DBConfig
from .errors import ServiceUnavailable
from .migrations import Migration, apply_migrations

log = logging.getLogger("svc_common.db")

ER_DUP_ENTRY = 1062
PING_AFTER_IDLE_SECONDS = 1.0
#: Errors that mean "the database is not usable right now" (not "your SQL is wrong").
UNAVAILABLE_ERRORS = (pymysql.err.OperationalError, pymysql.err.InterfaceError, pymysql.err.InternalError)

__all__ = ["Database", "DatabaseUnavailable", "Migration", "is_duplicate_key"]


class DatabaseUnavailable(ServiceUnavailable):
    """The database cannot be used right now: 503 with ``Retry-After``."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="database_unavailable")


def is_duplicate_key(exc: BaseException) -> bool:
    return isinstance(exc, pymysql.err.IntegrityError) and bool(exc.args) and exc.args[0] == ER_DUP_ENTRY


_PREFERRED_CONTEXT: ssl.SSLContext | None = None
_CONTEXT_LOCK = threading.Lock()


def preferred_tls_context() -> ssl.SSLContext:
    """The process-wide context of PyMySQL's "preferred" mode (TLS if offered, unverified)."""
    global _PREFERRED_CONTEXT
    with _CONTEXT_LOCK:
        if _PREFERRED_CONTEXT is None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            _PREFERRED_CONTEXT = ctx
        return _PREFERRED_CONTEXT


def verified_tls_context(ca_file: str, check_hostname: bool = False) -> ssl.SSLContext:
    """TLS required, the server certificate verified against ``ca_file`` (its host name too if asked)."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)  # MySQL's auto-generated certs
    ctx.check_hostname = check_hostname
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class _Connection(pymysql.connections.Connection):
    """PyMySQL builds a fresh SSLContext per connection in preferred mode; share one instead."""

    def _create_ssl_ctx(self, sslp):  # type: ignore[no-untyped-def]
        if isinstance(sslp, ssl.SSLContext):
            return sslp
        if not sslp:
            return preferred_tls_context()
        return super()._create_ssl_ctx(sslp)


def _close_quietly(conn: object) -> None:
    try:
        conn.close()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - already broken
        pass


class Database:
    def __init__(self, config: DBConfig,
                 connect: Callable[[], pymysql.connections.Connection] | None = None) -> None:
        self.config = config
        self._tls = verified_tls_context(config.ssl_ca, config.ssl_verify_identity) if config.ssl_ca else None
        self._open_connection = connect or self.connect
        self._cond = threading.Condition()
        self._idle: list[tuple[pymysql.connections.Connection, float]] = []
        self._open = 0
        self._closed = False
        self._probe: pymysql.connections.Connection | None = None
        self._probe_lock = threading.Lock()
        #: Set once the migrations ran; readiness fails before that.
        self.initialized = threading.Event()

    # -- connections -----------------------------------------------------------------
    def connect(self, timeout: float | None = None) -> pymysql.connections.Connection:
        """A new connection (``timeout`` overrides the connect and query timeouts)."""
        cfg = self.config
        tls = {"ssl": self._tls} if self._tls is not None else {}
        return _Connection(
            host=cfg.host, port=cfg.port, user=cfg.user, password=cfg.password or "",
            database=cfg.database, unix_socket=cfg.unix_socket or None, **tls,
            connect_timeout=timeout or cfg.connect_timeout, read_timeout=timeout or cfg.query_timeout,
            write_timeout=timeout or cfg.query_timeout, charset="utf8mb4", autocommit=True,
            cursorclass=pymysql.cursors.DictCursor, init_command="SET time_zone = '+00:00'")

    @property
    def open_connections(self) -> int:
        """Connections open right now (borrowed + idle)."""
        return self._open

    def _borrow(self) -> pymysql.connections.Connection:
        cfg = self.config
        deadline = time.monotonic() + cfg.pool_timeout
        with self._cond:
            while True:
                if self._closed:
                    raise DatabaseUnavailable("database pool is closed")
                if self._idle:
                    conn, since = self._idle.pop()
                    break
                if self._open < cfg.pool_size:
                    self._open += 1
                    conn, since = None, 0.0
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DatabaseUnavailable(
                        f"no database connection free within {cfg.pool_timeout:g}s ({cfg.pool_size} in use)")
                self._cond.wait(remaining)
        try:
            if conn is not None and time.monotonic() - since > PING_AFTER_IDLE_SECONDS:
                try:
                    conn.ping(reconnect=False)
                except pymysql.err.Error:
                    _close_quietly(conn)
                    conn = None
            if conn is None:
                conn = self._open_connection()
            return conn
        except BaseException as exc:
            self._give_back(None, keep=False)
            if isinstance(exc, pymysql.err.MySQLError):
                raise DatabaseUnavailable(f"cannot connect to the database: {exc}") from exc
            raise

    def _give_back(self, conn: pymysql.connections.Connection | None, keep: bool) -> None:
        with self._cond:
            if keep and conn is not None and not self._closed:
                self._idle.append((conn, time.monotonic()))
                self._cond.notify()
                return
            self._open -= 1
            self._cond.notify()
        if conn is not None:
            _close_quietly(conn)

    @contextmanager
    def connection(self) -> Iterator[pymysql.connections.Connection]:
        """Borrow a pooled connection; database outages surface as ``DatabaseUnavailable``."""
        conn = self._borrow()
        keep = False
        try:
            yield conn
            keep = True
        except pymysql.err.IntegrityError:
            keep = True  # autocommit: the failed statement left no transaction behind
            raise
        except UNAVAILABLE_ERRORS as exc:
            raise DatabaseUnavailable(f"database error: {exc}") from exc
        finally:
            self._give_back(conn, keep)

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
            self._wait(delay, stop)
            delay = min(delay * 2, cfg.retry_backoff_max)

    @staticmethod
    def _wait(delay: float, stop: threading.Event | None) -> None:
        if stop is not None:
            if stop.wait(delay):
                raise DatabaseUnavailable("stopped while waiting for the database")
        else:
            threading.Event().wait(delay)

    # -- schema / readiness ------------------------------------------------------------
    def ensure_schema(self, migrations: Sequence[Migration], stop: threading.Event | None = None) -> None:
        """Apply the service's migrations (retrying while the database is unreachable)."""
        while True:
            conn = self.connect_with_retry(stop)
            try:
                applied = apply_migrations(conn, self.config.database, migrations)
                break
            except UNAVAILABLE_ERRORS as exc:
                log.warning("schema migration interrupted, retrying", extra={"error": str(exc)})
            finally:
                _close_quietly(conn)
            self._wait(self.config.retry_backoff, stop)
        self.initialized.set()
        log.info("database schema ready", extra={"database": self.config.database, "applied": applied,
                                                 "version": max((m.version for m in migrations), default=0)})

    def start_background_init(self, migrations: Sequence[Migration], stop: threading.Event) -> threading.Thread:
        """Migrate in a background thread so the HTTP server (and /healthz) is up while the
        database is still unreachable; /readyz reports it."""
        def _init() -> None:
            try:
                self.ensure_schema(migrations, stop)
            except DatabaseUnavailable as exc:
                log.error("database initialisation abandoned", extra={"error": str(exc)})
            except Exception:  # noqa: BLE001
                log.exception("database initialisation failed")

        thread = threading.Thread(target=_init, name="db-init", daemon=True)
        thread.start()
        return thread

    def check_ready(self) -> None:
        """``SELECT 1`` on a probe connection of its own (not the pool: a pool busy under load is not
        "not ready"), with connect and read timeouts of ``probe_timeout``: a hung server fails fast."""
        if not self.initialized.is_set():
            raise DatabaseUnavailable("schema not initialised yet")
        if not self._probe_lock.acquire(blocking=False):
            raise DatabaseUnavailable("previous readiness probe still running")
        try:
            kept, self._probe = self._probe, None
            if kept is not None:
                try:
                    self._probe = self._select_one(kept)
                    return
                except pymysql.err.MySQLError:  # e.g. the server restarted since: try a new connection
                    _close_quietly(kept)
            try:
                self._probe = self._select_one(self.connect(timeout=self.config.probe_timeout))
            except pymysql.err.MySQLError as exc:
                raise DatabaseUnavailable(f"database probe failed: {exc}") from exc
        finally:
            self._probe_lock.release()

    @staticmethod
    def _select_one(conn: pymysql.connections.Connection) -> pymysql.connections.Connection:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                cur.fetchone()
        except BaseException:
            _close_quietly(conn)
            raise
        return conn

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn, _ in idle:
            _close_quietly(conn)
        if self._probe is not None:
            _close_quietly(self._probe)
            self._probe = None
