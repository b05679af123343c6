"""`flask sweep` says whether its pushes reach the service's open pages (issue 12: 8)."""

import os

import pytest

from broker import create_app

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


def sweep_output(app, *args) -> str:
    result = app.test_cli_runner().invoke(args=["sweep", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_sweep_without_redis_says_open_pages_catch_up_only_at_their_resync(app):
    app.config["LIVE_RESYNC_SECONDS"] = 45

    said = sweep_output(app, "--at", "2026-11-24T10:00:00Z")

    assert "Swept as of 2026-11-24T10:00:00+00:00" in said
    assert "cannot push to the pages open on the service" in said
    assert "next resync (LIVE_RESYNC_SECONDS = 45 s)" in said
    assert "SWEEP_INTERVAL_SECONDS" in said and "set REDIS_URL" in said


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set TEST_REDIS_URL")
def test_a_sweep_with_redis_says_it_pushed_through_it(app, database_url):
    with_redis = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "SWEEP_INTERVAL_SECONDS": 0,
            "DATABASE_URL": database_url,
            "REDIS_URL": REDIS_URL,
        }
    )

    said = sweep_output(with_redis)

    assert "pushed through Redis to the service's clients" in said
    assert "cannot push" not in said
