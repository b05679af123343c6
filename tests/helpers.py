"""Helpers shared by the tests and the benchmarks, each defined once.

- Signing in: through the pages (`sign_in`, `signed_in_session`) or for a token
  (`token_headers`).
- Consult steps through the HTTP API at a frozen instant (`act`, `show`, `create`,
  `claimed`, `answered`...). An instant is given as a datetime, or as a number of
  minutes after T0. Shifts (`scheduled`), the sweep's output (`swept`), a CLI
  refusal (`assert_cli_refused`), calls released at once (`fire_together`).
- Real server processes (`ServerProcess`, `start_server`) and the one readiness
  wait (`wait_ready`), which tolerates a slow first answer.
- A Socket.IO listener (`Screen`) that records what one user's connection receives.

The tests import this module as `helpers` (pytest puts tests/ on sys.path); the
scripts in bench/ put the repository's root on sys.path and import `tests.helpers`.
So nothing here imports conftest.
"""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
import socketio

from broker import clock

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2030, 3, 4, 8, 0, tzinfo=UTC)  # a Monday
PASSWORD = "correct horse battery"  # every test user's
WAIT = 5.0  # seconds: only a limit, so that a missing push fails instead of hanging
READY_WITHIN = 90.0  # seconds for a server to start, however slow the machine
FIRST_ANSWER_WITHIN = 30.0  # seconds for one readiness probe to be answered


# --- instants ---------------------------------------------------------------------


def at(minutes: float = 0, seconds: float = 0, hours: float = 0) -> datetime:
    """The instant this long after T0."""
    return T0 + timedelta(hours=hours, minutes=minutes, seconds=seconds)


def instant(moment: float | datetime) -> datetime:
    """A datetime as it is; a number as that many minutes after T0."""
    return moment if isinstance(moment, datetime) else at(moment)


def when(value: str) -> datetime:
    """An ISO 8601 instant as the API writes it."""
    return datetime.fromisoformat(value)


# --- signing in ------------------------------------------------------------------


def csrf_token(page_html: str) -> str:
    """The session's CSRF token, as any form on the page carries it."""
    return re.search(r'csrf_token"[^>]* value="([^"]+)"', page_html).group(1)


def sign_in(client, email, password=PASSWORD):
    """Sign in through the sign-in page with the test client (its cookie jar); the answer."""
    token = csrf_token(client.get("/sign-in").text)
    return client.post(
        "/sign-in", data={"csrf_token": token, "email": email, "password": password}
    )


def signed_in_session(url: str, email: str) -> requests.Session:
    """A session signed in through a real server's sign-in page, as a browser is."""
    browser = requests.Session()
    page = browser.get(url + "/sign-in", timeout=WAIT * 3)
    signed_in = browser.post(
        url + "/sign-in",
        data={
            "csrf_token": csrf_token(page.text),
            "email": email,
            "password": PASSWORD,
        },
        allow_redirects=False,
        timeout=WAIT * 3,
    )
    assert signed_in.status_code == 302, signed_in.text[:500]
    return browser


def token_headers(client, email, password=PASSWORD) -> dict:
    """Headers carrying a new API token of that user, from POST /api/tokens."""
    response = client.post("/api/tokens", json={"email": email, "password": password})
    assert response.status_code == 201, response.json
    return {"Authorization": f"Bearer {response.json['token']}"}


# --- consults through the API, at a frozen instant ---------------------------------


@dataclass
class Person:
    """A user with an API token."""

    user_id: int
    name: str
    email: str
    token: str

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


