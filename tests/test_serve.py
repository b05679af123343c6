"""`make migrate` and `make serve`, the production commands, run as an operator runs them.

It migrates a fresh database and serves with gunicorn's gevent worker
(SOCKETIO_ASYNC_MODE=gevent): the API answers, a real Socket.IO client connects
over the websocket with its token and receives a new consult the moment it is
created, and the log shows no error. Its access log has each request's path without
the query string. Everything else in the suite runs the
threaded development server; this is where the event loop is checked.
"""

import os
import signal
import subprocess
import sys
import time

import pytest
import requests
import socketio
from conftest import NEW_CONSULT
from helpers import ROOT, ServerProcess, broker_env, free_port

WAIT = 30.0  # seconds: only a limit


def flask(env: dict, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=WAIT,
    )  # fmt: skip


@pytest.fixture
def served(tmp_path):
    """`make serve` on a free port, over a fresh SQLite file; its URL, log and env."""
    env = broker_env(f"sqlite:///{tmp_path / 'serve.db'}")
    env.pop("REDIS_URL", None)
    subprocess.run(
        ["make", "--no-print-directory", "migrate"],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=WAIT,
    )  # fmt: skip
    server = ServerProcess(
        lambda port: [
            "make",
            "--no-print-directory",
            "serve",
            f"PORT={port}",
            f"CONTROL_SOCKET={tmp_path / 'gunicorn.ctl'}",
        ],  # fmt: skip
        env,
        tmp_path / "serve.log",
    )
    try:
        yield server.start().url, server.log_path, env
    finally:
        server.stop()


def token(url: str, email: str) -> str:
    response = requests.post(
        url + "/api/tokens",
        json={"email": email, "password": "a long enough password"},
        timeout=WAIT,
    )
    assert response.status_code == 201, response.text
    return response.json()["token"]


def test_make_serve_runs_the_api_and_live_pushes_on_gevent(served):
    url, log_path, env = served
    flask(env, "departments", "create", "--slug", "radiology", "--name", "Radiology")
    for email in ("rad@h.test", "req@h.test"):
        flask(env, "users", "create", "--email", email, "--name", email,
              "--password", "a long enough password")  # fmt: skip
    flask(
        env, "departments", "add-member", "--slug", "radiology", "--email", "rad@h.test"
    )
    received = []
    client = socketio.Client(reconnection=False)
    client.on("consult", received.append)
    client.connect(
        url, transports=["websocket"], auth={"token": token(url, "rad@h.test")}
    )
    try:
        created = requests.post(
            url + "/api/consults",
            json=NEW_CONSULT,
            headers={"Authorization": f"Bearer {token(url, 'req@h.test')}"},
            timeout=WAIT,
        )
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        listed = requests.get(
            url + "/api/consults?department=radiology&page_size=5",
            headers={"Authorization": f"Bearer {token(url, 'req@h.test')}"},
            timeout=WAIT,
        )
        assert listed.status_code == 200
    finally:
        client.disconnect()

    assert [c["id"] for c in received] == [created.json()["id"]]
    log = log_path.read_text()
    assert "Using worker: gevent" in log
    assert "Traceback" not in log
    assert '"GET /api/consults" 200' in log
    assert "page_size" not in log


def test_make_serve_without_a_secret_key_refuses_to_start_saying_so(tmp_path):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}"}
    for name in ("SECRET_KEY", "FLASK_DEBUG"):
        env.pop(name, None)

    process = subprocess.Popen(
        ["make", "--no-print-directory", "serve", f"PORT={free_port()}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        _, stderr = process.communicate(timeout=WAIT)
    finally:  # a server that kept trying must not outlive the test
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=WAIT)

    assert process.returncode != 0
    assert "Error: SECRET_KEY is not set" in stderr
    assert not (tmp_path / "serve.db").exists()
