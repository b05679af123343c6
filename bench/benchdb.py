"""What the benchmark scripts share: their database, the machine, a text table.

The scripts are run as `python bench/<name>.py`, so this folder is on sys.path
and they `import benchdb`. Messages are printed flushed, as they happen.
"""

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

import psycopg
import sqlalchemy
from psycopg import sql
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
# Never a benchmark's database: none named, the maintenance one, the templates.
NOT_DEDICATED = (None, "", "postgres", "template0", "template1")


def say(line: str = "") -> None:
    print(line, flush=True)


# --- the database ---------------------------------------------------------------


def dedicated(url: str) -> bool:
    """Whether the URL names a database of its own (one a benchmark may wipe)."""
    return make_url(url).database not in NOT_DEDICATED


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL as psycopg takes it (no +driver), password kept."""
    return make_url(url).set(drivername="postgresql").render_as_string(False)


def ensure_database(url: str, unreachable_ok: bool = False) -> None:
    """Create the target database if missing (connecting to `postgres`, autocommit).

    unreachable_ok: if `postgres` cannot be reached, say so and assume the
    database exists, rather than fail.
    """
    name = make_url(url).database
    admin = make_url(url).set(drivername="postgresql", database="postgres")
    try:
        conn = psycopg.connect(
            admin.render_as_string(hide_password=False), autocommit=True
        )
    except psycopg.OperationalError as error:
        if not unreachable_ok:
            raise
        say(f"cannot reach the `postgres` database ({error}); assuming {name} exists")
        return
    with conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            say(f"created database {name}")


def reset_schema(url: str, schema: str = "public") -> None:
    """Drop the schema (if there, with everything in it) and create it empty."""
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        name = sql.Identifier(schema)
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(name))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(name))


def migrate(url: str) -> None:
    """The schema as production gets it: `flask --app wsgi db upgrade`."""
    env = dict(
        os.environ, DATABASE_URL=url, SWEEP_INTERVAL_SECONDS="0", SECRET_KEY="bench"
    )
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


# --- the machine ----------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo ("unknown" if it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine(*between: str) -> list[str]:
    """The cores usable and the CPU, any lines `between`, then the Python,
    SQLAlchemy and psycopg versions (sweep.py, reports.py)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    return [
        f"cores (nproc): {usable}; CPU: {cpu_model()}",
        *between,
        f"Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
        f"psycopg {psycopg.__version__}",
    ]


def machine_with_servers(
    database_url: str, redis_url: str, packages: list[str], redis_optional=False
) -> list[str]:
    """CPU, RAM, OS, the PostgreSQL and Redis versions, and the `packages`'
    versions (live.py, load.py). redis_optional: an unreachable Redis is noted
    rather than fatal."""
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    with psycopg.connect(libpq_url(database_url)) as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    try:
        import redis

        redis_version = redis.Redis.from_url(redis_url).info("server")["redis_version"]
    except Exception as exc:  # noqa: BLE001
        if not redis_optional:
            raise
        redis_version = f"unavailable ({exc.__class__.__name__})"
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}" for p in packages)
    return [
        f"CPU: {os.cpu_count()} cores (nproc), {cpu_model()}; "
        f"RAM {mem_kb / 1024**2:.0f} GB",
        f"OS: {platform.platform()}",
        f"Python {platform.python_version()}; PostgreSQL {pg}; Redis {redis_version}",
        versions,
    ]


# --- output ---------------------------------------------------------------------


def table(rows: list[list[str]]) -> None:
    """A text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(w) for cell, w in zip(row[1:], widths[1:], strict=True)]
        say("  ".join(cells).rstrip())
        if n == 0:
            say("  ".join("-" * w for w in widths))
