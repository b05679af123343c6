"""The request path against its floor: the broker and a bare Flask app, side by side.

Both are served as `make serve` serves the broker (gunicorn, one gevent worker,
its access log) on one PostgreSQL database (the demo plus 20,000 generated
consults over 60 days); the floor is bench/floor_app.py (the same worker,
database, driver and pool; Core statements and plain dicts; the same JSON byte
for byte, checked here before measuring). Each request is measured with
`wrk -t1 -c8 -d<seconds>s`, broker and floor interleaved, in rounds; the table
shows the mean of the rounds:

- requests per second and the median latency, broker / floor;
- SQL statements per request (counted in this process through the Flask test
  client, with a SQLAlchemy `before_cursor_execute` listener on each app's engine);
- the worker's CPU milliseconds per request (utime + stime of the worker, from
  /proc, over the run, divided by the requests wrk completed).

The goals (issue 15): every request at 0.67x its floor's requests per second or
better, the queue page at 0.5x. `--history URL` also serves the broker on a second
database with a long history (1,000,000 consults), and compares the list and the
queue page there with the first database, interleaved (the goal: within 20 %).

    python bench/request_path.py --prepare            # (re)build the 20,000 database
    python bench/request_path.py                      # measure (about 10 minutes)
    python bench/request_path.py --history postgresql://postgres@127.0.0.1/broker_bench_1m

A database named with --prepare (or --prepare-history N) is WIPED and rebuilt.
Figures: bench/README.md.
"""

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
for path in (ROOT, BENCH):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import benchdb  # noqa: E402
import psycopg  # noqa: E402
import requests  # noqa: E402

# The broker refuses to serve without a key; the benchmark's servers and test clients share this one.
os.environ.setdefault("SECRET_KEY", "request-path-bench-" + "k" * 32)
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/broker_bench_20k"
ACCESS_LOG_FORMAT = (
    '%(h)s %({x-forwarded-for}i)s %(t)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms'
)
PASSWORD = "consult-demo"
READER = "okafor@demo.test"  # radiology's chief: lists, reads, claims, the queue
REQUESTER = "patel@demo.test"  # sends the new consults
GOALS = {"queue": 0.5}
GOAL = 0.67
CLK_TCK = os.sysconf("SC_CLK_TCK")
NEW_CONSULT = (
    '{"department": "radiology", "urgency": "routine", "patient_ref": "MRN-BENCH-1", '
    '"question": "Is there a pleural effusion on the chest film from this morning?", '
    '"study_ref": "BENCH"}'
)


def say(line: str = "") -> None:
    benchdb.say(line)


# --- the databases --------------------------------------------------------------