class Calls:
    """The Flask test client's calls, each sent with this object's `headers`."""

    client: object
    headers: dict

    def get(self, path, **kwargs):
        return self.client.get(path, headers=self.headers, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.client.post(path, headers=self.headers, json=json or {}, **kwargs)

    def put(self, path, json=None, **kwargs):
        return self.client.put(path, headers=self.headers, json=json or {}, **kwargs)

    def delete(self, path, **kwargs):
        return self.client.delete(path, headers=self.headers, **kwargs)


def user(caller) -> dict:
    """The caller as the API shows a person."""
    return {"id": caller.user_id, "name": caller.name, "email": caller.email}


def create(new_consult, at=0, **overrides) -> dict:
    """A consult made with the `new_consult` fixture at instant `at`."""
    with clock.frozen_at(instant(at)):
        return new_consult(**overrides)


def post(caller, consult, action, at=0, **payload):
    """POST /api/consults/<id>/<action> as `caller` at instant `at`; the response."""
    with clock.frozen_at(instant(at)):
        return caller.post(f"/api/consults/{consult['id']}/{action}", json=payload)


def act(caller, consult, action, at=0, expect=200, **payload) -> dict:
    """As `post`, asserting the status `expect`; the JSON answer."""
    response = post(caller, consult, action, at=at, **payload)
    assert response.status_code == expect, response.json
    return response.json


def show(caller, consult, at=0, expect=200) -> dict:
    """GET /api/consults/<id> as `caller` at instant `at`."""
    with clock.frozen_at(instant(at)):
        response = caller.get(f"/api/consults/{consult['id']}")
    assert response.status_code == expect, response.json
    return response.json


def claimed(hospital, new_consult, by=None, at=5, **overrides) -> dict:
    """A consult (stat unless overridden) created at T0, claimed at `at` by
    `by` (castillo unless given)."""
    consult = create(new_consult, **overrides)
    return act(by or hospital.castillo, consult, "claim", at=at)


def answered(hospital, new_consult, by=None, at=20) -> dict:
    """Claimed by `by` (castillo unless given) at minute 5 and answered by them at `at`."""
    by = by or hospital.castillo
    consult = claimed(hospital, new_consult, by=by)
    return act(by, consult, "answer", at=at, body="No collection.")


# The timeline of the whole story (claim, handoff, answer, follow-up, close).
WHOLE_STORY = [
    "created",
    "claimed",
    "handoff_offered",
    "handoff_accepted",
    "answered",
    "followup",
    "answered",
    "closed",
]


def last_event(consult) -> dict:
    return consult["timeline"][-1]


def steps(consult) -> list[tuple]:
    """The timeline as (kind, actor id, body)."""
    return [
        (e["kind"], e["actor"]["id"] if e["actor"] else None, e["body"])
        for e in consult["timeline"]
    ]


def shift(chief, who, role, starts, ends, slug="radiology"):
    """POST a shift of `who` to the department's schedule as `chief`; the response."""
    return chief.post(
        f"/api/departments/{slug}/shifts",
        json={
            "user_id": who.user_id,
            "role": role,
            "starts_at": starts.isoformat(),
            "ends_at": ends.isoformat(),
        },
    )


def scheduled(chief, who, role, starts, ends, slug="radiology") -> dict:
    """As `shift`, asserting it was made; the shift."""
    response = shift(chief, who, role, starts, ends, slug)
    assert response.status_code == 201, response.json
    return response.json


def fire_together(calls, timeout: float = 60) -> list:
    """Run the zero-argument callables in parallel threads, released by one barrier.

    Returns their results in the order of `calls`; an exception in any thread
    is raised here. `timeout` only bounds the waits, so that a hang fails.
    """
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(timeout=timeout)
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        return [future.result(timeout=timeout * 2) for future in futures]


# --- the sweep, as the command line reports it ----------------------------------

SWEEP_SUMMARY = re.compile(
    r"^Swept as of (?P<at>\S+): (?P<escalated>\d+) escalation\(s\), "
    r"(?P<closed>\d+) closed automatically\.$"
)
ESCALATION_LINE = re.compile(r"^\s*consult #(\d+) escalated to level (\d+)$")


@dataclass
class Swept:
    at: datetime
    escalated: list[tuple[int, int]]  # (consult id, level), as printed
    closed: int


def swept(output: str) -> Swept:
    """What `flask sweep` printed, parsed, checking that its lines add up (the last
    line says where its pushes went)."""
    lines = output.strip().splitlines()
    summary = SWEEP_SUMMARY.match(lines[0])
    assert summary, lines[0]
    assert "push" in lines[-1], lines[-1]
    escalated = [
        tuple(int(n) for n in ESCALATION_LINE.match(line).groups())
        for line in lines[1:-1]
    ]
    assert len(escalated) == int(summary["escalated"]), output
    return Swept(when(summary["at"]), escalated, int(summary["closed"]))


def assert_cli_refused(result, *words) -> None:
    """A command's refusal: non-zero exit, and one line on stderr that gives the
    reason (with each of `words`), no crash."""
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), f"crashed: {result.exception!r}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]


