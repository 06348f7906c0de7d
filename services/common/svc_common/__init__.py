"""Shared plumbing for the e-commerce services.

Modules:
    config   - settings from environment variables
    errors   - HTTPError, ServiceUnavailable (503 + Retry-After)
    payload  - bounded JSON parsing, field validators
    idempotency - the Idempotency-Key header, request fingerprints
    readiness - readiness checks that answer within the probe timeout
    background - periodic background tasks
    jsonlog  - JSON log lines on stdout
    metrics  - Prometheus metrics (per-app registry)
    web      - routing, JSON request/response helpers, /healthz /readyz /metrics
    server   - ThreadingHTTPServer + graceful shutdown on SIGTERM
    client   - JSON HTTP client for service-to-service calls (timeouts)
    db       - PyMySQL bounded pool, one TLS context, errors as 503, readiness (DB services only)
    migrations - numbered schema migrations (DB services only)
"""

from .background import run_periodically
from .client import ServiceClient, UpstreamError, UpstreamResponse, UpstreamTimeout
from .config import ConfigError, DBConfig, ServerConfig, env_bool, env_float, env_int, env_secret, env_str
from .errors import HTTPError, ServiceUnavailable
from .idempotency import idempotency_key
from .jsonlog import JsonFormatter, configure_logging
from .metrics import Metrics
from .payload import require_int, require_str
from .server import ServiceRunner, run, run_service
from .web import App, Request, Response, json_response

__version__ = "1.1.0"

__all__ = [
    "App", "ConfigError", "DBConfig", "HTTPError", "JsonFormatter", "Metrics", "Request", "Response",
    "ServerConfig", "ServiceClient", "ServiceRunner", "ServiceUnavailable", "UpstreamError", "UpstreamResponse",
    "UpstreamTimeout", "configure_logging", "env_bool", "env_float", "env_int", "env_secret", "env_str",
    "idempotency_key", "json_response", "require_int", "require_str", "run", "run_periodically", "run_service",
]
