"""GET /healthz: whether this process can serve, for the balancer and the monitoring.

200 when the database answers, Redis answers (where REDIS_URL is set) and the sweeper
turns (where the sweep is on); 503 naming what does not. No patient data, no
sign-in: it says only "ok", "down" or "off" per part.
"""

import redis
from flask import Blueprint, current_app
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from broker.extensions import db, limiter
from broker.sweeper import sweeper_alive

health = Blueprint("health", __name__)

# Seconds a check may take before its part counts as down.
CHECK_TIMEOUT = 2


def _database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        current_app.logger.warning("health: the database does not answer")
        return False


def _redis_ok(url: str) -> bool:
    client = current_app.extensions.get("health_redis")
    if client is None:
        client = current_app.extensions["health_redis"] = redis.Redis.from_url(
            url, socket_timeout=CHECK_TIMEOUT, socket_connect_timeout=CHECK_TIMEOUT
        )
    try:
        return bool(client.ping())
    except redis.RedisError:
        current_app.logger.warning("health: Redis does not answer")
        return False


def _state(ok: bool | None) -> str:
    return "off" if ok is None else "ok" if ok else "down"


@health.get("/healthz")
@limiter.exempt
def healthz():
    url = current_app.config["REDIS_URL"]
    checks = {
        "database": _state(_database_ok()),
        "redis": _state(_redis_ok(url) if url else None),
        "sweeper": _state(sweeper_alive(current_app)),
    }
    healthy = "down" not in checks.values()
    body = {"status": "ok" if healthy else "down", **checks}
    return body, 200 if healthy else 503
