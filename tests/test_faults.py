"""Faults: PostgreSQL restarted and Redis stopped while clients work; a short load run.

Each test starts its OWN PostgreSQL (initdb in a temporary directory, run as the
`postgres` OS user when the suite runs as root) and its own Redis, on free ports,
and breaks only those: the machine's shared servers are never touched. The tests
are skipped, saying why, only where such private instances cannot be started
(no PostgreSQL server binaries, no redis-server).

The servers under test are real processes (`flask run --with-threads`, as in
conftest's `live_server_process`); clients speak HTTP and Socket.IO to them.
Waits are bounded by generous limits and end as soon as what they wait for happens.
"""

import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis
import requests
from conftest import NEW_CONSULT, PASSWORD
from helpers import (
    FIRST_ANSWER_WITHIN,
    ROOT,
    WAIT,
    Person,
    Screen,
    consult_event,
    free_port,
    signed_in_session,
    wait_ready,
    wait_until_listening_to_redis,
)

from broker import accounts, create_app
from broker.api.errors import DATABASE_UNAVAILABLE, SAVED_THEN_UNAVAILABLE
from broker.extensions import db

pytestmark = pytest.mark.slow

REQUEST_TIMEOUT = 15.0  # no request may take longer, outage or not
RECOVERY_LIMIT = 10.0  # seconds from PostgreSQL being back to the server answering 2xx
OUTAGE_ANSWER_LIMIT = 10.0  # seconds: a request during the outage is answered by then
CHEAP_HASH = "scrypt:1024:8:1"


# --- private PostgreSQL and Redis ----------------------------------------------------


