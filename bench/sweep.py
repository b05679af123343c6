"""Benchmark: one deadline sweep pass, with 1,000 and with 100,000 open consults.

Both scenarios have exactly 1,000 consults due for escalation; only the number of
open consults differs (1,000 vs 100,000). A pass should cost in proportion to
what is due, not to what is open: the goal is under 200 ms at 100,000 open.

    python bench/sweep.py --database-url postgresql://postgres@127.0.0.1/broker_bench

The scenarios live in schemas bench_a and bench_b of the database given, which
are DROPPED and recreated: use a dedicated database (created if missing). See
bench/README.md for the figures.
"""

import argparse
import contextlib
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import benchdb  # noqa: E402
from flask import Flask  # noqa: E402
from sqlalchemy import (  # noqa: E402
    Integer,
    column,
    delete,
    func,
    insert,
    literal_column,
    select,
    text,
    update,
    values,
)
from sqlalchemy.engine import make_url  # noqa: E402

from broker import accounts, create_app  # noqa: E402
from broker.consults import oncall  # noqa: E402
from broker.consults.changes import committing  # noqa: E402
from broker.consults.deadlines import DEFAULT_MINUTES  # noqa: E402
from broker.consults.escalation import rung_update, sweep  # noqa: E402
from broker.extensions import db  # noqa: E402
from broker.live import wait_for_deferred_pushes  # noqa: E402
from broker.models import (  # noqa: E402
    Consult,
    ConsultEvent,
    EventKind,
    Notification,
    Status,
    Urgency,
)

consults = Consult.__table__

AT = datetime(2025, 6, 2, 14, 0, tzinfo=UTC)  # the sweep's instant, fixed: reproducible
AUTO_CLOSE_AFTER = timedelta(hours=72)
DUE = 1_000
SCENARIOS = [("A", 1_000), ("B", 100_000)]  # (name, open consults); DUE of them due
GOAL_MS = 200.0
BATCH = 5_000
DEPARTMENTS = [
    ("radiology", "Radiology"),
    ("pathology", "Pathology"),
    ("cardiology", "Cardiology"),
    ("neurology", "Neurology"),
]
MEMBERS_PER_DEPARTMENT = 8
REQUESTERS = 40
URGENCY_MIX = [(Urgency.STAT, 0.10), (Urgency.URGENT, 0.30), (Urgency.ROUTINE, 0.60)]
# Open consults that are not due: pending, claimed and (answered < 72 h ago) ones.
OPEN_MIX = [(Status.PENDING, 0.45), (Status.CLAIMED, 0.40), (Status.ANSWERED, 0.15)]
# Due consults: waiting for a claim (pending) or an answer (claimed).
DUE_MIX = [(Status.PENDING, 0.6), (Status.CLAIMED, 0.4)]
LEVEL2_SHARE = 0.3  # of the due ones, level 1 already fired, level 2 now due
# The columns a pass changes on a consult's ladder, put back between passes.
LADDER = [
    name
    for name in (
        "level1_escalation_at",
        "level2_escalation_at",
        "escalation_level",
        "max_escalation_level",  # the highest level reached, where the schema has it
    )
    if name in consults.c
]


# --- database -----------------------------------------------------------------


def reset_schema(url: str, schema: str) -> str:
    """An empty schema for one scenario; returns a URL whose search_path is it.

    Both scenarios live side by side in the one benchmark database, so that
    their passes can alternate (see measure()).
    """
    benchdb.reset_schema(url, schema)
    parsed = make_url(url).set(drivername="postgresql")
    options = " ".join(
        filter(None, [parsed.query.get("options"), f"-csearch_path={schema}"])
    )
    return parsed.update_query_dict({"options": options}).render_as_string(
        hide_password=False
    )


def vacuum_analyze() -> None:
    """VACUUM (ANALYZE) the tables a pass writes: each repetition starts alike."""
    db.session.commit()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE) consults, consult_events, notifications")


# --- people, departments, on-call -------------------------------------------------


