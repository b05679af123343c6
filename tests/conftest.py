"""Fixtures: a fresh database per test, users and departments, API callers, a real server.

The suite runs on SQLite by default and on PostgreSQL when TEST_DATABASE_URL is
set (CI does both). Nothing mocks the database: every test talks to the real one.
"""

import os
import uuid
from dataclasses import dataclass

import pytest
from helpers import PASSWORD, Calls, Person, Swept, start_server, swept
from sqlalchemy import text

from broker import accounts, create_app
from broker.extensions import db

POSTGRES_URL = os.environ.get("TEST_DATABASE_URL", "")
# Every server this run starts pushes on its own Redis channel, apart from any other run.
os.environ.setdefault("SOCKETIO_CHANNEL", f"broker-test-{uuid.uuid4().hex}")
ON_POSTGRES = bool(POSTGRES_URL)

_postgres_schema_ready = False


def pytest_collection_modifyitems(config, items):
    if ON_POSTGRES:
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL: set TEST_DATABASE_URL")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _push_request_context():
    """Replaces pytest-flask's: no request context held open around a test.

    Held open, it would share one `g` across the test client's requests, which a
    real server never does (Flask-WTF, for one, caches the CSRF token in `g`).
    """
    yield


@pytest.fixture
def client(app):
    """Replaces pytest-flask's, which keeps the last request's context pushed (see above)."""
    return app.test_client()


@pytest.fixture
def database_url(tmp_path) -> str:
    """SQLite: a new file per test. PostgreSQL: the run's database, emptied per test."""
    return POSTGRES_URL or f"sqlite:///{tmp_path / 'broker.sqlite'}"


@pytest.fixture
def app_settings() -> dict:
    """Settings the `app` is created with, besides the tests' own; a module overrides it."""
    return {}


@pytest.fixture
def app(database_url, tmp_path, app_settings):
    global _postgres_schema_ready
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": database_url,
            "SECRET_KEY": "test",
            "SWEEP_INTERVAL_SECONDS": 0,
            "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",  # cheap: tests make many users
            "SESSION_COOKIE_SECURE": False,  # tests speak plain http
            # Tests move the clock around freely; test_trust.py checks expiry itself.
            "TOKEN_LIFETIME_HOURS": 24 * 365 * 20,
            # A consult, event or shift read without what it shows raises (an N+1).
            "RAISE_ON_LAZY_LOAD": True,
            **app_settings,
        }
    )
    with app.app_context():
        if ON_POSTGRES:
            if not _postgres_schema_ready:
                # Start from an empty schema, whatever an earlier run left behind.
                db.session.execute(text("DROP SCHEMA public CASCADE"))
                db.session.execute(text("CREATE SCHEMA public"))
                db.session.commit()
                db.create_all()
                _postgres_schema_ready = True
            tables = ", ".join(t.name for t in db.metadata.sorted_tables)
            db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.session.commit()
        else:
            db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@dataclass
class Caller(Person, Calls):
    """A signed-in user of the test client: `caller.post("/api/consults/1/claim")`."""

    client: object


@pytest.fixture
def make_caller(app, client):
    """make_caller(email, name, departments={"radiology": False}, admin=False) -> Caller."""

    def make(email, name=None, departments=None, admin=False) -> Caller:
        with app.app_context():
            user = accounts.create_user(email, name or email, PASSWORD, is_admin=admin)
            for slug, chief in (departments or {}).items():
                accounts.add_member(accounts.department_by_slug(slug), user, chief)
            token = accounts.issue_token(user)
            return Caller(user.id, user.name, user.email, token, client)

    return make


@pytest.fixture
def hospital(app, make_caller):
    """Two departments and the people of a typical consult story.

    radiology: chief `okafor`, radiologists `castillo` and `nguyen`;
    cardiology: cardiologist `lee`; requester `patel`; `admin`;
    `outsider` (signed in, in no department, requested nothing).
    """
    with app.app_context():
        accounts.create_department("radiology", "Radiology")
        accounts.create_department("cardiology", "Cardiology")

    @dataclass
    class Hospital:
        okafor: Caller
        castillo: Caller
        nguyen: Caller
        lee: Caller
        patel: Caller
        admin: Caller
        outsider: Caller

    return Hospital(
        okafor=make_caller("okafor@h.test", "Dr Okafor", {"radiology": True}),
        castillo=make_caller("castillo@h.test", "Dr Castillo", {"radiology": False}),
        nguyen=make_caller("nguyen@h.test", "Dr Nguyen", {"radiology": False}),
        lee=make_caller("lee@h.test", "Dr Lee", {"cardiology": False}),
        patel=make_caller("patel@h.test", "Dr Patel"),
        admin=make_caller("admin@h.test", "Admin", admin=True),
        outsider=make_caller("outsider@h.test", "Dr Outsider"),
    )


NEW_CONSULT = {
    "department": "radiology",
    "urgency": "stat",
    "patient_ref": "MRN-TEST-4417",
    "question": "Is there a drainable collection on today's CT?",
    "study_ref": "ACC-1",
}


@pytest.fixture
def new_consult(hospital):
    """new_consult(**overrides) -> the consult JSON, requested by patel."""

    def create(by=None, **overrides):
        response = (by or hospital.patel).post(
            "/api/consults", json={**NEW_CONSULT, **overrides}
        )
        assert response.status_code == 201, response.json
        return response.json

    return create


@pytest.fixture
def flask(app):
    """flask("users", "create", ...) -> click's Result of that `flask` command."""
    runner = app.test_cli_runner()

    def run(*args):
        return runner.invoke(args=list(args))

    return run


@pytest.fixture
def sweep(flask):
    """sweep(instant) -> what `flask sweep --at <instant>` printed, parsed."""

    def run(instant) -> Swept:
        result = flask("sweep", "--at", instant.isoformat())
        assert result.exit_code == 0, result.output
        return swept(result.stdout)

    return run


@pytest.fixture
def server_env() -> dict:
    """Settings for `live_server_process`; a test parametrizes it to change them."""
    return {}


@pytest.fixture
def servers(tmp_path):
    """servers(database_url, **env) -> a started server (see helpers.start_server);
    all are stopped afterwards."""
    started = []

    def start(database_url, **extra_env):
        log_path = tmp_path / f"server{len(started)}.log"
        started.append(start_server(database_url, log_path, **extra_env))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def live_server_process(app, database_url, servers, server_env):
    """The broker served by a real process on the test database (see helpers.start_server)."""
    return servers(database_url, **server_env)
