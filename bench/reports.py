"""Benchmark: the department turnaround report over a year of consults.

PostgreSQL: 1,000,000 consults generated over 365 days; the department report
(`reports.turnaround(admin, period, department=slug, group_by="department")`)
for the busiest department, over the last 90 days and over the whole year.
Goal: under 500 ms each. SQLite: 100,000 consults, the same report, under 2 s.

The comparison, timed in the same run, interleaved: the same numbers computed
by loading the department's rows into Python (one SELECT of the report facts,
then counts, percentiles, shares, sums and mean in Python). The two must agree,
number for number, or the benchmark stops.

    python bench/reports.py --database-url postgresql://postgres@127.0.0.1/broker_reportbench

The PostgreSQL database given is WIPED (its public schema dropped, then
`flask db upgrade`), unless --reuse finds the history already in it. The script
creates the database if missing. See bench/README.md for the figures.
"""

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import benchdb  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy import event, func, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from broker import accounts, create_app, reports  # noqa: E402
from broker.extensions import db  # noqa: E402
from broker.models import Consult, Department  # noqa: E402

END = datetime(2025, 7, 1, tzinfo=UTC)  # the history's end, fixed: reproducible
DAYS = 365
SEED = 1
RANGES = [("90 days", 90), ("year", 365)]
GOALS_MS = {"postgresql": 500.0, "sqlite": 2000.0}
ADMIN_EMAIL = "admin@reportbench.test"
STATEMENT_TIMEOUT_MS = 120_000  # no report query may run away
UPGRADE_TIMEOUT_S = 600
GENERATE_TIMEOUT_S = 3600
TIME_LIMIT_S = 3 * 3600  # the whole run, whatever happens
FACTS = [
    Consult.claim_seconds,
    Consult.answer_seconds,
    Consult.claimed_in_time,
    Consult.answered_in_time,
    Consult.max_escalation_level,
    Consult.followup_count,
    Consult.handoff_count,
    Consult.redirect_count,
    Consult.rating,
]


def say(line: str = "") -> None:
    print(line, flush=True)


# --- databases -------------------------------------------------------------------


def pg_history(url: str) -> tuple[int, datetime | None, datetime | None]:
    """(consults, first created_at, last created_at) in the database; 0 if no table."""
    with psycopg.connect(benchdb.libpq_url(url)) as conn:
        exists = conn.execute("SELECT to_regclass('public.consults')").fetchone()[0]
        if exists is None:
            return 0, None, None
        return conn.execute(
            "SELECT count(*), min(created_at), max(created_at) FROM consults"
        ).fetchone()


def sqlite_history(path: Path) -> tuple[int, datetime | None, datetime | None]:
    if not path.exists():
        return 0, None, None
    conn = sqlite3.connect(path)
    try:
        count, first, last = conn.execute(
            "SELECT count(*), min(created_at), max(created_at) FROM consults"
        ).fetchone()
    except sqlite3.Error:
        return 0, None, None
    finally:
        conn.close()
    parse = datetime.fromisoformat
    return count, first and parse(first), last and parse(last)


def holds_history(found: tuple, consults: int) -> bool:
    """The generated history is there: the count, and nothing outside the year."""
    count, first, last = found
    if count != consults or first is None:
        return False
    start = (END - timedelta(days=DAYS)).replace(tzinfo=None)
    return start <= first and last < END.replace(tzinfo=None)


def vacuum_analyze(url: str) -> float:
    started = time.perf_counter()
    with psycopg.connect(benchdb.libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) consults, departments, users, memberships")
    return time.perf_counter() - started


def flask(url: str, *args: str, timeout: float) -> float:
    """`python -m flask --app wsgi ARGS` on the database; its output is shown indented."""
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SWEEP_INTERVAL_SECONDS": "0",
        "SECRET_KEY": "bench",
    }
    command = [sys.executable, "-m", "flask", "--app", "wsgi", *args]
    started = time.perf_counter()
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        try:
            deadline = started + timeout
            for line in process.stdout:
                say(f"    | {line.rstrip()}")
                if time.perf_counter() > deadline:
                    raise subprocess.TimeoutExpired(command, timeout)
            process.wait(timeout=max(1.0, deadline - time.perf_counter()))
        except BaseException:
            process.kill()
            raise
    if process.returncode:
        raise SystemExit(f"`flask {' '.join(args)}` failed ({process.returncode})")
    return time.perf_counter() - started


