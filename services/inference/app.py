"""Flask application factory of the model server.

gunicorn calls ``create_app()`` inside each worker after the fork (``wsgi_app`` in
``gunicorn.conf.py``; no ``preload_app``), so every worker loads its own model in its own
background thread and the master never imports a model runtime.
"""

from __future__ import annotations

import logging
import sys
import time

from flask import Flask, Response, g, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import HTTPException

from services.inference import metrics
from services.inference.api import ApiError, NameConverter, bp, error_response
from services.inference.logs import make_formatter
from services.inference.repository import ModelRepository
from services.inference.settings import Settings

log = logging.getLogger("services.inference")

_MODEL_ENDPOINTS = {
    "predict",
    "predict_version",
    "model_status",
    "model_version_status",
    "model_metadata",
    "model_version_metadata",
    "model_ready",
}
#: The one route of the metrics port (``METRICS_PORT``), which no serving port answers.
METRICS_ENDPOINT = "api.prometheus_metrics"
METRICS_PORT_ONLY = "the metrics port serves GET /metrics and nothing else"
_HTTP_MESSAGES = {
    404: "no such route; see /v1/models/<name>, /v1/models/<name>:predict, /v2/health/ready",
    405: "method {method} is not allowed on {path}",
    413: "request body exceeds MAX_BODY_BYTES={limit} bytes; send fewer instances per request",
}


def _configure_logging(level: str, log_format: str) -> None:
    logger = logging.getLogger("services")
    logger.setLevel(getattr(logging, level.upper()))
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(make_formatter(log_format))
        logger.addHandler(handler)
        logger.propagate = False


DRAIN_LIMIT = 64 * 1024 * 1024


def _drain_body() -> None:
    """Read and discard an oversized body (up to DRAIN_LIMIT) so the client sees the 413 response
    instead of a connection reset while it is still sending."""
    length = request.content_length
    stream = request.environ.get("wsgi.input")
    if length is None or length > DRAIN_LIMIT or stream is None:
        return
    remaining = length
    try:
        while remaining > 0:
            chunk = stream.read(min(remaining, 1 << 16))
            if not chunk:
                break
            remaining -= len(chunk)
    except (OSError, ValueError):
        pass


def create_app(settings: Settings | None = None, *, start_loader: bool = True) -> Flask:
    """Build the app: routes, JSON errors, metrics hooks, and the model repository (loading in the background)."""
    settings = settings or Settings.from_env()
    _configure_logging(settings.log_level, settings.log_format)
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body_bytes)
    app.url_map.converters["name"] = NameConverter
    app.url_map.strict_slashes = False
    app.register_blueprint(bp)

    repository = ModelRepository(settings)
    metrics.initialise(settings.model_name, settings.model_version)
    app.extensions["inference.settings"] = settings
    app.extensions["inference.repository"] = repository
    _register_error_handlers(app, settings)
    _register_request_metrics(app)
    _register_listener_routes(app, settings.metrics_port)

    if start_loader:
        repository.start()
    log.info(
        "model server for '%s' (%s backend) reading %s; version %s",
        settings.model_name,
        settings.model_backend,
        repository.version_path or repository.model_dir,
        settings.model_version if settings.model_version is not None else "latest",
    )
    return app


def listener_port(environ: dict) -> int | None:
    """The local port of the listener a request came in on: the socket gunicorn hands the app
    (``SERVER_PORT`` under another WSGI server or a test client), never the client's Host header."""
    sock = environ.get("gunicorn.socket")
    if sock is not None:
        try:
            return int(sock.getsockname()[1])
        except (OSError, IndexError, TypeError):
            return None
    try:
        return int(environ.get("SERVER_PORT", ""))
    except ValueError:
        return None


def _register_listener_routes(app: Flask, metrics_port: int) -> None:
    """``/metrics`` answers only on the metrics port, and the metrics port answers nothing else
    (404 both ways), so a Gateway route or a NetworkPolicy can admit one port without the other.
    Registered after the metrics hooks: these 404s are counted too."""

    @app.before_request
    def _only_this_listeners_routes() -> None:
        on_metrics_port = listener_port(request.environ) == metrics_port
        if on_metrics_port and request.endpoint != METRICS_ENDPOINT:
            raise ApiError(404, METRICS_PORT_ONLY)
        if not on_metrics_port and request.endpoint == METRICS_ENDPOINT:
            raise ApiError(404, _HTTP_MESSAGES[404])


def _register_error_handlers(app: Flask, settings: Settings) -> None:
    """Every error answers in TF Serving's JSON shape: API errors as raised, HTTP errors with a
    message that says what to do, a body gunicorn's parser refuses as 400, and anything unexpected
    as a logged 500 that keeps the worker."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, exc.headers)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        if exc.code == 413:
            _drain_body()
        template = _HTTP_MESSAGES.get(exc.code or 500)
        message = (
            template.format(method=request.method, path=request.path, limit=settings.max_body_bytes)
            if template
            else (exc.description or exc.name)
        )
        headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return error_response(exc.code or 500, message, headers)

    @app.errorhandler(ParseException)
    def _malformed_body(exc: ParseException) -> Response:
        # The worker's framer refuses such bodies before the app runs; should one still get through,
        # gunicorn raises while the view reads it. The client's fault, not a bug: a 400, no traceback.
        # gunicorn then closes the connection (Body.failed): where the next request starts is unknown.
        log.info("malformed request body on %s %s: %s", request.method, request.path, exc)
        return error_response(400, f"malformed request body: {exc}")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:  # a bug, never a client error: log it, keep the worker alive
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal error; the server log has the details")


def _register_request_metrics(app: Flask) -> None:
    """The request hooks behind the request count, latency and in-flight metrics: started before
    the view, recorded after it, and the in-flight gauge released whatever happened."""

    @app.before_request
    def _start() -> None:
        g.t0 = time.perf_counter()
        metrics.IN_FLIGHT.inc()

    @app.after_request
    def _record(response: Response) -> Response:
        rule = request.url_rule
        endpoint = rule.endpoint.rsplit(".", 1)[-1] if rule is not None else "unmatched"
        model = g.get("model", "") if endpoint in _MODEL_ENDPOINTS else ""
        metrics.series(metrics.REQUESTS, endpoint, model, g.get("version", ""), str(response.status_code)).inc()
        metrics.series(metrics.REQUEST_LATENCY, endpoint, model).observe(
            time.perf_counter() - g.get("t0", time.perf_counter())
        )
        return response

    @app.teardown_request
    def _finish(_exc: BaseException | None) -> None:
        if "t0" in g:
            metrics.IN_FLIGHT.dec()
