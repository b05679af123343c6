"""The consult broker: create_app() builds the Flask application."""

import logging
import os
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

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
    app.config.setdefault(
        "RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "memory://"
    )
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # Redis down must not stop anyone signing in: count in memory until it is back.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    limiter.init_app(app)
    rest_api.init_app(app)
    socketio.init_app(
        app,
        message_queue=app.config["REDIS_URL"] or None,
        channel=app.config["SOCKETIO_CHANNEL"],
        async_mode=app.config["SOCKETIO_ASYNC_MODE"],
    )
    _trust_proxies(app)

    from broker import live  # noqa: F401  (registers the Socket.IO handlers)
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


def add_security_headers(response):
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    # Same-origin pages send their address as Referer (Flask-WTF's CSRF check needs it over
    # HTTPS); no other site ever learns where a link was followed from.
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Permissions-Policy", "camera=(), microphone=(), geolocation=()"
    )
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if response.mimetype in ("text/html", "application/json", "text/csv"):
        # Pages and answers carry patient data: never keep them in a shared cache.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


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


def _configure_logging(app: Flask) -> None:
    """Log lines carry method, path and status only: no request bodies, no query parameters."""
    if not app.debug and not app.testing:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