# --- server processes --------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(probe, process: subprocess.Popen, what: str, errors=()) -> None:
    """Until `probe()` returns true, however slow its first answer: a probe that
    raises one of `errors` is tried again. Fails only if the process ends or
    READY_WITHIN seconds pass; `what` names the process (and its log) if so."""
    deadline = time.monotonic() + READY_WITHIN
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited ({process.returncode})")
        try:
            if probe():
                return
        except errors:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready within {READY_WITHIN:.0f} s")
        time.sleep(0.2)


def answers(url: str):
    """A probe for wait_ready: `url` answers with a status below 500."""
    return lambda: requests.get(url, timeout=FIRST_ANSWER_WITHIN).status_code < 500


class ServerProcess:
    """A server command run in its own process group on a free port, until stop().

    `command(port)` is the command line; stdout and stderr go to `log_path`.
    """

    def __init__(
        self,
        command,
        env: dict,
        log_path: Path,
        ready_path: str = "/api/openapi.json",
        stop_signal: int = signal.SIGTERM,
        name: str = "",
    ):
        self.name = name or log_path.stem
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = command(self.port)
        self.env = env
        self.log_path = log_path
        self.ready_path = ready_path
        self.stop_signal = stop_signal
        self.process = None

    def start(self) -> "ServerProcess":
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_ready(
                answers(self.url + self.ready_path),
                self.process,
                f"the server {self.name} (log: {self.log_path})",
                requests.RequestException,
            )
        except RuntimeError as error:
            self.stop()
            raise RuntimeError(f"{error}:\n{self.log()[-6000:]}") from None
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, self.stop_signal)
            self.process.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tracebacks(self) -> list[str]:
        """The tracebacks in the log (each with the line after it ends)."""
        lines = self.log().splitlines()
        found, i = [], 0
        while i < len(lines):
            if lines[i].startswith("Traceback"):
                j = i + 1
                while j < len(lines) and lines[j].startswith((" ", "\t")):
                    j += 1
                found.append("\n".join(lines[i : j + 1]))
                i = j
            i += 1
        return found


def gunicorn_server(
    name: str,
    app: str,
    env: dict,
    logdir: Path,
    async_mode: str,
    connections: int,
    threads: int = 1,
    graceful_timeout: int = 5,
    extra: tuple = (),
    ready_path: str = "/api/openapi.json",
) -> ServerProcess:
    """One gunicorn process (arbiter + one worker) serving `app`, not yet started.

    gevent: the gevent worker, one greenlet per connection, up to `connections`;
    threading: the threaded worker (gthread) with `threads` threads, accepting up
    to `connections`. Its log is `<logdir>/<name>.log`.
    """
    if async_mode == "gevent":
        worker = ["--worker-class", "gevent", "--worker-connections", str(connections)]
    else:
        worker = ["--threads", str(threads), "--worker-connections", str(connections)]

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "--workers", "1", *worker,
                "--bind", f"127.0.0.1:{port}", "--graceful-timeout",
                str(graceful_timeout), *extra, app]  # fmt: skip

    # gunicorn: SIGINT is the quick shutdown; the gevent worker runs it in a greenlet
    # whose sys.exit() gevent prints as a traceback, so gevent servers get SIGTERM.
    stop = signal.SIGTERM if async_mode == "gevent" else signal.SIGINT
    return ServerProcess(
        command, env, logdir / f"{name}.log", ready_path, stop, name=name
    )


def broker_env(database_url: str, **extra) -> dict:
    """The environment of a broker command on that database; the sweep off."""
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test",
        "SWEEP_INTERVAL_SECONDS": "0",
        **extra,
    }


def start_server(database_url: str, log_path: Path, **extra_env) -> ServerProcess:
    """The broker served by `flask run --with-threads` on that database, started.

    The sweep is off unless `SWEEP_INTERVAL_SECONDS` is given in `extra_env`.
    """
    return server_process(database_url, log_path, **extra_env).start()