def prepare(url: str, consults: int, fresh, found, reuse: bool) -> dict:
    """Migrate and generate `consults` over DAYS days, unless reusing what is there."""
    if reuse and holds_history(found, consults):
        say(f"  reusing the {consults:,} consults already there (--reuse)")
        return {"generated": False}
    if reuse:
        say(f"  --reuse: the database does not hold {consults:,} consults; generating")
    fresh()
    say("  flask db upgrade")
    flask(url, "db", "upgrade", timeout=UPGRADE_TIMEOUT_S)
    say(f"  flask generate --consults {consults} --days {DAYS} --seed {SEED}")
    seconds = flask(
        url,
        "generate",
        f"--consults={consults}",
        f"--days={DAYS}",
        f"--seed={SEED}",
        f"--end={END.isoformat()}",
        timeout=GENERATE_TIMEOUT_S,
    )
    say(f"  generated {consults:,} consults in {seconds:.1f} s (wall, incl. start-up)")
    return {"generated": True, "generate_s": seconds}


# --- the report and the comparison ----------------------------------------------


def report_admin():
    user = accounts.user_by_email(ADMIN_EMAIL)
    if user is None:
        user = accounts.create_user(
            ADMIN_EMAIL, "Report bench admin", "bench-password", is_admin=True
        )
    return user


def busiest_department(period: reports.Period) -> tuple[int, str, int]:
    """(id, slug, consults in the period) of the department with the most consults."""
    department_id, count = db.session.execute(
        select(Consult.department_id, func.count().label("n"))
        .where(Consult.created_at >= period.start, Consult.created_at < period.end)
        .group_by(Consult.department_id)
        .order_by(func.count().desc())
        .limit(1)
    ).one()
    slug = db.session.scalar(
        select(Department.slug).where(Department.id == department_id)
    )
    db.session.rollback()
    return department_id, slug, count


def percentile(sorted_values: list, p: float) -> float | None:
    """percentile_cont: linear interpolation between the two closest ranks.

    PostgreSQL's float steps (orderedsetaggs.c): low + (pos - floor) * (high - low).
    """
    if not sorted_values:
        return None
    position = p * (len(sorted_values) - 1)
    first = int(position // 1)
    low = float(sorted_values[first])
    if position == first:
        return low
    return low + (position - first) * (float(sorted_values[first + 1]) - low)


def minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def python_turnaround(department_id: int, slug: str, period: reports.Period) -> dict:
    """The department's report row, from its rows loaded into Python."""
    rows = db.session.execute(
        select(*FACTS).where(
            Consult.department_id == department_id,
            Consult.created_at >= period.start,
            Consult.created_at < period.end,
        )
    ).all()
    claims, answers = [], []
    claimed = claimed_in_time = answered = answered_in_time = escalated = 0
    followups = handoffs = redirects = rating_sum = rated = 0
    for claim, answer, c_in, a_in, level, followup, handoff, redirect, rating in rows:
        if claim is not None:
            claims.append(claim)
        if answer is not None:
            answers.append(answer)
        if c_in is not None:
            claimed += 1
            claimed_in_time += c_in
        if a_in is not None:
            answered += 1
            answered_in_time += a_in
        escalated += level > 0
        followups += followup
        handoffs += handoff
        redirects += redirect
        if rating is not None:
            rating_sum += rating
            rated += 1
    claims.sort()
    answers.sort()
    return {
        "group": slug,
        "count": len(rows),
        "claim_p50_minutes": minutes(percentile(claims, 0.5)),
        "claim_p90_minutes": minutes(percentile(claims, 0.9)),
        "answer_p50_minutes": minutes(percentile(answers, 0.5)),
        "answer_p90_minutes": minutes(percentile(answers, 0.9)),
        "claimed_in_time_share": share(claimed_in_time, claimed),
        "answered_in_time_share": share(answered_in_time, answered),
        "escalated": escalated,
        "followups": followups,
        "handoffs": handoffs,
        "redirects": redirects,
        "mean_rating": round(rating_sum / rated, 2) if rated else None,
    }


def timed(call) -> tuple[float, object]:
    """One call, in milliseconds; its transaction is ended afterwards, untimed."""
    started = time.perf_counter()
    result = call()
    elapsed = (time.perf_counter() - started) * 1000
    db.session.rollback()
    return elapsed, result


def summary(samples: list[float]) -> dict:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
    }


