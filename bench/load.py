"""Load: 50 concurrent users for 60 s of mixed actions on two server processes.

Two `make serve` processes (gunicorn, one gevent worker each) share one PostgreSQL
database and one Redis (the Socket.IO message queue); users are split evenly
between them. Each user is a thread with its own HTTP connection, acting without
pause (a closed loop: a new request as soon as the last one is answered):

- requesters (2 in 5): list their consults; create one; read one and write on it;
  close an answered one with a rating, or ask a follow-up instead;
- consultants (3 in 5, in two departments): list the department's queue; claim a
  pending consult (racing their colleagues, on either process); read, answer,
  message, or hand off one they own; accept or decline a handoff offered to them.

It reports throughput, p50/p99 latency per request type and overall, and the
answers by status. Refusals a race makes (409 claiming a consult a colleague
claimed first, 403 answering one just handed off) are expected; a 5xx, a request
with no answer, or any other status fails the run. Then it checks every consult
in the database:

- status and owner consistent (pending: no owner; claimed, answered: an owner;
  a handoff only on an owned consult);
- its timeline replayed from the first event gives the consult as stored: never
  a claim while it had an owner (never two owners), an answer only from the owner
  of the moment (the actor of the latest claimed, the subject of the latest
  assigned, or the actor of the latest handoff_accepted), a handoff accepted
  only by the colleague offered it;
- one event per successful action: its events are exactly `created` plus one per
  action the clients saw succeed on it (by kind);
- no consult but those the clients created.

It prints a summary and exits non-zero if any check fails or any 5xx occurred.

    python bench/load.py                       # 50 users, 60 s
    python bench/load.py --quick               # 10 users, 10 s (the test suite's run)
    python bench/load.py --users 20 --seconds 30 \\
        --database-url postgresql://postgres@127.0.0.1/broker_load \\
        --redis-url redis://127.0.0.1:6379/5

The database given is WIPED (schema dropped, migrated afresh with `flask db
upgrade`, users seeded); it is created if missing. The deadline sweep is off in
the servers, so that every timeline event comes from a client's action.
Figures: bench/README.md.
"""

import argparse
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import benchdb  # noqa: E402
import psycopg  # noqa: E402
import redis  # noqa: E402
import requests  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from tests.helpers import gunicorn_server  # noqa: E402

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/broker_load"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/5"
PROCESSES = 2
THREADS = 64  # per gunicorn process, with --async-mode threading
CHEAP_HASH = "scrypt:1024:8:1"  # the users never sign in: they hold tokens
PASSWORD = "load test password"
REQUEST_TIMEOUT_S = 60
DEPARTMENTS = [("radiology", "Radiology"), ("cardiology", "Cardiology")]
URGENCIES = [("stat", 0.1), ("urgent", 0.3), ("routine", 0.6)]
OPEN_PER_REQUESTER = 3  # a requester with fewer open consults than this creates one
EXPECTED_REFUSALS = {409, 403}  # what races between users make
# Request type -> the timeline event a success appends (None: a read).
EVENT_OF = {
    "create": "created",
    "list": None,
    "get": None,
    "claim": "claimed",
    "answer": "answered",
    "message": "message",  # message, note or follow-up: the server decides
    "followup": "message",
    "handoff": "handoff_offered",
    "accept": "handoff_accepted",
    "decline": "handoff_declined",
    "close": "closed",
}
MESSAGE_KINDS = {"message", "note", "followup"}


# --- the database, the users, the servers ----------------------------------------------


@dataclass
class Person:
    id: int
    token: str
    role: str  # requester or consultant
    department: str | None = None  # a consultant's department (slug)


def seed(url: str, users: int) -> list[Person]:
    """The two departments, and `users` people: 2 in 5 requesters, the rest consultants."""
    from broker import accounts, create_app
    from broker.extensions import db

    app = create_app(
        {"DATABASE_URL": url, "PASSWORD_HASH_METHOD": CHEAP_HASH, "SECRET_KEY": "load"}
    )
    requesters = max(1, round(users * 2 / 5))
    people = []
    with app.app_context():
        departments = [accounts.create_department(s, n) for s, n in DEPARTMENTS]
        for n in range(users):
            role = "requester" if n < requesters else "consultant"
            user = accounts.create_user(
                f"{role}{n}@load.test", f"Dr {role.title()} {n}", PASSWORD
            )
            department = None
            if role == "consultant":
                department = departments[n % len(departments)]
                accounts.add_member(department, user)
            people.append(
                Person(
                    user.id,
                    accounts.issue_token(user),
                    role,
                    department.slug if department else None,
                )
            )
        db.session.remove()
        db.engine.dispose()
    return people


