"""Shared plumbing for the e-commerce services.

Modules:
    config   - settings from environment variables
    jsonlog  - JSON log lines on stdout
    metrics  - Prometheus metrics (per-app registry)
    web      - routing, JSON request/response helpers, /healthz /readyz /metrics
    server   - ThreadingHTTPServer + graceful shutdown on SIGTERM
    client   - JSON HTTP client for service-to-service calls (timeouts)
    db       - PyMySQL connect-with-retry, pool, schema bootstrap (DB services only)
"""

from .client import ServiceClient, UpstreamError, UpstreamResponse, UpstreamTimeout
from .config import ConfigError, DBConfig, ServerConfig, env_bool, env_float, env_int, env_secret, env_str
from .jsonlog import JsonFormatter, configure_logging
from .metrics import Metrics
from .server import ServiceRunner, run, run_service
from .web import App, HTTPError, Request, Response, json_response, require_int, require_str

__version__ = "1.0.0"

__all__ = [
    "App", "ConfigError", "DBConfig", "HTTPError", "JsonFormatter", "Metrics", "Request", "Response",
    "ServerConfig", "ServiceClient", "ServiceRunner", "UpstreamError", "UpstreamResponse", "UpstreamTimeout",
    "configure_logging", "env_bool", "env_float", "env_int", "env_secret", "env_str", "json_response",
    "require_int", "require_str", "run", "run_service",
]
