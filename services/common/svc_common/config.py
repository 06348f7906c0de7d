"""Configuration from environment variables (12-factor style).

Every setting a service needs is read here or through the ``env_*`` helpers, so
that nothing is hard-coded and nothing secret ends up in an image.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """Raised when an environment variable is missing or malformed."""


def _env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def env_str(name: str, default: str | None = None, *, required: bool = False,
            environ: Mapping[str, str] | None = None) -> str | None:
    value = _env(environ).get(name)
    if value is None or value == "":
        if required:
            raise ConfigError(f"environment variable {name} is required")
        return default
    return value


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None,
            environ: Mapping[str, str] | None = None) -> int:
    raw = env_str(name, None, environ=environ)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {value}")
    return value


def env_float(name: str, default: float, *, minimum: float | None = None,
              environ: Mapping[str, str] | None = None) -> float:
    raw = env_str(name, None, environ=environ)
    if raw is None:
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    return value


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    raw = env_str(name, None, environ=environ)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigError(f"{name} must be a boolean, got {raw!r}")


def env_secret(name: str, default: str | None = None, *,
               environ: Mapping[str, str] | None = None) -> str | None:
    """Read a secret from ``NAME`` or from the file named by ``NAME_FILE``.

    The ``_FILE`` variant lets an orchestrator mount the secret as a file
    instead of exposing it in the process environment.
    """
    env = _env(environ)
    path = env.get(f"{name}_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                return fh.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"cannot read {name}_FILE={path!r}: {exc}") from None
    return env_str(name, default, environ=environ)


@dataclass(frozen=True)
class ServerConfig:
    """HTTP server settings shared by every service."""

    host: str = "0.0.0.0"
    port: int = 8080
    log_level: str = "INFO"
    #: Maximum time to wait for in-flight requests after SIGTERM.
    shutdown_timeout: float = 10.0
    #: Time to keep serving (with /readyz failing) after SIGTERM before the
    #: listener is closed, so load balancers can stop routing to us first.
    shutdown_delay: float = 0.0
    #: Socket timeout for reading a request / idle keep-alive connections.
    request_timeout: float = 30.0
    max_body_bytes: int = 1024 * 1024
    #: /readyz answers within this many seconds, whatever its checks do (a hanging dependency
    #: is reported as not ready); below the readiness probe's timeoutSeconds.
    readiness_timeout: float = 1.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ServerConfig":
        return cls(
            host=env_str("HOST", cls.host, environ=environ),
            port=env_int("PORT", cls.port, minimum=0, maximum=65535, environ=environ),
            log_level=env_str("LOG_LEVEL", cls.log_level, environ=environ).upper(),
            shutdown_timeout=env_float("SHUTDOWN_TIMEOUT_SECONDS", cls.shutdown_timeout, minimum=0,
                                       environ=environ),
            shutdown_delay=env_float("SHUTDOWN_DELAY_SECONDS", cls.shutdown_delay, minimum=0,
                                     environ=environ),
            request_timeout=env_float("REQUEST_TIMEOUT_SECONDS", cls.request_timeout, minimum=0.1,
                                      environ=environ),
            max_body_bytes=env_int("MAX_BODY_BYTES", cls.max_body_bytes, minimum=1, environ=environ),
            readiness_timeout=env_float("READINESS_TIMEOUT_SECONDS", cls.readiness_timeout, minimum=0.05,
                                        environ=environ),
        )


@dataclass(frozen=True)
class DBConfig:
    """MySQL/MariaDB connection settings.

    The connection variables are the ones the platform injects (``MYSQL_HOST``,
    ``MYSQL_PORT``, ``MYSQL_USER``, ``MYSQL_DATABASE``, ``MYSQL_PASSWORD``).
    """

    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "app"
    password: str | None = field(default=None, repr=False)
    database: str = "app"
    unix_socket: str | None = None
    #: CA bundle to verify the server certificate; without it TLS is still used when the
    #: server offers it (PyMySQL's "preferred" mode), just not verified.
    ssl_ca: str | None = None
    #: With ``ssl_ca``: also check that the certificate names ``host`` (MySQL's VERIFY_IDENTITY);
    #: the platform sets it where the server certificate carries the host name (RDS, in cluster).
    ssl_verify_identity: bool = False
    connect_timeout: float = 5.0
    query_timeout: float = 10.0
    #: Connections open at most (borrowers wait for a free one up to ``pool_timeout``, then 503).
    pool_size: int = 8
    pool_timeout: float = 2.0
    #: Connect/read timeout of the readiness probe's own connection.
    probe_timeout: float = 1.0
    #: 0 = retry forever (the service stays live but not ready meanwhile).
    connect_retries: int = 0
    retry_backoff: float = 0.5
    retry_backoff_max: float = 5.0

    @classmethod
    def from_env(cls, *, default_database: str, default_user: str | None = None,
                 environ: Mapping[str, str] | None = None) -> "DBConfig":
        return cls(
            host=env_str("MYSQL_HOST", cls.host, environ=environ),
            port=env_int("MYSQL_PORT", cls.port, minimum=1, maximum=65535, environ=environ),
            user=env_str("MYSQL_USER", default_user or cls.user, environ=environ),
            password=env_secret("MYSQL_PASSWORD", None, environ=environ),
            database=env_str("MYSQL_DATABASE", default_database, environ=environ),
            unix_socket=env_str("MYSQL_SOCKET", None, environ=environ),
            ssl_ca=env_str("MYSQL_SSL_CA", None, environ=environ),
            ssl_verify_identity=env_bool("MYSQL_SSL_VERIFY_IDENTITY", cls.ssl_verify_identity, environ=environ),
            connect_timeout=env_float("MYSQL_CONNECT_TIMEOUT_SECONDS", cls.connect_timeout, minimum=0.1,
                                      environ=environ),
            query_timeout=env_float("MYSQL_QUERY_TIMEOUT_SECONDS", cls.query_timeout, minimum=0.1,
                                    environ=environ),
            pool_size=env_int("MYSQL_POOL_SIZE", cls.pool_size, minimum=1, environ=environ),
            pool_timeout=env_float("MYSQL_POOL_TIMEOUT_SECONDS", cls.pool_timeout, minimum=0.01, environ=environ),
            probe_timeout=env_float("READINESS_TIMEOUT_SECONDS", cls.probe_timeout, minimum=0.05, environ=environ),
            connect_retries=env_int("MYSQL_CONNECT_RETRIES", cls.connect_retries, minimum=0, environ=environ),
            retry_backoff=env_float("MYSQL_CONNECT_BACKOFF_SECONDS", cls.retry_backoff, minimum=0.01,
                                    environ=environ),
            retry_backoff_max=env_float("MYSQL_CONNECT_BACKOFF_MAX_SECONDS", cls.retry_backoff_max,
                                        minimum=0.01, environ=environ),
        )