# --- the users ------------------------------------------------------------------------


@dataclass
class Record:
    """What every user saw, shared (under one lock) by all of them."""

    latencies: dict = field(default_factory=lambda: defaultdict(list))  # type: [s]
    statuses: dict = field(default_factory=lambda: defaultdict(Counter))  # type: {}
    failures: list = field(default_factory=list)  # (type, status or error, text)
    created: set = field(default_factory=set)
    # consult id -> Counter of the timeline events its successful actions appended
    events: dict = field(default_factory=lambda: defaultdict(Counter))
    lock: threading.Lock = field(default_factory=threading.Lock)


class User:
    """One person at work: a thread with its own HTTP connection to one process."""

    def __init__(self, person, server_url, colleagues, record, until, seed):
        self.person = person
        self.url = server_url
        self.colleagues = [c for c in colleagues if c != person.id]
        self.record = record
        self.until = until
        self.rng = random.Random(seed)
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {person.token}"

    def request(self, kind, method, path, consult_id=None, body=None, params=None):
        """One timed request; the answer's JSON on 2xx, else None."""
        started = time.perf_counter()
        try:
            response = self.http.request(
                method,
                self.url + path,
                json=body,
                params=params,
                timeout=REQUEST_TIMEOUT_S,
            )
        except requests.RequestException as error:
            with self.record.lock:
                self.record.statuses[kind]["error"] += 1
                self.record.failures.append((kind, "no answer", repr(error)[:200]))
            return None
        elapsed = time.perf_counter() - started
        status = response.status_code
        with self.record.lock:
            self.record.latencies[kind].append(elapsed)
            self.record.statuses[kind][status] += 1
            if status < 300:
                data = response.json()
                if kind == "create":
                    consult_id = data["id"]
                    self.record.created.add(consult_id)
                if EVENT_OF[kind]:
                    self.record.events[consult_id][EVENT_OF[kind]] += 1
                return data
            if status not in EXPECTED_REFUSALS:
                self.record.failures.append((kind, status, response.text[:200]))
        return None

    def action(self, kind, consult, name, body=None):
        return self.request(
            kind, "POST", f"/api/consults/{consult['id']}/{name}", consult["id"], body
        )

    def run(self) -> None:
        step = self.requester_step if self.person.role == "requester" else None
        step = step or self.consultant_step
        while time.monotonic() < self.until:
            step()
        self.http.close()

    def requester_step(self) -> None:
        mine = self.request(
            "list", "GET", "/api/consults", params={"requester": "me", "page_size": 20}
        )
        if mine is None:
            return
        answered = [c for c in mine if c["status"] == "answered"]
        still_open = [c for c in mine if c["status"] in ("pending", "claimed")]
        if answered:
            consult = self.rng.choice(answered)
            if self.rng.random() < 0.6:
                self.action(
                    "close", consult, "close", {"rating": self.rng.randint(3, 5)}
                )
            else:
                body = {"body": "Thanks. And the lesion on the left?"}
                self.action("followup", consult, "messages", body)
        elif len(still_open) < OPEN_PER_REQUESTER or self.rng.random() < 0.2:
            urgency = self.rng.choices(*zip(*URGENCIES, strict=True))[0]
            self.request(
                "create",
                "POST",
                "/api/consults",
                body={
                    "department": self.rng.choice(DEPARTMENTS)[0],
                    "urgency": urgency,
                    "patient_ref": f"MRN-{self.rng.randint(10**6, 10**7)}",
                    "question": "Is there a drainable collection on today's CT?",
                    "study_ref": f"ACC-{self.rng.randint(10**5, 10**6)}",
                },
            )
        elif still_open:
            consult = self.rng.choice(still_open)
            self.request("get", "GET", f"/api/consults/{consult['id']}")
            if self.rng.random() < 0.3:
                body = {"body": "The patient is febrile again."}
                self.action("message", consult, "messages", body)

    def consultant_step(self) -> None:
        queue = self.request(
            "list",
            "GET",
            "/api/consults",
            params={"department": self.person.department, "page_size": 30},
        )
        if queue is None:
            return
        me = self.person.id
        offered = [c for c in queue if c["handoff"] and c["handoff"]["to"]["id"] == me]
        owned = [
            c
            for c in queue
            if c["owner"] and c["owner"]["id"] == me and c["status"] == "claimed"
        ]
        pending = [c for c in queue if c["status"] == "pending"]
        if offered:
            consult = self.rng.choice(offered)
            if self.rng.random() < 0.8:
                self.action("accept", consult, "handoff/accept")
            else:
                body = {"reason": "In theatre all afternoon."}
                self.action("decline", consult, "handoff/decline", body)
        elif owned and (not pending or self.rng.random() < 0.7):
            consult = self.rng.choice(owned)
            self.request("get", "GET", f"/api/consults/{consult['id']}")
            roll = self.rng.random()
            if roll < 0.65:
                body = {"body": "No drainable collection; follow up in 48 h."}
                self.action("answer", consult, "answer", body)
            elif roll < 0.85 or not self.colleagues:
                body = {"body": "Looking at it now."}
                self.action("message", consult, "messages", body)
            else:
                body = {
                    "to_user_id": self.rng.choice(self.colleagues),
                    "note": "My shift ends; the prior study is in PACS.",
                }
                self.action("handoff", consult, "handoff", body)
        elif pending:
            self.action("claim", self.rng.choice(pending), "claim")
        elif queue:
            consult = self.rng.choice(queue)
            self.request("get", "GET", f"/api/consults/{consult['id']}")


