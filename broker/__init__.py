"""The consult broker: create_app() builds the Flask application."""

import logging
import os
import re
import secrets
import sys
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.datastructures import Headers
from werkzeug.middleware.proxy_fix import ProxyFix

from broker.bounds import refuse_deep_json
from broker.config import Config, normalise_database_url
from broker.extensions import (
    csrf,
    db,
    limiter,
    login_manager,
    migrate,
    rest_api,
    socketio,
)
from broker.live_clients import client_manager
from broker.models import render_for_migrations

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _check_time_zone(name: str) -> None:
    """A misspelt HOSPITAL_TIME_ZONE stops the start, rather than every page later."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuntimeError(
            f"HOSPITAL_TIME_ZONE={name!r} is not a time zone (e.g. Europe/London)"
        ) from None


def _check_secret_key(app: Flask) -> None:
    """No built-in secret: outside development and tests, serving without SECRET_KEY
    stops the start (gunicorn, `flask run`).

    Development (FLASK_DEBUG), tests, and the other command-line commands (which sign
    nothing: migrations, users, the sweep) get a random key for this process.
    """
    if app.config["SECRET_KEY"]:
        return
    if not (app.debug or app.testing or _command_other_than_run()):
        raise RuntimeError(
            "SECRET_KEY is not set: set it to a long random value, the same in every "
            "process (`make run` keeps one in instance/secret_key)"
        )
    app.config["SECRET_KEY"] = secrets.token_hex(32)


def _command_other_than_run() -> bool:
    """Built by the `flask` command line for a command that does not serve."""
    return os.environ.get("FLASK_RUN_FROM_CLI") == "true" and "run" not in sys.argv[1:]


def _configure_limiter(app: Flask) -> None:
    app.config.setdefault(
        "RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://"
    )
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # Redis down must not stop anyone signing in: count in memory until it is back.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    limiter.init_app(app)


def create_app(overrides: dict | None = None) -> Flask:
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=os.path.join(ROOT, "templates"),
        static_folder=os.path.join(ROOT, "static"),
    )
    app.config.from_object(Config)
    app.config.update(overrides or {})
    os.makedirs(app.instance_path, exist_ok=True)
    _check_time_zone(app.config["HOSPITAL_TIME_ZONE"])
    _check_secret_key(app)
    _configure_database(app)
    _configure_logging(app)

    db.init_app(app)
    migrate.init_app(
        app,
        db,
        directory=os.path.join(ROOT, "migrations"),
        render_as_batch=True,  # SQLite can only alter tables by copying them
        render_item=render_for_migrations,
        compare_type=True,
    )
    login_manager.init_app(app)
    csrf.init_app(app)
    _configure_limiter(app)
    app.before_request(refuse_deep_json)
    rest_api.init_app(app)
    socketio.init_app(
        app,
        client_manager=client_manager(
            app.config["REDIS_URL"], app.config["SOCKETIO_CHANNEL"]
        ),
        async_mode=app.config["SOCKETIO_ASYNC_MODE"],
    )
    app.wsgi_app = LiveSecurityHeaders(app.wsgi_app)
    _trust_proxies(app)

    from broker import lazy_loads, live  # noqa: F401  (registers their listeners)
    from broker.api import register_api
    from broker.api.errors import register_error_handlers
    from broker.cli import register_commands
    from broker.health import health
    from broker.sweeper import start_sweeper
    from broker.web import web
    from broker.web.oidc import init_oidc

    register_api(app, rest_api)
    init_oidc(app)
    app.register_blueprint(web)
    app.register_blueprint(health)
    register_error_handlers(app)
    register_commands(app)
    app.before_request(lambda: start_sweeper(app))
    app.after_request(add_security_headers)
    return app


def _trust_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXIES proxies, take the client's address, scheme and host from them.

    Wrapped around Socket.IO's middleware too, so that its origin check compares a
    browser's `https://host:port` with the address the browser really used.
    """
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)


# Scripts, styles, images and sockets from this origin only; no framing, no plugins.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


# Browsers that reached the service over HTTPS keep to it for a year.
HSTS = "max-age=31536000"


def security_headers(headers: Headers, mimetype: str, secure: bool) -> None:
    """The headers every answer carries (those it has already are kept)."""
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    # Same-origin pages send their address as Referer (Flask-WTF's CSRF check needs it over
    # HTTPS); no other site ever learns where a link was followed from.
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    if secure:
        headers.setdefault("Strict-Transport-Security", HSTS)
    if mimetype in ("text/html", "application/json", "text/csv"):
        # Pages and answers carry patient data: never keep them in a shared cache.
        headers.setdefault("Cache-Control", "no-store")


def add_security_headers(response):
    security_headers(response.headers, response.mimetype, request.is_secure)
    return response


class LiveSecurityHeaders:
    """WSGI: Socket.IO's answers (which carry patient data when polling) get the same
    security headers, and are never cached; Socket.IO answers them before Flask's
    after_request could."""

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if not environ.get("PATH_INFO", "").startswith("/socket.io"):
            return self.wsgi_app(environ, start_response)

        def start(status, headers, exc_info=None):
            headers = Headers(headers)
            mimetype = headers.get("Content-Type", "").partition(";")[0]
            secure = environ.get("wsgi.url_scheme") == "https"
            security_headers(headers, mimetype, secure)
            headers.setdefault("Cache-Control", "no-store")
            return start_response(status, headers.to_wsgi_list(), exc_info)

        return self.wsgi_app(environ, start)


def _configure_database(app: Flask) -> None:
    url = app.config["DATABASE_URL"] or "sqlite:///" + os.path.join(
        app.instance_path, "broker.sqlite"
    )
    url = normalise_database_url(url)
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    # Query parameters (patient references, questions) never appear in error messages or logs.
    options = {"hide_parameters": True, "pool_pre_ping": True}
    if url.startswith("sqlite"):
        options["connect_args"] = {"timeout": 30}
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


@event.listens_for(Engine, "connect")
def _sqlite_enforces_foreign_keys(dbapi_connection, connection_record):
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


class PathOnly(logging.Filter):
    """The development server's access log (the `werkzeug` logger) without query strings:
    they carry filters, dates and Socket.IO session ids."""

    QUERY = re.compile(r"\?[^\s\"']*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.QUERY.sub("", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


def _configure_logging(app: Flask) -> None:
    """Log lines carry method, path and status only: no request bodies, no query parameters."""
    werkzeug_log = logging.getLogger("werkzeug")
    if not any(isinstance(f, PathOnly) for f in werkzeug_log.filters):
        werkzeug_log.addFilter(PathOnly())
    if not app.debug and not app.testing:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