def prepare(url: str, consults: int, days: int) -> None:
    """Wipe the database, migrate, load the demo and generate the history."""
    benchdb.ensure_database(url)
    benchdb.reset_schema(url)
    benchdb.migrate(url)
    env = dict(os.environ, DATABASE_URL=url, SWEEP_INTERVAL_SECONDS="0")
    flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
    subprocess.run([*flask, "demo"], cwd=ROOT, env=env, check=True, capture_output=True)
    say(f"generating {consults:,} consults over {days} days ...")
    subprocess.run(
        [*flask, "generate", "--consults", str(consults), "--days", str(days)],
        cwd=ROOT,
        env=env,
        check=True,
    )
    with psycopg.connect(benchdb.libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def sql(url: str, statement: str, params=()) -> list:
    with psycopg.connect(benchdb.libpq_url(url), autocommit=True) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def radiology_open(url: str) -> dict[str, int]:
    rows = sql(
        url,
        "SELECT status, count(*) FROM consults JOIN departments d "
        "ON d.id = department_id WHERE d.slug = 'radiology' "
        "AND status IN ('pending', 'claimed', 'answered') GROUP BY status",
    )
    return dict(rows)


def trim_open_to(url: str, wanted: dict[str, int]) -> None:
    """Close the oldest of radiology's open consults beyond `wanted` (per status):
    the history comparison then serves the same queue from both databases."""
    for status, count in wanted.items():
        sql(
            url,
            "UPDATE consults SET status = 'closed', closed_at = updated_at, "
            "handoff_to_id = NULL, handoff_note = NULL, handoff_offered_at = NULL "
            "WHERE id IN (SELECT c.id FROM consults c JOIN departments d "
            "ON d.id = c.department_id WHERE d.slug = 'radiology' AND c.status = %s "
            "ORDER BY c.id DESC OFFSET %s)",
            (status, count),
        )


def consult_with_events(url: str, events: int = 8) -> int:
    """A radiology consult with `events` timeline events (the detail request)."""
    return sql(
        url,
        "SELECT c.id FROM consults c JOIN departments d ON d.id = c.department_id "
        "WHERE d.slug = 'radiology' AND (SELECT count(*) FROM consult_events e "
        "WHERE e.consult_id = c.id) = %s ORDER BY c.id DESC LIMIT 1",
        (events,),
    )[0][0]


def pending_supply(url: str, count: int) -> list[int]:
    """`count` new pending radiology consults (copies of the newest one, with study_ref
    BENCH), to claim. Each made a millisecond before the next, as real ones would be:
    thousands sharing one instant would make the list's newest-first page sort them
    all by id."""
    copied = (
        "department_id, urgency, requester_id, patient_ref, question, "
        "routed_at, updated_at, claim_due_at, answer_due_at"
    )
    rows = sql(
        url,
        "INSERT INTO consults (version, status, escalation_level, followup_count, "
        f"handoff_count, redirect_count, max_escalation_level, study_ref, created_at, "
        f"{copied}) SELECT 1, 'pending', 0, 0, 0, 0, 0, 'BENCH', "
        f"created_at - (%s - n) * interval '1 millisecond', {copied} FROM consults, "
        "generate_series(1, %s) AS n WHERE id = (SELECT max(c.id) FROM consults c "
        "JOIN departments d ON d.id = c.department_id WHERE d.slug = 'radiology') "
        "RETURNING id",
        (count, count),
    )
    return sorted(r[0] for r in rows)


def cancel_bench_consults(url: str) -> None:
    """Take what the runs created or left unclaimed (study_ref BENCH) out of the
    queue, cancelled, so that every run serves the same queue."""
    sql(
        url,
        "UPDATE consults SET status = 'cancelled', closed_at = updated_at, "
        "level1_escalation_at = NULL, level2_escalation_at = NULL "
        "WHERE study_ref = 'BENCH' AND status IN ('pending', 'claimed', 'answered')",
    )
    # The runs add thousands of consults: the planner's statistics follow (as
    # autovacuum would; it may be off on a test machine).
    sql(url, "ANALYZE consults")


# --- the servers ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One gunicorn process with one gevent worker, as `make serve` starts it."""

    def __init__(self, name: str, app: str, database_url: str, out: Path):
        self.name, self.port = name, free_port()
        env = dict(
            os.environ,
            DATABASE_URL=database_url,
            SWEEP_INTERVAL_SECONDS="0",
            SESSION_COOKIE_SECURE="false",
            SOCKETIO_ASYNC_MODE="gevent",
        )
        self.log = open(out / f"{name}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "gunicorn"),
                *("--workers", "1", "--worker-class", "gevent"),
                *("--worker-connections", "5000"),
                *("--bind", f"127.0.0.1:{self.port}"),
                *("--control-socket", str(out / f"{name}.ctl")),
                *("--access-logfile", "-", "--access-logformat", ACCESS_LOG_FORMAT),
                app,
            ],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(requests.RequestException):
                requests.get(self.base + "/api/me", timeout=2)
                break
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{name} did not start: see {self.log.name}")
            time.sleep(0.3)

    @property
    def worker_pid(self) -> int:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return int(children.read_text().split()[0])

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.worker_pid}/stat").read_text().rsplit(")", 1)[1]
        utime, stime = fields.split()[11:13]
        return (int(utime) + int(stime)) / CLK_TCK

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def token(base: str, email: str) -> str:
    response = requests.post(
        base + "/api/tokens", json={"email": email, "password": PASSWORD}, timeout=30
    )
    response.raise_for_status()
    return response.json()["token"]