# --- checks ---------------------------------------------------------------------------


def replay(events: list[tuple]) -> tuple[str | None, int | None, int | None, list[str]]:
    """Status, owner and offered colleague from the timeline, with what breaks the rules."""
    status = owner = offer = None
    broken = []
    for n, (kind, actor, subject) in enumerate(events):
        where = f"event {n + 1} ({kind})"
        if n == 0 and kind != "created":
            broken.append(f"{where}: the first event is not `created`")
        if kind == "created":
            if n:
                broken.append(f"{where}: created twice")
            status, owner = "pending", None
        elif kind == "claimed":
            if owner is not None:
                broken.append(f"{where}: claimed by {actor} while owned by {owner}")
            if status != "pending":
                broken.append(f"{where}: claimed while {status}")
            status, owner = "claimed", actor
        elif kind == "assigned":
            status, owner, offer = "claimed", subject, None
        elif kind == "released":
            if actor != owner:
                broken.append(f"{where}: released by {actor}, not the owner {owner}")
            status, owner, offer = "pending", None, None
        elif kind == "handoff_offered":
            if actor != owner:
                broken.append(f"{where}: offered by {actor}, not the owner {owner}")
            offer = subject
        elif kind == "handoff_accepted":
            if actor != offer:
                broken.append(f"{where}: accepted by {actor}, offered to {offer}")
            if subject != owner:
                broken.append(f"{where}: the previous owner is {owner}, not {subject}")
            owner, offer = actor, None
        elif kind == "handoff_declined":
            if actor != offer:
                broken.append(f"{where}: declined by {actor}, offered to {offer}")
            offer = None
        elif kind == "answered":
            if actor != owner:
                broken.append(f"{where}: answered by {actor}, not the owner {owner}")
            if status != "claimed":
                broken.append(f"{where}: answered while {status}")
            status = "answered"
        elif kind == "followup":
            if status != "answered":
                broken.append(f"{where}: a follow-up while {status}")
            status = "claimed"
        elif kind == "redirected":
            status, owner, offer = "pending", None, None
        elif kind in ("closed", "cancelled"):
            status, offer = kind, None
    return status, owner, offer, broken


def stored_consults(url: str) -> tuple[dict, dict]:
    """{id: (status, owner_id, handoff_to_id)} and {id: [(kind, actor, subject)]}."""
    with psycopg.connect(benchdb.libpq_url(url)) as conn:
        consults = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT id, status, owner_id, handoff_to_id FROM consults"
            )
        }
        timelines = defaultdict(list)
        for consult_id, kind, actor, subject in conn.execute(
            "SELECT consult_id, kind, actor_id, subject_id FROM consult_events ORDER BY id"
        ):
            timelines[consult_id].append((kind, actor, subject))
    return consults, timelines