def seed_directory() -> dict:
    """Departments with members, a chief and a primary and backup on call at AT."""
    admin = accounts.create_user("admin@bench.test", "Admin", "bench-password", True)
    requesters = [
        accounts.create_user(f"req{i}@bench.test", f"Requester {i}", "bench-password")
        for i in range(REQUESTERS)
    ]
    members: dict[int, list[int]] = {}
    for slug, name in DEPARTMENTS:
        department = accounts.create_department(slug, name)
        users = [
            accounts.create_user(
                f"{slug}{i}@bench.test", f"{name} doctor {i}", "bench-password"
            )
            for i in range(MEMBERS_PER_DEPARTMENT)
        ]
        for i, user in enumerate(users):
            accounts.add_member(department, user, chief=(i == 0))
        # The shift covering AT: a 12-hour primary and backup, as in production.
        starts = AT - timedelta(hours=6)
        for role, user in (("primary", users[1]), ("backup", users[2])):
            oncall.add_shift(
                admin, department, user, role, starts, starts + timedelta(hours=12)
            )
        members[department.id] = [u.id for u in users]
    return {"members": members, "requesters": [u.id for u in requesters]}


# --- consults ------------------------------------------------------------------


def pick(rng: random.Random, mix):
    return rng.choices([v for v, _ in mix], weights=[w for _, w in mix])[0]


def timeline(rng: random.Random, status: Status, due: bool, minutes) -> tuple:
    """(routed_at, answered_at, escalation level, level 1 rung, level 2 rung).

    Due: past its deadline, level 1 (or, for LEVEL2_SHARE, level 2) now due.
    Not due: its level 1 rung is in the future, or it is answered (no ladder).
    """
    step = timedelta(minutes=minutes.claim)  # level 1 → level 2: one claim interval
    level = 0
    level1 = level2 = answered_at = None
    if status == Status.ANSWERED:
        answered_at = AT - timedelta(hours=rng.uniform(0.5, 70))
        routed_at = answered_at - timedelta(minutes=rng.uniform(5, minutes.answer))
    else:
        # The deadline whose ladder runs: to claim while pending, to answer while claimed.
        allowed = minutes.claim if status == Status.PENDING else minutes.answer
        if not due:
            deadline = AT + timedelta(minutes=allowed * rng.uniform(0.02, 0.98))
        elif rng.random() < LEVEL2_SHARE:
            deadline = AT - step * rng.uniform(1.05, 1.95)
            level = 1  # level 1 fired on an earlier pass; level 2 is due now
        else:
            deadline = AT - step * rng.uniform(0.05, 0.95)
        routed_at = deadline - timedelta(minutes=allowed)
        level1 = None if level == 1 else deadline
        level2 = deadline + step
    return routed_at, answered_at, level, level1, level2


def consult_row(rng: random.Random, directory: dict, due: bool) -> dict:
    """One consult row satisfying the CHECK constraints, due now or not (see timeline)."""
    department_id = rng.choice(list(directory["members"]))
    members = directory["members"][department_id]
    urgency = pick(rng, URGENCY_MIX)
    minutes = DEFAULT_MINUTES[urgency]
    status = pick(rng, DUE_MIX if due else OPEN_MIX)
    routed_at, answered_at, level, level1, level2 = timeline(rng, status, due, minutes)
    owner_id = claimed_at = None
    claim_due_at = routed_at + timedelta(minutes=minutes.claim)
    answer_due_at = routed_at + timedelta(minutes=minutes.answer)
    if status != Status.PENDING:
        owner_id = rng.choice(members)
        latest = min(claim_due_at, answered_at or AT, AT)
        claimed_at = routed_at + (latest - routed_at) * rng.uniform(0.1, 0.9)
    return {
        "version": 1 + (status != Status.PENDING) + (status == Status.ANSWERED),
        "department_id": department_id,
        "urgency": urgency.value,
        "status": status.value,
        "requester_id": rng.choice(directory["requesters"]),
        "owner_id": owner_id,
        "patient_ref": f"MRN-{rng.randrange(10**7):07d}",
        "question": "Benchmark consult: is there a finding that changes management?",
        "study_ref": None,
        "created_at": routed_at,
        "routed_at": routed_at,
        "claimed_at": claimed_at,
        "answered_at": answered_at,
        "first_answered_at": answered_at,
        "updated_at": answered_at or claimed_at or routed_at,
        "claim_due_at": claim_due_at,
        "answer_due_at": answer_due_at,
        "escalation_level": level,
        **({"max_escalation_level": level} if "max_escalation_level" in LADDER else {}),
        "level1_escalation_at": level1,
        "level2_escalation_at": level2,
    }