def server_process(database_url: str, log_path: Path, **extra_env) -> ServerProcess:
    """`start_server`'s process before it starts: its address is known already."""
    env = broker_env(
        database_url,
        SESSION_COOKIE_SECURE="false",
        RAISE_ON_LAZY_LOAD="true",  # an N+1 raises (broker/lazy_loads.py)
        **extra_env,
    )

    def command(port: int) -> list[str]:
        return [sys.executable, "-m", "flask", "--app", "wsgi", "run",
                "--host", "127.0.0.1", "--port", str(port), "--with-threads"]  # fmt: skip

    return ServerProcess(command, env, log_path)


# --- Socket.IO ---------------------------------------------------------------------


@dataclass
class Received:
    event: str
    data: object
    at: float  # time.monotonic() on arrival


class Screen:
    """One user's live connection, recording every event it receives, in order."""

    def __init__(self, name: str):
        self.name = name
        self.client = socketio.Client(reconnection=False)
        self.received: list[Received] = []
        self.refusal = None
        self._closing = None
        self._arrived = threading.Condition()
        self.client.on("*", self._record)
        self.client.on("connect_error", self._refused)

    def _record(self, event, data=None):
        with self._arrived:
            self.received.append(Received(event, data, time.monotonic()))
            self._arrived.notify_all()

    def _refused(self, data=None):
        self.refusal = data

    def connect(self, url: str, **kwargs) -> "Screen":
        self.client.connect(url, transports=["websocket"], wait_timeout=WAIT, **kwargs)
        return self

    def close(self) -> None:
        """Disconnect without waiting for the end of it: the websocket client's
        close can wait up to 3 s for the server's closing frame."""
        if self.client.connected and self._closing is None:
            self._closing = threading.Thread(target=self.client.disconnect, daemon=True)
            self._closing.start()

    def watch(self, consult_id) -> dict:
        return self.client.call("watch", {"consult_id": consult_id}, timeout=WAIT)

    def mark(self) -> int:
        """A position in the received events, to look only at what comes after it."""
        with self._arrived:
            return len(self.received)

    def wait_for(self, predicate, since: int = 0, timeout: float = WAIT) -> Received:
        """The first event received (at or after `since`) that satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while True:
                for received in self.received[since:]:
                    if predicate(received):
                        return received
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{self.name} waited {timeout}s in vain; received: "
                        f"{self.summary(since)}"
                    )
                self._arrived.wait(remaining)

    def events(self, since: int = 0) -> list[Received]:
        with self._arrived:
            return list(self.received[since:])

    def consults(self, consult_id=None, since: int = 0) -> list[dict]:
        """The payloads of the `consult` events received (for one consult, if given)."""
        return [
            r.data
            for r in self.events(since)
            if r.event == "consult" and consult_id in (None, r.data["id"])
        ]

    def summary(self, since: int = 0) -> list:
        return [
            (r.event, r.data.get("id") if isinstance(r.data, dict) else r.data)
            for r in self.events(since)
        ]

    def everything_received(self) -> str:
        """All payloads as one text, to search for data that must not be there."""
        return json.dumps([[r.event, r.data] for r in self.events()])


def consult_event(consult_id: int, **fields):
    """Predicate: a `consult` event for that consult, with those field values."""

    def matches(received: Received) -> bool:
        return (
            received.event == "consult"
            and received.data["id"] == consult_id
            and all(received.data.get(k) == v for k, v in fields.items())
        )

    return matches


def wait_until_listening_to_redis(
    screen: Screen, redis_url: str, channel: str, timeout: float = WAIT * 2
) -> None:
    """Until the screen's server relays from Redis: a probe published there, to this
    client alone, comes through. (A server subscribes on its first connection, and
    after losing Redis it retries with a growing pause.)"""
    queue = socketio.RedisManager(redis_url, channel=channel, write_only=True)
    sid = screen.client.get_sid()
    deadline = time.monotonic() + timeout
    while True:
        probe = uuid.uuid4().hex
        queue.emit("probe", probe, room=sid, namespace="/")
        try:
            screen.wait_for(
                lambda r, p=probe: r.event == "probe" and r.data == p, timeout=0.3
            )
            return
        except AssertionError as silence:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the server of {screen.name} relays nothing from Redis"
                ) from silence