def check_invariants(url: str, record: Record) -> tuple[list[str], dict]:
    """Every consult in the database against the rules and what the clients saw."""
    problems = []
    consults, timelines = stored_consults(url)
    unknown = set(consults) - record.created
    missing = record.created - set(consults)
    if unknown:
        problems.append(f"consults no client created: {sorted(unknown)[:10]}")
    if missing:
        problems.append(
            f"consults created (201) but not stored: {sorted(missing)[:10]}"
        )
    for consult_id, (status, owner_id, handoff_to_id) in sorted(consults.items()):
        name = f"consult {consult_id}"
        if status == "pending" and owner_id is not None:
            problems.append(f"{name}: pending with an owner")
        if status in ("claimed", "answered") and owner_id is None:
            problems.append(f"{name}: {status} without an owner")
        if handoff_to_id is not None and status not in ("claimed", "answered"):
            problems.append(f"{name}: a handoff on offer while {status}")
        events = timelines.get(consult_id, [])
        replayed_status, replayed_owner, offer, broken = replay(events)
        problems += [f"{name}: {b}" for b in broken]
        if (replayed_status, replayed_owner, offer) != (
            status,
            owner_id,
            handoff_to_id,
        ):
            problems.append(
                f"{name}: stored (status, owner, offer) {(status, owner_id, handoff_to_id)}"
                f" but its timeline gives {(replayed_status, replayed_owner, offer)}"
            )
        stored = Counter(
            "message" if kind in MESSAGE_KINDS else kind for kind, _, _ in events
        )
        seen = record.events.get(consult_id, Counter())
        if stored != seen:
            problems.append(
                f"{name}: {sum(stored.values())} events {dict(stored)}, but the clients saw "
                f"{sum(seen.values())} successful actions {dict(seen)}"
            )
    totals = {
        "consults": len(consults),
        "events": sum(len(t) for t in timelines.values()),
        "by_status": Counter(status for status, _, _ in consults.values()),
    }
    return problems, totals


# --- the report -----------------------------------------------------------------------


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def machine(database_url: str, redis_url: str) -> list[str]:
    packages = ["gunicorn", "Flask", "SQLAlchemy", "psycopg", "Flask-SocketIO"]
    return benchdb.machine_with_servers(database_url, redis_url, packages)


def children_cpu() -> float:
    """CPU seconds of the child processes ended and waited for so far."""
    times = os.times()
    return times.children_user + times.children_system