def postgres_bindir() -> Path | None:
    """The newest PostgreSQL server binaries: Debian's /usr/lib/postgresql/<v>/bin, or PATH."""
    found = [
        path / "bin"
        for path in Path("/usr/lib/postgresql").glob("*")
        if (path / "bin" / "initdb").exists() and path.name.isdigit()
    ]
    if found:
        return max(found, key=lambda p: int(p.parent.name))
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PrivatePostgres:
    """A PostgreSQL cluster of our own in a temporary directory, on a free port.

    As root, initdb and postgres refuse to run: they run as the `postgres` user,
    in a directory it owns.
    """

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="broker-faults-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "postgres.log"
        self.as_postgres = os.geteuid() == 0
        if self.as_postgres:
            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        command = [str(self.bindir / program), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    def _check(self, result: subprocess.CompletedProcess, doing: str) -> None:
        if result.returncode != 0:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(
                f"{doing} failed:\n{result.stdout}{result.stderr}{log[-2000:]}"
            )

    def init(self) -> None:
        self._check(
            self._run(
                "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres",
                "-E", "UTF8", "--no-sync",
            ),
            "initdb",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off"
        )
        self._check(
            self._run(
                "pg_ctl", "-D", str(self.data), "-o", options,
                "-l", str(self.log_path), "-w", "-t", "60", "start",
            ),
            "pg_ctl start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self._check(
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop"),
            "pg_ctl stop",
        )

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status").returncode == 0

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def destroy(self) -> None:
        if self.data.exists() and self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A Redis of our own on a free port: stopped and started again on that same port."""

    def __init__(self, executable: str):
        self.executable = executable
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="broker-faults-redis-"))
        self.process: subprocess.Popen | None = None

    def url(self, database: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        with open(self.root / "redis.log", "ab") as log:
            self.process = subprocess.Popen(
                [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--dir", str(self.root)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        probe = redis.Redis(port=self.port, socket_timeout=FIRST_ANSWER_WITHIN)
        try:
            wait_ready(probe.ping, self.process, "redis-server", redis.RedisError)
        except RuntimeError as error:
            log = (self.root / "redis.log").read_text(errors="replace")
            raise RuntimeError(f"{error}:\n{log}") from None
        finally:
            probe.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def private_postgres():
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin, PATH)")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no `postgres` user to run initdb")
        if not shutil.which("runuser"):
            pytest.skip("running as root and runuser is missing")
    postgres = PrivatePostgres(bindir)
    try:
        postgres.init()
        postgres.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
        postgres.destroy()
        pytest.skip(f"cannot start a private PostgreSQL: {error}")
    yield postgres
    postgres.destroy()


@pytest.fixture
def private_database(private_postgres) -> str:
    """A fresh database on the private PostgreSQL, migrated as production is."""
    if not private_postgres.running():  # an earlier test failed while it was down
        private_postgres.start()
    url = private_postgres.create_database(f"broker_{uuid.uuid4().hex[:12]}")
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": url}, check=True,
        capture_output=True, timeout=120,
    )  # fmt: skip
    return url


@pytest.fixture
def private_redis():
    executable = shutil.which("redis-server")
    if executable is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(executable)
    try:
        server.start()
    except (RuntimeError, OSError) as error:
        server.destroy()
        pytest.skip(f"cannot start a private Redis: {error}")
    yield server
    server.destroy()


# --- people, servers, clients ----------------------------------------------------------


def seed(database_url: str, requesters: int, consultants: int) -> dict:
    """The radiology department with its consultants, and requesters; all with tokens."""
    app = create_app(
        {
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test",
            "SWEEP_INTERVAL_SECONDS": 0,
            "PASSWORD_HASH_METHOD": CHEAP_HASH,
        }
    )
    people = {"requesters": [], "consultants": []}
    with app.app_context():
        radiology = accounts.create_department("radiology", "Radiology")
        for role, count in (("requesters", requesters), ("consultants", consultants)):
            for n in range(count):
                email = f"{role}{n}@faults.test"
                user = accounts.create_user(email, f"Dr {role[:-1]} {n}", PASSWORD)
                if role == "consultants":
                    accounts.add_member(radiology, user)
                people[role].append(
                    Person(user.id, user.name, email, accounts.issue_token(user))
                )
        db.session.remove()
        db.engine.dispose()
    return people


def call(method: str, url: str, person: Person, body=None, **kwargs):
    return requests.request(
        method,
        url,
        headers=person.headers,
        json=body,
        timeout=REQUEST_TIMEOUT,
        **kwargs,
    )


def ok(response: requests.Response, status: int = 200) -> dict:
    assert response.status_code == status, (response.status_code, response.text[:300])
    return response.json()


def assert_database_unavailable(response: requests.Response) -> None:
    """The outage's answer: 503, the one JSON error shape, a clear message, Retry-After.

    The message says nothing was saved; or, where the outage struck after the
    action's commit (while its answer was being read), that it was saved.
    """
    assert response.status_code == 503, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() in [
        {"code": 503, "status": "Service Unavailable", "message": message}
        for message in (DATABASE_UNAVAILABLE, SAVED_THEN_UNAVAILABLE)
    ]
    assert int(response.headers["Retry-After"]) > 0


def saved_then_unavailable(response: requests.Response) -> bool:
    return response.json()["message"] == SAVED_THEN_UNAVAILABLE


def events_by_consult(database_url: str) -> dict[int, list[str]]:
    """Every consult's timeline kinds, oldest first, read straight from the database."""
    timelines = {}
    with psycopg.connect(database_url) as conn:
        for (consult_id,) in conn.execute("SELECT id FROM consults"):
            timelines[consult_id] = []
        for consult_id, kind in conn.execute(
            "SELECT consult_id, kind FROM consult_events ORDER BY id"
        ):
            timelines[consult_id].append(kind)
    return timelines


# --- PostgreSQL restarted while clients work ---------------------------------------------

# One consult's life, step by step: (who, action, body, timeline event, success code).
LIFE = [
    ("requester", "", NEW_CONSULT, "created", 201),
    ("consultant", "claim", None, "claimed", 200),
    ("consultant", "messages", {"body": "Looking at it now."}, "message", 200),
    ("consultant", "answer", {"body": "No drainable collection."}, "answered", 200),
    ("requester", "messages", {"body": "And on the left?"}, "followup", 200),
    ("consultant", "answer", {"body": "Clear on the left too."}, "answered", 200),
    ("requester", "close", {"rating": 5}, "closed", 200),
]


@dataclass
class Outcome:
    worker: int
    step: str
    sent: float  # time.monotonic()
    done: float
    status: int | None  # None: no answer at all (timeout, connection refused)
    response: requests.Response | None = None
    error: str | None = None


@dataclass
class Workload:
    """Pairs of (requester, consultant) taking consults through their life in a loop.

    Each pair has its own consults, so nothing but a fault can refuse a step. A
    step answered 503 is retried until it succeeds: nothing of it was saved.
    """

    url: str
    pairs: list[tuple[Person, Person]]
    outcomes: list[Outcome] = field(default_factory=list)
    saved: dict[int, list[str]] = field(default_factory=dict)  # consult: 2xx events
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)

    def request(self, worker, step, method, person, path, body=None) -> Outcome:
        sent = time.monotonic()
        try:
            response = call(method, self.url + path, person, body)
        except requests.RequestException as error:
            outcome = Outcome(
                worker, step, sent, time.monotonic(), None, error=repr(error)
            )
        else:
            outcome = Outcome(
                worker, step, sent, time.monotonic(), response.status_code
            )
            outcome.response = response
        self.record(outcome)
        return outcome

    def work(self, worker: int) -> None:
        requester, consultant = self.pairs[worker]
        people = {"requester": requester, "consultant": consultant}
        while not self.stop.is_set():
            consult_id = None
            for who, action, body, event, success in LIFE:
                path = "/api/consults" + (f"/{consult_id}/{action}" if action else "")
                while not self.stop.is_set():
                    outcome = self.request(
                        worker, event, "POST", people[who], path, body
                    )
                    if outcome.status == success:
                        consult_id = outcome.response.json()["id"]
                        break
                    if outcome.status != 503:
                        return  # unexpected: the test reports it
                    if saved_then_unavailable(outcome.response):
                        consult_id = consult_id or self.newest_consult(
                            worker, requester
                        )
                        break
                    time.sleep(0.05)  # nothing was saved: try again
                else:
                    break
                with self.lock:
                    self.saved.setdefault(consult_id, []).append(event)
                read = self.request(
                    worker, "read", "GET", requester, f"/api/consults/{consult_id}"
                )
                if read.status not in (200, 503):
                    return

    def newest_consult(self, worker: int, requester: Person) -> int:
        """The requester's newest consult: the one just saved (each worker has its own)."""
        deadline = time.monotonic() + REQUEST_TIMEOUT * 2
        while time.monotonic() < deadline:
            outcome = self.request(
                worker,
                "read",
                "GET",
                requester,
                "/api/consults?requester=me&page_size=1",
            )
            if outcome.status == 200:
                return outcome.response.json()[0]["id"]
            time.sleep(0.1)
        raise AssertionError("the consult saved during the outage never showed up")

    def successes_after(self, instant: float) -> list[Outcome]:
        with self.lock:
            return [
                o
                for o in self.outcomes
                if o.sent >= instant and o.status is not None and o.status < 300
            ]

    def failures_after(self, instant: float) -> list[Outcome]:
        with self.lock:
            return [o for o in self.outcomes if o.done >= instant and o.status == 503]


