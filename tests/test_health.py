"""GET /healthz, the balancer's question: can this process serve?

Each part is checked for real: the database with a query, Redis with a PING, the
sweeper by its thread. A part that is not there (no server listening on its port)
turns the answer into a 503 that names it, and never anything about patients.
"""

import os
import time

import pytest
from helpers import free_port

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


@pytest.fixture
def sweeping_app(app):
    """The app with its sweeper on (a pass an hour: none runs during the test), started."""
    app.config["SWEEP_INTERVAL_SECONDS"] = 3600
    assert health(app)[1]["sweeper"] == "ok"  # the first request starts it
    yield app
    app.extensions["sweeper"].stop.set()


SWEEPER_DOWN = {"status": "down", "database": "ok", "redis": "off", "sweeper": "down"}


def test_a_sweeper_whose_thread_ended_is_a_503(sweeping_app):
    sweeper = sweeping_app.extensions["sweeper"]
    sweeper.stop.set()
    sweeper.thread.join(timeout=10)

    assert health(sweeping_app) == (503, SWEEPER_DOWN)


def test_a_sweeper_that_stopped_turning_is_a_503(sweeping_app):
    """Its thread lives but began no pass and no wait for far longer than its interval."""
    sweeper = sweeping_app.extensions["sweeper"]
    sweeper.last_beat = time.monotonic() - 4 * 3600

    assert health(sweeping_app) == (503, SWEEPER_DOWN)