def measure_range(admin, department, label: str, days: int, repeat: int) -> dict:
    """Report vs Python load for one range: warm-up, check, then interleaved timings."""
    department_id, slug, _ = department
    period = reports.Period(END - timedelta(days=days), END)

    def report():
        return reports.turnaround(admin, period, department=slug, group_by="department")

    def python():
        return python_turnaround(department_id, slug, period)

    _, rows = timed(report)  # warm-up, and the check
    _, computed = timed(python)
    if rows != [computed]:
        say(f"MISMATCH for {slug}, {label}:")
        say(f"  report: {rows}")
        say(f"  python: {[computed]}")
        raise SystemExit("the report and the Python computation disagree")
    samples = {"report": [], "python": []}
    for _ in range(repeat):
        samples["report"].append(timed(report)[0])
        samples["python"].append(timed(python)[0])
    return {
        "range": label,
        "days": days,
        "row": rows[0],
        "report": summary(samples["report"]),
        "python": summary(samples["python"]),
    }


def measure_groupings(admin, slug: str, repeat: int) -> list[dict]:
    """Informative: the same department over 90 days, by week and by consultant."""
    period = reports.Period(END - timedelta(days=90), END)
    out = []
    for group_by in ("week", "consultant"):

        def call(group_by=group_by):
            return reports.turnaround(admin, period, department=slug, group_by=group_by)

        _, rows = timed(call)
        samples = [timed(call)[0] for _ in range(repeat)]
        out.append({"group_by": group_by, "groups": len(rows), **summary(samples)})
    return out


# --- plans -----------------------------------------------------------------------


def captured_statements(call) -> list[tuple[str, object]]:
    """The SQL statements (with their driver parameters) that `call` sends."""
    statements = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
        db.session.rollback()
    return statements


def report_statements(admin, slug: str, period: reports.Period) -> list:
    """What the report sends about consults, in order: on PostgreSQL, its work_mem
    settings (set_config) and the grouped query; on SQLite, the grouped query and
    the window ranks."""
    return [
        s
        for s in captured_statements(
            lambda: reports.turnaround(admin, period, slug, "department")
        )
        if "FROM consults" in s[0] or "set_config" in s[0]
    ]


def plan(admin, department, days: int) -> dict:
    """EXPLAIN of the report's queries and of the Python comparison's SELECT.

    The report's statements are replayed in one transaction, in order, so its
    queries are explained with the work_mem it sets. On PostgreSQL, the grouped
    query is also explained at the server's own work_mem.
    """
    department_id, slug, _ = department
    period = reports.Period(END - timedelta(days=days), END)
    report_sql = report_statements(admin, slug, period)
    python_sql = captured_statements(
        lambda: python_turnaround(department_id, slug, period)
    )
    dialect = db.engine.dialect.name
    postgres = dialect == "postgresql"
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
    runs = [("report", report_sql), ("python", python_sql)]
    if postgres:
        runs.append(("server", [s for s in report_sql if "set_config" not in s[0]]))
    out = {}
    for name, statements in runs:
        lines = []
        connection = db.session.connection()
        for n, (statement, parameters) in enumerate(statements, start=1):
            if "FROM consults" not in statement:
                connection.exec_driver_sql(statement, parameters)  # a setting
                continue
            result = connection.exec_driver_sql(prefix + statement, parameters)
            if postgres:
                lines += [row[0] for row in result]
            else:  # the statement's number, then each step's detail
                lines += [f"query {n}: {row[-1]}" for row in result]
        db.session.rollback()
        out[name] = lines
    return out


