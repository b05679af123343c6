"""GET /healthz, the balancer's question: can this process serve?

Each part is checked for real: the database with a query, Redis with a PING, the
sweeper by its thread. A part that is not there (no server listening on its port)
turns the answer into a 503 that names it, and never anything about patients.
"""

import os
import time

import pytest
from conftest import free_port

from broker import create_app

TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


def health(app):
    response = app.test_client().get("/healthz")
    return response.status_code, response.json


def nowhere_app(database_url, **settings):
    return create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test",
            "SWEEP_INTERVAL_SECONDS": 0,
            **settings,
        }
    )


def test_a_process_whose_parts_answer_is_healthy(app):
    assert health(app) == (
        200,
        {"status": "ok", "database": "ok", "redis": "off", "sweeper": "off"},
    )


def test_the_health_check_needs_no_sign_in_and_sets_no_cookie(app):
    response = app.test_client().get("/healthz")

    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


def test_a_database_that_does_not_answer_is_a_503(tmp_path):
    app = nowhere_app(f"postgresql://postgres@127.0.0.1:{free_port()}/none")

    assert health(app) == (
        503,
        {"status": "down", "database": "down", "redis": "off", "sweeper": "off"},
    )


def test_a_redis_that_does_not_answer_is_a_503(database_url, app):
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"

    assert health(app) == (
        503,
        {"status": "down", "database": "ok", "redis": "down", "sweeper": "off"},
    )


@pytest.mark.skipif(not TEST_REDIS_URL, reason="needs Redis: set TEST_REDIS_URL")
def test_a_redis_that_answers_is_ok(app):
    app.config["REDIS_URL"] = TEST_REDIS_URL

    assert health(app)[1]["redis"] == "ok"


def test_the_sweeper_is_alive_once_started_and_down_when_its_thread_ends(app):
    app.config["SWEEP_INTERVAL_SECONDS"] = 1
    assert health(app)[1]["sweeper"] == "ok"  # the first request starts it

    sweeper = app.extensions["sweeper"]
    sweeper.last_beat = time.monotonic() - 3600  # no pass and no wait for an hour

    assert health(app) == (
        503,
        {"status": "down", "database": "ok", "redis": "off", "sweeper": "down"},
    )