def table(rows: list[list[str]]) -> None:
    """Numbers right-aligned; the first and last columns (words) left-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    last = len(widths) - 1
    for n, row in enumerate(rows):
        print(
            "  ".join(
                c.ljust(w) if i in (0, last) else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def report(record: Record, elapsed: float) -> int:
    """Print the figures; the number of 5xx answers."""
    kinds = [k for k in EVENT_OF if record.latencies.get(k) or record.statuses.get(k)]
    everything = sorted(x for k in kinds for x in record.latencies[k])
    total = len(everything)
    rows = [["request", "count", "req/s", "p50 ms", "p99 ms", "max ms", "answers"]]

    def row(name, values, statuses):
        values = sorted(values)
        answers = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items(), key=str))
        rows.append(
            [
                name,
                f"{len(values)}",
                f"{len(values) / elapsed:.1f}",
                f"{percentile(values, 0.5) * 1000:.1f}",
                f"{percentile(values, 0.99) * 1000:.1f}",
                f"{(values[-1] if values else float('nan')) * 1000:.1f}",
                answers,
            ]
        )

    for kind in kinds:
        row(kind, record.latencies[kind], record.statuses[kind])
    overall = Counter()
    for kind in kinds:
        overall.update(record.statuses[kind])
    row("overall", everything, overall)
    table(rows)
    server_errors = sum(
        n for status, n in overall.items() if isinstance(status, int) and status >= 500
    )
    print()
    print(f"throughput: {total / elapsed:.1f} requests/s ({total} in {elapsed:.1f} s)")
    print(f"5xx: {server_errors}")
    return server_errors


# --- main -----------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    """The options, checked; --users and --seconds filled in (from --quick or not)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("LOAD_DATABASE_URL", DEFAULT_DATABASE_URL),
        help=f"PostgreSQL database to WIPE and use (default {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("LOAD_REDIS_URL", DEFAULT_REDIS_URL),
        help=f"Redis for the Socket.IO message queue (default {DEFAULT_REDIS_URL})",
    )
    parser.add_argument("--users", type=int, help="concurrent users (default 50)")
    parser.add_argument("--seconds", type=float, help="duration (default 60)")
    parser.add_argument("--quick", action="store_true", help="10 users for 10 s")
    parser.add_argument(
        "--async-mode",
        choices=["gevent", "threading"],
        default="gevent",
        help="gevent: as make serve runs it (default); threading: gunicorn threads",
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.users = args.users or (10 if args.quick else 50)
    args.seconds = args.seconds or (10.0 if args.quick else 60.0)
    if args.users < 2:
        parser.error("--users: at least 2 (a requester and a consultant)")

    url = args.database_url
    if not make_url(url).drivername.startswith("postgres"):
        parser.error("--database-url: a PostgreSQL database")
    if not benchdb.dedicated(url):
        parser.error("--database-url: name a dedicated database; it is wiped")
    try:
        redis.Redis.from_url(args.redis_url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        parser.error(f"--redis-url: Redis is not reachable ({error})")
    return args


def load_servers(args: argparse.Namespace, logdir: Path) -> list:
    """The PROCESSES gunicorn servers on the database and Redis, not started yet."""
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        # Redis channels ignore the database number: this run's pushes keep to their own.
        "SOCKETIO_CHANNEL": f"broker-load-{os.urandom(8).hex()}",
        "SECRET_KEY": os.urandom(16).hex(),
        "SWEEP_INTERVAL_SECONDS": "0",
        "SESSION_COOKIE_SECURE": "false",
    }
    return [
        gunicorn_server(
            f"server{n}",
            "wsgi:app",
            {**env, "SOCKETIO_ASYNC_MODE": args.async_mode},
            logdir,
            args.async_mode,
            connections=1000,
            threads=THREADS,
        )
        for n in range(PROCESSES)
    ]


def announce(args: argparse.Namespace, people: list[Person]) -> None:
    requesters = sum(p.role == "requester" for p in people)
    database = make_url(args.database_url).database
    print(
        f"load: {args.users} users ({requesters} requesters, "
        f"{args.users - requesters} consultants in {len(DEPARTMENTS)} departments) "
        f"for {args.seconds:g} s on {PROCESSES} processes (gunicorn --workers 1, "
        f"{args.async_mode}), PostgreSQL database {database}, Redis {args.redis_url}"
    )
    for line in machine(args.database_url, args.redis_url):
        print(line)
    print("load average before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


def run_users(
    args: argparse.Namespace, people: list[Person], servers: list, record: Record
) -> tuple[float, float]:
    """Start the servers, let every user act until the time is up, stop the servers.

    Returns the seconds elapsed and the CPU seconds the users took in this process.
    """
    try:
        for server in servers:
            server.start()
        colleagues = defaultdict(list)
        for p in people:
            if p.department:
                colleagues[p.department].append(p.id)
        started = time.monotonic()
        client_cpu = time.process_time()
        until = started + args.seconds
        threads = []
        for n, person in enumerate(people):
            user = User(
                person,
                servers[n % PROCESSES].url,
                colleagues[person.department] if person.department else [],
                record,
                until,
                seed=args.seed * 1000 + n,
            )
            threads.append(threading.Thread(target=user.run, name=f"user{n}"))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        client_cpu = time.process_time() - client_cpu
    finally:
        for server in servers:
            server.stop()
    return elapsed, client_cpu


def show_invariants(url: str, record: Record) -> list[str]:
    """Check every consult in the database, print the outcome; the problems found."""
    problems, totals = check_invariants(url, record)
    by_status = ", ".join(f"{s} {n}" for s, n in sorted(totals["by_status"].items()))
    print()
    print(f"consults: {totals['consults']} ({by_status}); events: {totals['events']}")
    if problems:
        print(f"invariants: {len(problems)} broken")
        for problem in problems[:30]:
            print(f"  {problem}")
    else:
        print("invariants: all hold")
    return problems


def main() -> int:
    args = parse_args()
    url = args.database_url
    benchdb.ensure_database(url)
    benchdb.reset_schema(url)
    benchdb.migrate(url)
    people = seed(url, args.users)
    logdir = Path(tempfile.mkdtemp(prefix="broker-load-"))
    servers = load_servers(args, logdir)
    announce(args, people)
    record = Record()
    children_before = children_cpu()
    elapsed, client_cpu = run_users(args, people, servers, record)
    servers_cpu = children_cpu() - children_before

    print()
    server_errors = report(record, elapsed)
    failures = [
        f for f in record.failures if not (isinstance(f[1], int) and f[1] >= 500)
    ]
    print(f"other failures (no answer, unexpected status): {len(failures)}")
    for kind, status, text in record.failures[:10]:
        print(f"  {kind}: {status} {text}")
    print(
        f"CPU: the {args.users} users {client_cpu:.0f} s, the {PROCESSES} servers "
        f"{servers_cpu:.0f} s (with their start), of {elapsed * os.cpu_count():.0f} s "
        f"on {os.cpu_count()} cores; PostgreSQL and Redis not counted"
    )
    tracebacks = sum(len(server.tracebacks()) for server in servers)
    print(f"tracebacks in the server logs: {tracebacks}")
    problems = show_invariants(url, record)
    failed = server_errors or failures or problems or tracebacks
    if failed:
        print(f"server logs kept in {logdir}")
    else:
        shutil.rmtree(logdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
