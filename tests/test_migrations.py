"""The migrations build exactly the schema the models describe, on a fresh database.

`flask db upgrade` runs in a subprocess, exactly as a user runs it. On SQLite
the database is a new file; on PostgreSQL (TEST_DATABASE_URL) a database of its
own, created for the test and dropped after it.
"""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from broker.config import normalise_database_url
from broker.extensions import db
from broker.models import render_for_migrations

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = ROOT / "migrations"
POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")
TIMEOUT = 120


@pytest.fixture
def fresh_database_url(tmp_path):
    """The URL of an empty database nobody else uses."""
    if not POSTGRES_URL:
        yield f"sqlite:///{tmp_path / 'fresh.sqlite'}"
        return
    server = make_url(normalise_database_url(POSTGRES_URL))
    name = f"broker_migrations_{uuid.uuid4().hex[:12]}"
    admin = server.set(drivername="postgresql", database="postgres")
    conninfo = admin.render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flask_db(database_url, *args):
    """`flask --app wsgi db ...` in its own process, as a user would run it."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "test"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert result.returncode == 0, (
        f"flask db {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result


def summary(difference) -> str:
    """One readable line for one autogenerate difference (a tuple, or a list of them)."""
    if isinstance(difference, list):
        return "; ".join(summary(d) for d in difference)
    kind, *details = difference
    names = [getattr(d, "name", None) or str(d) for d in details[:3]]
    return f"{kind} {' '.join(names)}"


def schema_differences(database_url) -> list[str]:
    """What autogenerate would change to make the database match the models."""
    engine = create_engine(normalise_database_url(database_url))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={"compare_type": True, "render_item": render_for_migrations},
            )
            return [summary(d) for d in compare_metadata(context, db.metadata)]
    finally:
        engine.dispose()


def assert_schema_matches_models(database_url) -> None:
    differences = schema_differences(database_url)
    assert not differences, "migrated schema differs from the models:\n" + "\n".join(
        differences
    )
    assert check_constraints(database_url) == model_check_constraints()


def check_constraints(database_url) -> dict[str, set[str]]:
    """{table: names of its CHECK constraints}; autogenerate does not compare these."""
    engine = create_engine(normalise_database_url(database_url))
    try:
        inspector = inspect(engine)
        return {
            table: {c["name"] for c in inspector.get_check_constraints(table)}
            for table in inspector.get_table_names()
            if table != "alembic_version"
        }
    finally:
        engine.dispose()


def model_check_constraints() -> dict[str, set[str]]:
    return {
        table.name: {
            c.name for c in table.constraints if isinstance(c, CheckConstraint)
        }
        for table in db.metadata.sorted_tables
    }


def table_names(database_url) -> set[str]:
    engine = create_engine(normalise_database_url(database_url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_the_migrations_have_exactly_one_head():
    heads = ScriptDirectory(str(MIGRATIONS)).get_heads()

    assert len(heads) == 1, f"several heads, merge them: {heads}"


def test_db_upgrade_on_an_empty_database_builds_the_models_schema(fresh_database_url):
    flask_db(fresh_database_url, "upgrade")

    assert_schema_matches_models(fresh_database_url)
    assert table_names(fresh_database_url) == set(db.metadata.tables) | {
        "alembic_version"
    }


def test_db_upgrade_leaves_the_database_at_the_single_head(fresh_database_url):
    flask_db(fresh_database_url, "upgrade")

    current = flask_db(fresh_database_url, "current")

    (head,) = ScriptDirectory(str(MIGRATIONS)).get_heads()
    assert f"{head} (head)" in current.stdout + current.stderr


def test_downgrade_to_base_and_upgrade_again_rebuilds_the_same_schema(
    fresh_database_url,
):
    flask_db(fresh_database_url, "upgrade")

    flask_db(fresh_database_url, "downgrade", "base")

    assert table_names(fresh_database_url) <= {"alembic_version"}
    flask_db(fresh_database_url, "upgrade")
    assert_schema_matches_models(fresh_database_url)


def test_the_demo_loads_into_a_migrated_database(fresh_database_url):
    """The migrated schema (not create_all) accepts everything the demo writes."""
    flask_db(fresh_database_url, "upgrade")

    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "demo"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": fresh_database_url, "SECRET_KEY": "test"},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Demo data loaded." in result.stdout


def test_the_migrated_audit_refuses_update_and_delete(fresh_database_url):
    """The migration itself installs the append-only rule (the trigger), not only create_all."""
    flask_db(fresh_database_url, "upgrade")
    scripts = ScriptDirectory(str(MIGRATIONS))
    flask_db(fresh_database_url, "downgrade", scripts.get_current_head() + "-1")
    flask_db(
        fresh_database_url, "upgrade"
    )  # down and up again: installed once, cleanly
    engine = create_engine(normalise_database_url(fresh_database_url))
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (id, email, name, password_hash, is_admin, "
                    "created_at) VALUES (1, 'a@h.test', 'A', 'x', false, "
                    "'2026-01-01 00:00:00')"
                )
            )
            connection.execute(
                text("INSERT INTO departments (id, slug, name) VALUES (1, 'r', 'R')")
            )
            connection.execute(
                text(
                    "INSERT INTO consults (id, version, department_id, urgency, status,"
                    " requester_id, patient_ref, question, created_at, routed_at,"
                    " updated_at, claim_due_at, answer_due_at, escalation_level,"
                    " followup_count, handoff_count, redirect_count,"
                    " max_escalation_level) VALUES (1, 1, 1, 'stat', 'pending', 1,"
                    " 'MRN-1', 'Q?', '2026-01-01', '2026-01-01', '2026-01-01',"
                    " '2026-01-01', '2026-01-01', 0, 0, 0, 0, 0)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO consult_reads (consult_id, user_id, at, via) "
                    "VALUES (1, 1, '2026-01-01 00:00:00', 'api')"
                )
            )
        for statement in (
            "UPDATE consult_reads SET via = 'x'",
            "DELETE FROM consult_reads",
        ):
            with (
                pytest.raises(DBAPIError, match="append-only"),
                engine.begin() as connection,
            ):
                connection.execute(text(statement))
    finally:
        engine.dispose()