def wait_until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s in vain for {what}")
        time.sleep(0.02)


def test_a_database_restart_answers_503_meanwhile_and_the_same_process_recovers(
    private_postgres, private_database, servers
):
    people = seed(private_database, requesters=4, consultants=4)
    server = servers(private_database)
    browser = signed_in_session(server.url, people["requesters"][0].email)
    assert browser.get(server.url + "/", timeout=REQUEST_TIMEOUT).status_code == 200
    load = Workload(
        server.url, list(zip(people["requesters"], people["consultants"], strict=True))
    )
    workers = [
        threading.Thread(target=load.work, args=(n,), daemon=True)
        for n in range(len(load.pairs))
    ]
    for worker in workers:
        worker.start()
    try:
        started = time.monotonic()
        wait_until(lambda: len(load.successes_after(started)) >= 20, 30, "20 actions")

        stopping = time.monotonic()
        private_postgres.stop("fast")
        stopped = time.monotonic()
        wait_until(lambda: len(load.failures_after(stopped)) >= 10, 30, "10 answers")
        page = browser.get(server.url + "/", timeout=REQUEST_TIMEOUT)
        assert page.status_code == 503
        assert page.headers["Content-Type"].startswith("text/html")
        assert DATABASE_UNAVAILABLE in page.text
        assert int(page.headers["Retry-After"]) > 0
        time.sleep(1.0)  # clients keep trying through a longer outage

        private_postgres.start()
        back = time.monotonic()
        first = wait_until(
            lambda: load.successes_after(back), RECOVERY_LIMIT, "a 2xx after restart"
        )[0]
        recovered = first.done
        time.sleep(1.5)  # clients work on after the recovery
    finally:
        load.stop.set()
        for worker in workers:
            worker.join(timeout=REQUEST_TIMEOUT * 2)
        if not private_postgres.running():
            private_postgres.start()

    # The same process served throughout: it was never restarted.
    assert server.process.poll() is None
    assert browser.get(server.url + "/", timeout=REQUEST_TIMEOUT).status_code == 200

    outcomes = load.outcomes
    unexpected = [
        (o.step, o.status, o.error or o.response.text[:200])
        for o in outcomes
        if o.status not in (200, 201, 503)
    ]
    assert not unexpected, unexpected
    outage = [o for o in outcomes if o.status == 503]
    assert len(outage) >= 10
    for o in outage:
        assert_database_unavailable(o.response)
        # Answered at once, not after waiting for the database to return.
        assert o.done - o.sent < OUTAGE_ANSWER_LIMIT, (o.step, o.done - o.sent)
        # Only requests in flight during the outage failed.
        assert stopping <= o.done and o.sent <= recovered, (o.step, o.sent, o.done)
    # Requests sent once the first one had succeeded again all succeeded.
    assert all(o.status < 300 for o in outcomes if o.sent > recovered + 0.5)
    assert max(o.done - o.sent for o in outcomes) < REQUEST_TIMEOUT
    assert "Unhandled" not in server.log()

    # Every consult's timeline has exactly one event per action answered 2xx (or 503
    # "saved"), in order; an action answered 503 "nothing was saved" left no trace:
    # no consult, no event.
    timelines = events_by_consult(private_database)
    assert set(timelines) == set(load.saved)
    for consult_id, saved in load.saved.items():
        assert timelines[consult_id] == saved, consult_id
    created = [
        o
        for o in outcomes
        if o.step == "created"
        and (
            o.status == 201 or (o.status == 503 and saved_then_unavailable(o.response))
        )
    ]
    assert len(timelines) == len(created)
    # And the outage did refuse actions, not only reads.
    refused = Counter(o.step for o in outage if not saved_then_unavailable(o.response))
    assert refused.keys() - {"read"}, refused
    print(
        f"{len(outcomes)} requests; {len(outage)} answered 503 during the outage "
        f"({len(outage) - refused.total()} of them 'saved'); "
        f"serving again {recovered - back:.2f} s after PostgreSQL was back"
    )