def load_consults(open_count: int, directory: dict, seed: int) -> list[int]:
    """Empty the consult tables and bulk-insert `open_count` consults, DUE of them due.

    The due ones are scattered among the others (not all on the first pages).
    Each consult gets its 'created' timeline event. Returns the due consults' ids.
    """
    db.session.execute(
        text(
            "TRUNCATE consults, consult_events, notifications RESTART IDENTITY CASCADE"
        )
    )
    rng = random.Random(seed)
    flags = [True] * DUE + [False] * (open_count - DUE)
    rng.shuffle(flags)
    for start in range(0, open_count, BATCH):
        rows = [
            consult_row(rng, directory, due) for due in flags[start : start + BATCH]
        ]
        db.session.execute(insert(consults), rows)
    db.session.execute(
        text(
            "INSERT INTO consult_events (consult_id, kind, actor_id, at) "
            "SELECT id, 'created', requester_id, created_at FROM consults"
        )
    )
    db.session.commit()
    level1, level2 = consults.c.level1_escalation_at, consults.c.level2_escalation_at
    due_ids = list(
        db.session.scalars(
            select(consults.c.id).where(
                consults.c.status.in_([Status.PENDING, Status.CLAIMED]),
                (level1 <= AT) | (level1.is_(None) & (level2 <= AT)),
            )
        )
    )
    db.session.commit()
    assert len(due_ids) == DUE, f"{len(due_ids)} consults due, not {DUE}"
    return due_ids


def snapshot_ladders(due_ids: list[int]) -> list[tuple]:
    """The due consults' ladder columns, as loaded: what restore() puts back."""
    query = select(consults.c.id, *(consults.c[name] for name in LADDER))
    return [
        tuple(row)
        for row in db.session.execute(query.where(consults.c.id.in_(due_ids)))
    ]


def restore(snapshot: list[tuple]) -> None:
    """Undo a pass: the due consults' ladders back (one UPDATE), its rows deleted."""
    saved = values(
        column("id", Integer),
        *(column(name, consults.c[name].type) for name in LADDER),
        name="saved",
    ).data(snapshot)
    db.session.execute(
        update(consults)
        .where(consults.c.id == saved.c.id)
        .values({name: saved.c[name] for name in LADDER})
    )
    kind = EventKind.ESCALATED.value
    db.session.execute(delete(ConsultEvent).where(ConsultEvent.kind == kind))
    db.session.execute(delete(Notification).where(Notification.kind == kind))
    db.session.commit()
    vacuum_analyze()


# --- measurements ---------------------------------------------------------------


def timed_pass(live: bool) -> tuple[float, float, float, int]:
    """One sweep pass, as the service's sweeper runs it: sweep(at, 72 h), with commit.

    The pass ends when sweep() returns: its transaction is committed and, for a
    pass this large, the live pushes are handed to a background task
    (`broker.live`, DEFERRED_ABOVE), which reads the changed consults and new
    notifications and emits them. The benchmark then waits for that task too:
    'pushes sent' is the time from the start of the pass until every push is
    emitted (no clients connected, no Redis).
    live=False mutes the `committing` signal: the sweep's own work alone.
    Returns (pass ms, pushes sent ms, this process's CPU ms for both, notifications).
    """
    with contextlib.ExitStack() as stack:
        if not live:
            stack.enter_context(committing.muted())
        cpu, start = time.process_time(), time.perf_counter()
        result = sweep(AT, AUTO_CLOSE_AFTER)  # commits; hands the pushes over
        elapsed = (time.perf_counter() - start) * 1000
        wait_for_deferred_pushes()
        pushed = (time.perf_counter() - start) * 1000
        cpu = (time.process_time() - cpu) * 1000
    return elapsed, pushed, cpu, check(result)