def measure_work_mem(admin, department, repeat: int) -> list[dict]:
    """PostgreSQL, informative: the report's grouped query alone, at the server's
    work_mem and at the report's (reports.SORT_WORK_MEM), interleaved."""
    server = db.session.scalar(text("SHOW work_mem"))
    db.session.rollback()
    if server == reports.SORT_WORK_MEM:
        return []
    sizes = [server, reports.SORT_WORK_MEM]
    out = []
    for label, days in RANGES:
        period = reports.Period(END - timedelta(days=days), END)
        grouped = [
            s
            for s in report_statements(admin, department[1], period)
            if "FROM consults" in s[0]
        ]
        samples = {size: [] for size in sizes}
        for n in range(repeat + 1):  # the first round is a warm-up
            for size in sizes:
                connection = db.session.connection()
                connection.exec_driver_sql(
                    "SELECT set_config('work_mem', %(size)s, true)", {"size": size}
                )
                started = time.perf_counter()
                for statement, parameters in grouped:
                    connection.exec_driver_sql(statement, parameters).all()
                elapsed = (time.perf_counter() - started) * 1000
                db.session.rollback()
                if n:
                    samples[size].append(elapsed)
        out.append({"range": label, **{size: summary(samples[size]) for size in sizes}})
    return out


def plan_summary(lines: list[str]) -> list[str]:
    """The nodes, how the sort went, buffers, JIT and the times of a PostgreSQL plan."""
    keep = ("->", "Heap Fetches", "Buffers", "JIT", "Planning", "Time", "Aggregate")
    out = []
    for n, line in enumerate(lines):
        if n == 0 or any(k in line for k in keep):
            out.append(line.rstrip())
    return out


# --- one database ----------------------------------------------------------------


def bench_app(url: str):
    return create_app(
        {
            "DATABASE_URL": url,
            "SECRET_KEY": "bench",
            "SWEEP_INTERVAL_SECONDS": 0,
            "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",  # one user, set up once
        }
    )


def limit_statements(engine) -> None:
    """PostgreSQL: every new connection stops statements at STATEMENT_TIMEOUT_MS."""

    @event.listens_for(engine, "connect")
    def _timeout(dbapi_connection, record):
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        dbapi_connection.commit()


def measure_database(admin, department, repeat: int, dialect: str) -> dict:
    """The ranges, groupings, work_mem comparison and plans, with the load around them."""
    load = load_average()
    results = []
    for label, days in RANGES:
        results.append(measure_range(admin, department, label, days, repeat))
        r = results[-1]
        say(
            f"  {label}: {r['row']['count']:,} consults; report median "
            f"{r['report']['median']:.1f} ms, Python load median "
            f"{r['python']['median']:.1f} ms"
        )
    groupings = measure_groupings(admin, department[1], repeat)
    load_after = load_average()
    work_mem = (
        measure_work_mem(admin, department, repeat) if dialect == "postgresql" else []
    )
    plans = {label: plan(admin, department, days) for label, days in RANGES}
    return {
        "ranges": results,
        "groupings": groupings,
        "plans": plans,
        "work_mem": work_mem,
        "load": (load, load_after),
    }


def server_version(dialect: str) -> str:
    version = db.session.scalar(
        text(
            "SELECT version()" if dialect == "postgresql" else "SELECT sqlite_version()"
        )
    )
    db.session.rollback()
    return version


def run_database(name: str, url: str, repeat: int, info: dict) -> dict:
    app = bench_app(url)
    with app.app_context():
        engine = db.engine
        dialect = engine.dialect.name
        if dialect == "postgresql":
            limit_statements(engine)
        admin = report_admin()
        year = reports.Period(END - timedelta(days=DAYS), END)
        department = busiest_department(year)
        total = db.session.scalar(select(func.count()).select_from(Consult))
        db.session.rollback()
        say(
            f"  {total:,} consults; busiest department: {department[1]} "
            f"({department[2]:,} consults in the year)"
        )
        measured = measure_database(admin, department, repeat, dialect)
        version = server_version(dialect)
        db.session.remove()
        engine.dispose()
    return {
        "name": name,
        "dialect": dialect,
        "consults": total,
        "department": department,
        **measured,
        "version": version,
        **info,
    }


# --- output ----------------------------------------------------------------------


def verdict(median: float, worst: float, goal: float) -> str:
    if worst < goal:
        return "yes"
    if median < goal:
        return "median only"
    return "NO"


def load_average() -> str:
    """/proc/loadavg: the 1, 5 and 15 minute load, running/total tasks, last pid."""
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())