# --- Redis stopped while clients work ------------------------------------------------------


def test_with_redis_stopped_actions_are_saved_and_pushes_resume_when_it_returns(
    private_database, private_redis, servers
):
    people = seed(private_database, requesters=1, consultants=2)
    patel = people["requesters"][0]
    castillo, nguyen = people["consultants"]
    redis_url = private_redis.url(0)
    live = {"REDIS_URL": redis_url, "SOCKETIO_CHANNEL": f"faults-{uuid.uuid4().hex}"}
    a = servers(private_database, **live)
    b = servers(private_database, **live)
    # a radiologist on process A: sees the queue
    screen = Screen(nguyen.name).connect(a.url, auth={"token": nguyen.token})
    try:
        wait_until_listening_to_redis(
            screen, redis_url, live["SOCKETIO_CHANNEL"], WAIT * 2
        )

        # Before: a change through B reaches the client on A.
        untouched = ok(call("POST", b.url + "/api/consults", patel, NEW_CONSULT), 201)
        seen = ok(call("POST", b.url + "/api/consults", patel, NEW_CONSULT), 201)
        pushed = screen.wait_for(consult_event(seen["id"], status="pending"))
        watermark = pushed.data["updated_at"]  # the newest change the client saw

        private_redis.stop()
        mark = screen.mark()  # what the client had when Redis went away
        during = []
        for server, person, method, path, body, status in [
            (b, castillo, "POST", f"/api/consults/{seen['id']}/claim", None, 200),
            (b, patel, "POST", "/api/consults", NEW_CONSULT, 201),
            (b, patel, "POST", "/api/consults", NEW_CONSULT, 201),
            (a, castillo, "POST", "/api/consults/{new}/claim", None, 200),
            (
                b,
                castillo,
                "POST",
                "/api/consults/{new}/answer",
                {"body": "Clear."},
                200,
            ),
        ]:
            path = path.format(new=during[-1]["id"] if during else None)
            sent = time.monotonic()
            response = call(method, server.url + path, person, body)
            assert time.monotonic() - sent < WAIT
            during.append(ok(response, status))
        claimed, pending, answered = during[0], during[1], during[-1]
        assert claimed["status"] == "claimed" and answered["status"] == "answered"

        # Saved: both processes read them back from the database.
        timelines = {
            claimed["id"]: ["created", "claimed"],
            pending["id"]: ["created"],
            answered["id"]: ["created", "claimed", "answered"],
        }
        for server in (a, b):
            for expected in (claimed, pending, answered):
                path = f"{server.url}/api/consults/{expected['id']}"
                got = ok(call("GET", path, nguyen))
                assert got["status"] == expected["status"]
                assert got["version"] == expected["version"]
                kinds = [event["kind"] for event in got["timeline"]]
                assert kinds == timelines[expected["id"]]

        private_redis.start()  # the same port: the servers find it again
        wait_until_listening_to_redis(screen, redis_url, live["SOCKETIO_CHANNEL"], 70)

        # The client missed the outage's pushes. A resync from the newest change it saw
        # (live.js: `updated_since`, then skip the versions it already has) brings
        # exactly the consults changed since then, each as it now stands.
        resync = ok(
            call(
                "GET", a.url + "/api/consults", nguyen,
                params={"updated_since": watermark, "page_size": 200},
            )
        )  # fmt: skip
        had = {}
        for r in screen.received[:mark]:
            if r.event == "consult":
                had[r.data["id"]] = max(r.data["version"], had.get(r.data["id"], 0))
        assert set(had) == {untouched["id"], seen["id"]}
        missed = {
            c["id"]: c["version"] for c in resync if c["version"] > had.get(c["id"], 0)
        }
        assert missed == {
            claimed["id"]: claimed["version"],
            pending["id"]: pending["version"],
            answered["id"]: answered["version"],
        }

        # Pushes resume: an action through B reaches the client on A.
        mark = screen.mark()
        claim = ok(
            call("POST", f"{b.url}/api/consults/{pending['id']}/claim", castillo)
        )
        pushed = screen.wait_for(
            consult_event(pending["id"], status="claimed"), since=mark
        )
        assert pushed.data["version"] == claim["version"]
    finally:
        screen.close()
    for server in (a, b):
        assert server.process.poll() is None
        assert "Unhandled" not in server.log()


# --- the load script, briefly ---------------------------------------------------------------


def test_the_load_script_runs_clean_in_quick_mode(private_postgres, private_redis):
    """bench/load.py --quick: 10 users for 10 s on two gunicorn processes sharing the
    private PostgreSQL and Redis: no 5xx, and every invariant holds afterwards."""
    if not private_postgres.running():
        private_postgres.start()
    database_url = private_postgres.url(f"broker_load_{uuid.uuid4().hex[:8]}")
    run = subprocess.run(
        [sys.executable, "bench/load.py", "--quick",
         "--database-url", database_url, "--redis-url", private_redis.url(5)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-5000:]
    assert re.search(r"^5xx: 0$", run.stdout, re.MULTILINE), report[-5000:]
    assert "invariants: all hold" in run.stdout, report[-5000:]