def session_cookie(base: str, email: str) -> str:
    browser = requests.Session()
    page = browser.get(base + "/sign-in", timeout=30).text
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
    browser.post(
        base + "/sign-in",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf},
        headers={"Referer": base + "/sign-in"},
        allow_redirects=False,
        timeout=30,
    ).raise_for_status()
    return "; ".join(f"{k}={v}" for k, v in browser.cookies.items())


# --- the requests -----------------------------------------------------------------


class Request:
    """One request of the table: how wrk sends it, and how it is counted."""

    def __init__(self, key, label, method, path, headers, body=None, claims=False):
        self.key, self.label, self.method, self.path = key, label, method, path
        self.headers, self.body, self.claims = headers, body, claims

    def lua(self, directory: Path, ids: list[int] | None) -> Path:
        """The wrk script: the method, body and headers; for claims, a walk over ids."""
        headers = "".join(
            f'wrk.headers["{k}"] = "{v}"\n' for k, v in self.headers.items()
        )
        script = f"wrk.method = {lua_string(self.method)}\n{headers}"
        if self.body is not None:
            script += f"wrk.body = {lua_string(self.body)}\n"
        if ids is not None:
            listed = ",".join(map(str, ids))
            script += (
                f"local ids = {{{listed}}}\nlocal n = 0\n"
                "request = function()\n  n = n % #ids + 1\n"
                '  return wrk.format(nil, "/api/consults/" .. ids[n] .. "/claim")\n'
                "end\n"
            )
        path = directory / f"{self.key}.lua"
        path.write_text(script)
        return path


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def wrk(server: Server, request: Request, seconds: int, script: Path) -> dict:
    url = server.base + (request.path if not request.claims else "/")
    before = server.cpu_seconds()
    output = subprocess.run(
        [
            *("wrk", "-t1", "-c8", f"-d{seconds}s", "--timeout", "30s", "--latency"),
            *("-s", str(script), url),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu = server.cpu_seconds() - before
    if not re.search(r"^\s+50%", output, re.M):
        raise RuntimeError(f"wrk measured nothing on {request.path}:\n{output}")
    total = int(re.search(r"(\d+) requests in", output).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": to_ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1)),
        "cpu_ms": 1000 * cpu / max(total, 1),
        "requests": total,
        "bad": int(bad.group(1)) if bad else 0,
    }


@contextlib.contextmanager
def profiled(server: Server, key: str, args):
    """py-spy samples the server's worker while the block runs (collapsed stacks)."""
    program = os.environ.get("PYSPY") or shutil.which("py-spy")
    if program is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy (or set PYSPY)")
    Path(args.profile).mkdir(parents=True, exist_ok=True)
    spy = subprocess.Popen(
        [
            *(program, "record", "--pid", str(server.worker_pid), "--rate", "250"),
            *("--format", "raw", "--nonblocking", "--output"),
            str(Path(args.profile) / f"{key}.txt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


def to_ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(number) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


# --- statements per request (in this process, through the test client) -------------


def statement_counts(database_url: str, requests_: list[Request], ids) -> dict:
    """{(app, key): SQL statements} for one of each request."""
    from sqlalchemy import event

    os.environ.update(
        DATABASE_URL=database_url,
        SWEEP_INTERVAL_SECONDS="0",
        SESSION_COOKIE_SECURE="false",
    )
    from broker import create_app
    from broker.extensions import db

    broker = create_app()
    import floor_app

    with broker.app_context():
        broker_engine = db.engine
    counts = {}
    for name, app, engine in (
        ("broker", broker, broker_engine),
        ("floor", floor_app.app, floor_app.engine),
    ):
        seen = []

        def count(*args, seen=seen):
            seen.append(1)

        event.listen(engine, "before_cursor_execute", count)
        client = app.test_client(use_cookies=False)
        for request in requests_:
            path = request.path
            if request.claims:
                path = f"/api/consults/{ids.pop()}/claim"
            seen.clear()
            response = client.open(
                path, method=request.method, headers=request.headers, data=request.body
            )
            assert response.status_code < 300, (name, path, response.status_code)
            counts[name, request.key] = len(seen)
        event.remove(engine, "before_cursor_execute", count)
    return counts


def same_answers(broker: Server, floor: Server, requests_: list[Request]) -> None:
    """The floor answers the JSON reads byte for byte as the broker does."""
    for request in requests_:
        if request.method != "GET" or request.key == "queue":
            continue
        answers = [
            requests.get(s.base + request.path, headers=request.headers, timeout=30)
            for s in (broker, floor)
        ]
        if answers[0].content != answers[1].content:
            raise SystemExit(f"the floor answers {request.path} differently")
        if answers[0].headers.get("X-Pagination") != answers[1].headers.get(
            "X-Pagination"
        ):
            raise SystemExit(f"the floor pages {request.path} differently")


# --- the run ----------------------------------------------------------------------


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def mean(runs: list[dict], key: str) -> float:
    return sum(r[key] for r in runs) / len(runs)


def main() -> int:
    """The benchmark's steps from the command line to the report, in the order they
    run. Longer than 60 lines on purpose: the interleaving of broker and floor
    is the method bench/README.md describes, and reads best in one place."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--prepare", action="store_true", help="rebuild the database")
    parser.add_argument(
        "--history", metavar="URL", help="a database with a long history"
    )
    parser.add_argument(
        "--prepare-history",
        type=int,
        metavar="N",
        help="rebuild --history with N consults (over N/333 days)",
    )
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="request keys (list, detail, ...)")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="py-spy records the broker's worker in round 1 (DIR/<request>.txt, "
        "collapsed stacks; PYSPY names the program, else py-spy on PATH)",
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the servers too
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    url = args.database_url
    if args.prepare:
        prepare(url, 20_000, 60)
    if args.history and args.prepare_history:
        prepare(
            args.history, args.prepare_history, max(60, args.prepare_history // 333)
        )
    out = ROOT / "bench" / "out" / "request_path"
    out.mkdir(parents=True, exist_ok=True)
    scripts = Path(tempfile.mkdtemp(prefix="request_path-"))
    say("# request path against its floor")
    for line in benchdb.machine_with_servers(
        url, "redis://127.0.0.1:6379/0", ["flask", "gunicorn", "gevent"], True
    ):
        say(line)
    say(f"load average at the start: {load_average()}")
    cancel_bench_consults(url)
    say(f"radiology's open consults: {radiology_open(url)}")

    servers = [
        Server("broker", "wsgi:app", url, out),
        Server("floor", "bench.floor_app:app", url, out),
    ]
    broker, floor = servers
    if args.history:
        trim_open_to(args.history, radiology_open(url))
        servers.append(Server("broker-history", "wsgi:app", args.history, out))
    try:
        reader = {"Authorization": f"Bearer {token(broker.base, READER)}"}
        poster = {
            "Authorization": f"Bearer {token(broker.base, REQUESTER)}",
            "Content-Type": "application/json",
        }
        cookie = {"Cookie": session_cookie(broker.base, READER)}
        detail = consult_with_events(url)
        table = [
            Request(
                "list",
                "GET /api/consults?department=radiology&page_size=50",
                "GET",
                "/api/consults?department=radiology&page_size=50",
                reader,
            ),
            Request(
                "detail",
                "GET /api/consults/<id> (8 events)",
                "GET",
                f"/api/consults/{detail}",
                reader,
            ),
            Request("me", "GET /api/me", "GET", "/api/me", reader),
            Request(
                "queue",
                "GET /queue/radiology (HTML)",
                "GET",
                "/queue/radiology",
                cookie,
            ),
            Request(
                "create",
                "POST /api/consults",
                "POST",
                "/api/consults",
                poster,
                NEW_CONSULT,
            ),
            Request(
                "claim",
                "POST /api/consults/<id>/claim",
                "POST",
                "/api/consults/<id>/claim",
                reader,
                claims=True,
            ),
        ]
        if args.only:
            table = [r for r in table if r.key in args.only]
        if args.history:  # the same requests, signed in on the other database
            history = servers[2].base
            twins = {
                "list": {"Authorization": f"Bearer {token(history, READER)}"},
                "queue": {"Cookie": session_cookie(history, READER)},
            }
            history_twin = {
                r.key: Request(
                    f"{r.key}-history", r.label, r.method, r.path, twins[r.key]
                )
                for r in table
                if r.key in twins
            }
        same_answers(broker, floor, table)
        counts = statement_counts(url, table, pending_supply(url, 4))
        cancel_bench_consults(url)
        results: dict = {}
        for round_ in range(1, args.rounds + 1):
            say(f"round {round_} (load average {load_average()})")
            for request in table:
                order = [broker, floor] if round_ % 2 else [floor, broker]
                for server in order:
                    ids = None
                    if request.claims:  # enough pending consults for 600 claims/s
                        ids = pending_supply(url, 600 * args.seconds)
                    script = request.lua(scripts, ids)
                    profiling = args.profile and server is broker and round_ == 1
                    with (
                        profiled(server, request.key, args)
                        if profiling
                        else (contextlib.nullcontext())
                    ):
                        run = wrk(server, request, args.seconds, script)
                    cancel_bench_consults(url)
                    results.setdefault((server.name, request.key), []).append(run)
                    say(
                        f"  {server.name:7} {request.key:7} {run['rps']:8.1f} req/s "
                        f"p50 {run['p50']:7.1f} ms  cpu {run['cpu_ms']:5.1f} ms/req"
                        + (f"  non-2xx {run['bad']}" if run["bad"] else "")
                    )
            if args.history:
                for request in (r for r in table if r.key in ("list", "queue")):
                    for server in (servers[2], broker):
                        sent = (
                            history_twin[request.key]
                            if server is servers[2]
                            else request
                        )
                        run = wrk(server, sent, args.seconds, sent.lua(scripts, None))
                        if run["bad"]:
                            raise RuntimeError(f"{server.name}: {run['bad']} non-2xx")
                        name = "history" if server is servers[2] else "broker"
                        results.setdefault((name + "-h", request.key), []).append(run)
                        say(
                            f"  {server.name:14} {request.key:6} {run['rps']:8.1f} req/s "
                            f"cpu {run['cpu_ms']:5.1f} ms/req"
                        )
        say(f"load average at the end: {load_average()}")
        report(table, results, counts, args)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(scripts, ignore_errors=True)
    return 0


def report(table, results, counts, args) -> None:
    say()
    say(
        "| request | broker req/s (p50) | floor req/s (p50) | broker/floor | goal "
        "| SQL statements | worker CPU ms |"
    )
    say("| --- | --- | --- | --- | --- | --- | --- |")
    for request in table:
        b, f = results["broker", request.key], results["floor", request.key]
        ratio = mean(b, "rps") / mean(f, "rps")
        goal = GOALS.get(request.key, GOAL)
        say(
            f"| `{request.label}` | {mean(b, 'rps'):.0f} ({mean(b, 'p50'):.0f} ms) "
            f"| {mean(f, 'rps'):.0f} ({mean(f, 'p50'):.0f} ms) | {ratio:.2f} "
            f"| ≥ {goal} {'met' if ratio >= goal else 'NOT met'} "
            f"| {counts['broker', request.key]} / {counts['floor', request.key]} "
            f"| {mean(b, 'cpu_ms'):.1f} / {mean(f, 'cpu_ms'):.1f} |"
        )
    if args.history:
        say()
        say(
            "| request | 20,000 consults: req/s, CPU ms | long history: req/s, CPU ms "
            "| history/20k req/s |"
        )
        say("| --- | --- | --- | --- |")
        for key in ("list", "queue"):
            if ("broker-h", key) not in results:
                continue
            short, long_ = results["broker-h", key], results["history-h", key]
            say(
                f"| {key} | {mean(short, 'rps'):.0f}, {mean(short, 'cpu_ms'):.1f} "
                f"| {mean(long_, 'rps'):.0f}, {mean(long_, 'cpu_ms'):.1f} "
                f"| {mean(long_, 'rps') / mean(short, 'rps'):.2f} |"
            )


if __name__ == "__main__":
    sys.exit(main())