def show(results: list[dict], repeat: int, loads_at: tuple) -> None:
    show_reports(results, repeat)
    show_groupings(results)
    show_work_mem(results, repeat)
    show_rows_and_plans(results)
    show_preparation(results)
    show_goals(results)
    show_machine(results, loads_at)


def show_reports(results: list[dict], repeat: int) -> None:
    """The main table: each database and range, report vs Python load, against the goal."""
    say()
    say(
        "Department turnaround report, turnaround(admin, period, department=<busiest>,"
        ' group_by="department"),'
    )
    say(
        f"median and max of {repeat} calls after 1 warm-up, ms; 'Python load': the same"
    )
    say("numbers from the department's rows loaded into Python (one SELECT, computed")
    say("in Python), timed interleaved with the report; speed-up = Python / report.")
    say()
    rows = [
        [
            "database",
            "consults",
            "department",
            "range",
            "rows",
            "report median",
            "report max",
            "Python-load median",
            "Python max",
            "speed-up",
            "goal",
            "goal met?",
        ]
    ]
    for result in results:
        rows += [report_row(result, r) for r in result["ranges"]]
    benchdb.table(rows)


def report_row(result: dict, r: dict) -> list[str]:
    goal = GOALS_MS[result["dialect"]]
    rep, py = r["report"], r["python"]
    return [
        result["name"],
        f"{result['consults']:,}",
        result["department"][1],
        r["range"],
        f"{r['row']['count']:,}",
        f"{rep['median']:.1f}",
        f"{rep['max']:.1f}",
        f"{py['median']:.1f}",
        f"{py['max']:.1f}",
        f"x{py['median'] / rep['median']:.1f}",
        f"< {goal:.0f}",
        verdict(rep["median"], rep["max"], goal),
    ]


def show_groupings(results: list[dict]) -> None:
    say()
    say("Informative: the same department, last 90 days, other groupings (ms):")
    rows = [["database", "group_by", "groups", "median", "min", "max"]]
    for result in results:
        for g in result["groupings"]:
            rows.append(
                [
                    result["name"],
                    g["group_by"],
                    str(g["groups"]),
                    f"{g['median']:.1f}",
                    f"{g['min']:.1f}",
                    f"{g['max']:.1f}",
                ]
            )
    benchdb.table(rows)


def show_work_mem(results: list[dict], repeat: int) -> None:
    for result in results:
        if not result["work_mem"]:
            continue
        server, report = list(result["work_mem"][0])[1:]
        say()
        say(
            f"Informative ({result['name']}): the report's grouped query alone, at the "
            f"server's work_mem ({server}) and"
        )
        say(
            f"at the {report} the report sets for it (SET LOCAL), interleaved, "
            f"ms (median of {repeat}, min):"
        )
        rows = [["range", f"{server} median", "min", f"{report} median", "min"]]
        for w in result["work_mem"]:
            rows.append(
                [
                    w["range"],
                    f"{w[server]['median']:.1f}",
                    f"{w[server]['min']:.1f}",
                    f"{w[report]['median']:.1f}",
                    f"{w[report]['min']:.1f}",
                ]
            )
        benchdb.table(rows)


def show_rows_and_plans(results: list[dict]) -> None:
    say()
    say("The report's row for the year (identical in the Python computation):")
    for result in results:
        say(f"  {result['name']}: {result['ranges'][-1]['row']}")
    for result in results:
        say()
        postgres = result["dialect"] == "postgresql"
        kind = "EXPLAIN (ANALYZE, BUFFERS)" if postgres else "EXPLAIN QUERY PLAN"
        for label, plans in result["plans"].items():
            for name, lines in plans.items():
                what = {
                    "report": "the report's queries as it runs them"
                    + (f" (work_mem {reports.SORT_WORK_MEM})" if postgres else ""),
                    "python": "Python's SELECT",
                    "server": "the grouped query at the server's work_mem",
                }[name]
                say(f"{result['name']}, {label}, {what}, {kind}:")
                for line in plan_summary(lines) if postgres else lines:
                    say(f"    {line}")