def check(result) -> int:
    """The pass must have done the work: each due consult escalated once, nothing else."""
    ids = {consult_id for consult_id, _ in result.escalated}
    assert len(result.escalated) == DUE, f"escalated {len(result.escalated)}, not {DUE}"
    assert len(ids) == DUE, f"escalated {len(ids)} distinct consults, not {DUE}"
    assert not result.closed, f"auto-closed {len(result.closed)}, expected none"
    kind = EventKind.ESCALATED.value
    events = db.session.scalar(
        select(func.count()).select_from(ConsultEvent).where(ConsultEvent.kind == kind)
    )
    notices = db.session.scalar(
        select(func.count()).select_from(Notification).where(Notification.kind == kind)
    )
    db.session.commit()
    assert events == DUE, f"{events} escalation events for {DUE} escalations"
    assert notices >= DUE, f"only {notices} notifications for {DUE} escalations"
    return notices


def rung_updates(scan_all: bool) -> list:
    """The two rung statements as sweep() issues them (escalation.rung_update).

    scan_all=True wraps the ladder times in `+ interval '0'`: the same rows
    qualify, but no rung index can be used, so every consult is read.
    """

    def hide(c):
        return c + literal_column("interval '0'") if scan_all else c

    return [rung_update(level, AT, hide) for level in (1, 2)]


def timed_rungs(scan_all: bool) -> float:
    """Both rung UPDATE ... RETURNING statements, in a transaction then rolled back."""
    start = time.perf_counter()
    fired = sum(len(db.session.execute(s).all()) for s in rung_updates(scan_all))
    elapsed = (time.perf_counter() - start) * 1000
    db.session.rollback()
    assert fired == DUE, f"rung statements found {fired}, not {DUE}"
    return elapsed


def explain(statement) -> list[str]:
    """EXPLAIN ANALYZE of a rung statement (it runs, then is rolled back)."""
    compiled = statement.compile(
        dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}
    )
    plan = db.session.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {compiled}"))
    lines = [row[0] for row in plan]
    db.session.rollback()
    return lines


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    p90 = (
        statistics.quantiles(ordered, n=10, method="inclusive")[8]
        if len(ordered) > 1
        else ordered[0]
    )
    return {
        "min": ordered[0],
        "median": statistics.median(ordered),
        "p90": p90,
        "max": ordered[-1],
    }


@dataclass
class Scenario:
    name: str
    open: int
    app: Flask
    snapshot: list[tuple]
    passes: dict = field(default_factory=lambda: {True: [], False: []})
    pushed: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    rungs: dict = field(default_factory=lambda: {False: [], True: []})
    notices: int = 0
    plans: dict = field(default_factory=dict)


def set_up(url: str, name: str, open_count: int) -> Scenario:
    """Schema bench_<name>: directory, consults, one warm-up pass each way."""
    app = create_app(
        {
            "DATABASE_URL": reset_schema(url, f"bench_{name.lower()}"),
            "SECRET_KEY": "bench",
            "SWEEP_INTERVAL_SECONDS": 0,
            "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",  # cheap: only users are set up
        }
    )
    with app.app_context():
        db.drop_all()
        db.create_all()
        directory = seed_directory()
        load_start = time.perf_counter()
        due_ids = load_consults(open_count, directory, seed=open_count)
        load_s = time.perf_counter() - load_start
        snapshot = snapshot_ladders(due_ids)
        vacuum_analyze()
        print(f"scenario {name}: loaded {open_count:,} open consults in {load_s:.1f} s")
        # Warm-up (statement compilation, caches, first reads): not counted.
        for live in (True, False):
            timed_pass(live)
            restore(snapshot)
    return Scenario(name, open_count, app, snapshot)