def show_preparation(results: list[dict]) -> None:
    say()
    say("Preparation:")
    for result in results:
        if result["generated"]:
            say(
                f"  {result['name']}: generated {result['consults']:,} consults in "
                f"{result['generate_s']:.1f} s"
                + (
                    f", VACUUM (ANALYZE) {result['vacuum_s']:.1f} s"
                    if "vacuum_s" in result
                    else ""
                )
            )
        else:
            say(f"  {result['name']}: reused (--reuse), generation not timed this run")


def show_goals(results: list[dict]) -> None:
    for result in results:
        goal = GOALS_MS[result["dialect"]]
        for r in result["ranges"]:
            rep = r["report"]
            met = "MET" if rep["median"] < goal else "NOT MET"
            say(
                f"Goal ({result['name']}, {r['range']}, < {goal:.0f} ms): {met}: "
                f"median {rep['median']:.1f} ms, max {rep['max']:.1f} ms."
            )


def show_machine(results: list[dict], loads_at: tuple) -> None:
    say()
    say("Machine:")
    for line in benchdb.machine():
        say(f"  {line}")
    for result in results:
        say(f"  {result['name']}: {result['version']}")
    say("  load (cat /proc/loadavg: 1, 5, 15 min, running/total tasks, last pid):")
    say(f"    at the start of the run: {loads_at[0]}")
    for result in results:
        before, after = result["load"]
        say(f"    {result['name']} timings, before: {before}; after: {after}")
    say(f"    at the end: {loads_at[1]}")


# --- main ------------------------------------------------------------------------


def give_up(signum, frame):
    raise TimeoutError(f"the benchmark ran past its {TIME_LIMIT_S} s limit")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="The PostgreSQL database is wiped. Use a dedicated one, e.g. "
        "postgresql://postgres@127.0.0.1/broker_reportbench (created if missing).",
    )
    parser.add_argument(
        "--database-url",
        default="",
        help="PostgreSQL database to WIPE and fill, "
        "e.g. postgresql://postgres@127.0.0.1/broker_reportbench",
    )
    parser.add_argument(
        "--sqlite-path",
        default="",
        help="SQLite file to fill (default: a temporary file, removed at the end)",
    )
    parser.add_argument("--consults", type=int, default=1_000_000)
    parser.add_argument("--sqlite-consults", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed calls (5)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="skip generation where the database already holds the history",
    )
    args = parser.parse_args()
    url = args.database_url
    if not url:
        parser.error("give --database-url: it will be wiped")
    if not url.startswith(("postgresql", "postgres://")):
        parser.error("--database-url must be PostgreSQL")
    if not benchdb.dedicated(url):
        parser.error("name a dedicated database, such as broker_reportbench")
    if min(args.repeat, args.consults, args.sqlite_consults) < 1:
        parser.error("--repeat, --consults and --sqlite-consults must be at least 1")
    return args


def run_postgres(args: argparse.Namespace) -> dict:
    url = args.database_url
    say(f"PostgreSQL: {make_url(url).database}")
    benchdb.ensure_database(url, unreachable_ok=True)
    info = prepare(
        url,
        args.consults,
        lambda: benchdb.reset_schema(url),
        pg_history(url),
        args.reuse,
    )
    info["vacuum_s"] = vacuum_analyze(url)
    say(f"  VACUUM (ANALYZE) in {info['vacuum_s']:.1f} s")
    return run_database("PostgreSQL", url, args.repeat, info)


def run_sqlite(args: argparse.Namespace, sqlite_path: Path) -> dict:
    sqlite_url = f"sqlite:///{sqlite_path}"
    say(f"SQLite: {sqlite_path}")
    info = prepare(
        sqlite_url,
        args.sqlite_consults,
        lambda: sqlite_path.unlink(missing_ok=True),
        sqlite_history(sqlite_path),
        args.reuse,
    )
    return run_database("SQLite", sqlite_url, args.repeat, info)


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(TIME_LIMIT_S)
    start_load = load_average()
    scratch = None
    if args.sqlite_path:
        sqlite_path = Path(args.sqlite_path).resolve()
    else:
        scratch = Path(tempfile.mkdtemp(prefix="reportbench-"))
        sqlite_path = scratch / "broker.sqlite"
    try:
        results = [run_postgres(args), run_sqlite(args, sqlite_path)]
        end_load = load_average()
        show(results, args.repeat, (start_load, end_load))
    finally:
        signal.alarm(0)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