def measure(scenarios: list[Scenario], repeat: int) -> None:
    """Alternate the scenarios, and the pass with and without live pushes, so that
    load from elsewhere on the machine falls on all of them alike."""
    for _ in range(repeat):
        for sc in scenarios:
            with sc.app.app_context():
                for live in (True, False):
                    elapsed, pushed, cpu_ms, sc.notices = timed_pass(live)
                    sc.passes[live].append(elapsed)
                    if live:
                        sc.pushed.append(pushed)
                        sc.cpu.append(cpu_ms)
                    restore(sc.snapshot)
    for _ in range(repeat):
        for sc in scenarios:
            with sc.app.app_context():
                for scan_all in (False, True):
                    sc.rungs[scan_all].append(timed_rungs(scan_all))
    for sc in scenarios:
        with sc.app.app_context():
            vacuum_analyze()
            sc.plans = {
                scan_all: [explain(s) for s in rung_updates(scan_all)]
                for scan_all in (False, True)
            }
            vacuum_analyze()


def results_of(sc: Scenario) -> dict:
    return {
        "name": sc.name,
        "open": sc.open,
        "notices": sc.notices,
        "pass": summary(sc.passes[True]),
        "muted": summary(sc.passes[False]),
        "pushed": summary(sc.pushed),
        "cpu": statistics.median(sc.cpu),
        "rungs_index": summary(sc.rungs[False]),
        "rungs_scan": summary(sc.rungs[True]),
        "plans": sc.plans,
    }


# --- report ---------------------------------------------------------------------


def machine() -> list[str]:
    server = db.session.scalar(text("SELECT version()"))
    db.session.commit()
    return benchdb.machine(f"PostgreSQL: {server}")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def scan_lines(plan: list[str]) -> list[str]:
    return [line.strip() for line in plan if "Scan" in line or "Execution" in line]


def report(results: list[dict], repeat: int, loads: tuple[str, str]) -> None:
    report_passes(results, repeat)
    report_rungs(results, repeat)
    report_plans(results[-1])
    report_growth(results[0], results[-1])
    print()
    print("Machine:")
    for line in machine():
        print(f"  {line}")
    print(f"  load average (1, 5, 15 min) at start: {loads[0]}; at end: {loads[1]}")


def report_passes(results: list[dict], repeat: int) -> None:
    """The main table: each scenario's pass, pushes sent, CPU and muted pass."""
    print()
    print(
        f"One sweep pass: sweep(at, 72 h) incl. its commit; median of {repeat} passes"
    )
    print("after 1 warm-up; every pass escalates exactly 1,000 consults.")
    print("'pass' is as the service runs it: until sweep() returns, committed,")
    print("its live Socket.IO pushes handed to a background task; 'pushes sent'")
    print("is until that task has read, serialised and emitted every push;")
    print("'client CPU ms' is the median CPU time of both in this process")
    print("(Python: SQLAlchemy, psycopg, the broker's code; not PostgreSQL's).")
    print("'no live push' is the same pass with the `committing` signal muted.")
    print()
    rows = [
        [
            "scenario",
            "open",
            "due",
            "notifications",
            "pass: median ms",
            "p90 ms",
            "max ms",
            "min ms",
            "pushes sent: median ms",
            "max ms",
            "client CPU ms",
            "no live push: median ms",
            "min ms",
        ]
    ]
    rows += [pass_row(r) for r in results]
    benchdb.table(rows)


def pass_row(r: dict) -> list[str]:
    p, m, sent = r["pass"], r["muted"], r["pushed"]
    return [
        r["name"],
        f"{r['open']:,}",
        f"{DUE:,}",
        f"{r['notices']:,}",
        f"{p['median']:.1f}",
        f"{p['p90']:.1f}",
        f"{p['max']:.1f}",
        f"{p['min']:.1f}",
        f"{sent['median']:.1f}",
        f"{sent['max']:.1f}",
        f"{r['cpu']:.1f}",
        f"{m['median']:.1f}",
        f"{m['min']:.1f}",
    ]


def report_rungs(results: list[dict], repeat: int) -> None:
    print()
    print("Comparison: the pass's two rung UPDATE ... RETURNING statements alone,")
    print("using the rung indexes vs. with the index made unusable (full scan);")
    print(f"median of {repeat}, each rolled back.")
    print()
    rows = [["scenario", "open", "due", "rung index ms", "full scan ms"]]
    for r in results:
        rows.append(
            [
                r["name"],
                f"{r['open']:,}",
                f"{DUE:,}",
                f"{r['rungs_index']['median']:.1f}",
                f"{r['rungs_scan']['median']:.1f}",
            ]
        )
    benchdb.table(rows)


def report_plans(big: dict) -> None:
    print()
    print(f"Plans in scenario {big['name']} ({big['open']:,} open), EXPLAIN ANALYZE:")
    for scan_all, label in ((False, "as sweep() runs it"), (True, "index unusable")):
        for level, plan in enumerate(big["plans"][scan_all], start=1):
            print(f"  rung {level}, {label}:")
            for line in scan_lines(plan):
                print(f"    {line}")


def report_growth(small: dict, big: dict) -> None:
    """How the costs grow from the small scenario to the big one, and the goal."""
    print()
    for key, label in (
        ("pass", "pass"),
        ("pushed", "pushes sent"),
        ("muted", "pass without live push"),
    ):
        a, b = small[key]["median"], big[key]["median"]
        print(
            f"Open x{big['open'] // small['open']}, due the same: {label} "
            f"{a:.1f} -> {b:.1f} ms (x{b / a:.2f})."
        )
    rung_a, rung_b = small["rungs_scan"]["median"], big["rungs_scan"]["median"]
    print(
        f"Open x{big['open'] // small['open']}, without the index: rung statements "
        f"{rung_a:.1f} -> {rung_b:.1f} ms (x{rung_b / rung_a:.2f})."
    )
    met = big["pass"]["median"] < GOAL_MS
    print(
        f"Goal (< {GOAL_MS:.0f} ms per pass at {big['open']:,} open): "
        f"{'MET' if met else 'NOT MET'}: median {big['pass']['median']:.1f} ms, "
        f"max {big['pass']['max']:.1f} ms "
        f"(without the live push: median {big['muted']['median']:.1f} ms; "
        f"every push sent: median {big['pushed']['median']:.1f} ms, "
        f"max {big['pushed']['max']:.1f} ms)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Schemas bench_a and bench_b of the database are dropped and "
        "recreated. Use a dedicated database, e.g. "
        "postgresql://postgres@127.0.0.1/broker_bench (created if missing).",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", ""),
        help="dedicated PostgreSQL database to fill (or env BENCH_DATABASE_URL), "
        "e.g. postgresql://postgres@127.0.0.1/broker_bench",
    )
    parser.add_argument("--repeat", type=int, default=7, help="timed passes (7)")
    args = parser.parse_args()
    url = args.database_url
    if not url:
        parser.error(
            "give --database-url (or BENCH_DATABASE_URL) of a dedicated database"
        )
    if not url.startswith(("postgresql", "postgres://")):
        parser.error("the benchmark is for PostgreSQL")
    if not benchdb.dedicated(url):
        parser.error("name a dedicated database, such as broker_bench")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    benchdb.ensure_database(url, unreachable_ok=True)
    start_load = load_average()
    scenarios = [set_up(url, name, open_count) for name, open_count in SCENARIOS]
    measure(scenarios, args.repeat)
    with scenarios[-1].app.app_context():
        report(
            [results_of(sc) for sc in scenarios],
            args.repeat,
            (start_load, load_average()),
        )
    for sc in scenarios:
        with sc.app.app_context():
            db.engine.dispose()


if __name__ == "__main__":
    main()
