"""The command line of SPEC.md, run through Flask's CLI runner on the test database.

Each command exits non-zero with a one-line reason on bad input. What a
command creates is checked where a user would see it: by signing in through
the API.
"""

import ast
import subprocess
import sys

import pytest
from helpers import ROOT, assert_cli_refused, token_headers
from sqlalchemy import func, select

from broker.extensions import db
from broker.models import User

STATUSES = {"pending", "claimed", "answered", "closed", "cancelled"}


def profile(client, email="ito@h.test", password="s3cret-passphrase"):
    """GET /api/me signed in as that user (with a new token)."""
    return client.get("/api/me", headers=token_headers(client, email, password))


def create_user(flask, email, name="Dr Ito", password="long enough 1", *extra):
    args = ["users", "create", "--email", email, "--name", name]
    return flask(*args, "--password", password, *extra)


def test_users_create_makes_a_user_who_can_sign_in(flask, client):
    result = create_user(flask, "ito@h.test", "Dr Ito", "s3cret-passphrase")

    assert result.exit_code == 0, result.output
    assert "ito@h.test" in result.output
    me = profile(client)
    assert me.status_code == 200
    assert me.json["name"] == "Dr Ito"
    assert me.json["email"] == "ito@h.test"
    assert "admin" not in me.json["roles"]


def test_users_create_with_admin_flag_makes_an_administrator(flask, client):
    result = create_user(flask, "root@h.test", "Root", "s3cret-passphrase", "--admin")

    assert result.exit_code == 0, result.output
    me = profile(client, "root@h.test")
    assert "admin" in me.json["roles"]


def test_users_create_refuses_a_duplicate_email_in_one_line(flask, client):
    assert create_user(flask, "ito@h.test", "Dr Ito", "first password").exit_code == 0

    result = create_user(flask, "Ito@H.test", "Another Ito", "second password")

    assert_cli_refused(result, "ito@h.test", "exists")
    # The first user is untouched: the first password still signs in.
    token_headers(client, "ito@h.test", "first password")
    response = client.post(
        "/api/tokens", json={"email": "ito@h.test", "password": "second password"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize("email", ["not-an-email", "", "   "])
def test_users_create_refuses_a_bad_email_in_one_line(flask, client, email):
    result = create_user(flask, email)

    assert_cli_refused(result, "email")
    response = client.post("/api/tokens", json={"email": email, "password": "x" * 12})
    assert response.status_code == 401


def test_users_create_refuses_a_short_password_in_one_line(flask, client):
    result = create_user(flask, "ito@h.test", "Dr Ito", "short")

    assert_cli_refused(result, "password")
    response = client.post(
        "/api/tokens", json={"email": "ito@h.test", "password": "short"}
    )
    assert response.status_code == 401


def test_departments_create_makes_a_department_with_the_default_policy(
    flask, client, make_caller
):
    result = flask("departments", "create", "--slug", "neuro", "--name", "Neurology")

    assert result.exit_code == 0, result.output
    caller = make_caller("ito@h.test")
    listed = {d["slug"]: d for d in caller.get("/api/departments").json}
    assert listed["neuro"]["name"] == "Neurology"
    assert listed["neuro"]["policy"]["stat"]["claim_minutes"] == 15
    assert listed["neuro"]["policy"]["stat"]["answer_minutes"] == 60


def test_departments_create_refuses_a_duplicate_slug_in_one_line(
    flask, client, make_caller
):
    first = flask("departments", "create", "--slug", "neuro", "--name", "Neurology")
    assert first.exit_code == 0, first.output

    result = flask("departments", "create", "--slug", "neuro", "--name", "Other")

    assert_cli_refused(result, "neuro", "exists")
    listed = make_caller("ito@h.test").get("/api/departments").json
    assert [(d["slug"], d["name"]) for d in listed] == [("neuro", "Neurology")]


def test_departments_create_refuses_a_bad_slug_in_one_line(flask):
    result = flask("departments", "create", "--slug", "no spaces!", "--name", "X")

    assert_cli_refused(result, "slug")


@pytest.fixture
def neurology(flask):
    """A department `neuro` and a user ito@h.test (password s3cret-passphrase) in none."""
    created = flask("departments", "create", "--slug", "neuro", "--name", "Neurology")
    assert created.exit_code == 0, created.output
    assert (
        create_user(flask, "ito@h.test", "Dr Ito", "s3cret-passphrase").exit_code == 0
    )


def test_departments_add_member_with_chief_shows_in_the_users_api_profile(
    flask, client, neurology
):
    result = flask(
        "departments",
        "add-member",
        "--slug",
        "neuro",
        "--email",
        "ito@h.test",
        "--chief",
    )

    assert result.exit_code == 0, result.output
    me = profile(client)
    assert me.json["departments"] == ["neuro"]
    assert me.json["chief_of"] == ["neuro"]
    assert {"consultant", "chief"} <= set(me.json["roles"])


def test_departments_add_member_without_chief_makes_a_plain_member(
    flask, client, neurology
):
    result = flask(
        "departments", "add-member", "--slug", "neuro", "--email", "ITO@h.test"
    )

    assert result.exit_code == 0, result.output
    me = profile(client)
    assert me.json["departments"] == ["neuro"]
    assert me.json["chief_of"] == []
    assert "chief" not in me.json["roles"]


def test_departments_add_member_refuses_an_unknown_email_in_one_line(
    flask, client, neurology
):
    result = flask(
        "departments", "add-member", "--slug", "neuro", "--email", "nobody@h.test"
    )

    assert_cli_refused(result, "nobody@h.test")
    me = profile(client)
    assert me.json["departments"] == []


def test_departments_add_member_refuses_an_unknown_slug_in_one_line(
    flask, client, neurology
):
    result = flask(
        "departments", "add-member", "--slug", "nowhere", "--email", "ito@h.test"
    )

    assert_cli_refused(result, "nowhere")
    me = profile(client)
    assert me.json["departments"] == []


def demo_logins(output: str) -> dict[str, str]:
    """{email: password} from the lines of the demo's printed logins."""
    logins = {}
    for line in output.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0].endswith("@demo.test"):
            logins[words[0]] = words[1]
    return logins


def every_consult(client, headers) -> list[dict]:
    response = client.get("/api/consults?page_size=200", headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(User.id)))


def test_demo_prints_logins_that_sign_in_and_creates_three_departments(flask, client):
    result = flask("demo")

    assert result.exit_code == 0, result.output
    logins = demo_logins(result.output)
    assert "admin@demo.test" in logins
    admin = token_headers(client, "admin@demo.test", logins["admin@demo.test"])
    me = client.get("/api/me", headers=admin).json
    assert "admin" in me["roles"]
    slugs = {d["slug"] for d in client.get("/api/departments", headers=admin).json}
    assert slugs == {"radiology", "pathology", "cardiology"}
    # Every printed login works, and the departments have a chief among them.
    chiefs = set()
    for email, password in logins.items():
        chiefs.update(profile(client, email, password).json["chief_of"])
    assert chiefs == slugs


def test_demo_has_consults_in_every_status(flask, client):
    logins = demo_logins(flask("demo").output)
    admin = token_headers(client, "admin@demo.test", logins["admin@demo.test"])

    consults = every_consult(client, admin)

    assert {c["status"] for c in consults} == STATUSES
    for status in sorted(STATUSES):
        listed = client.get(f"/api/consults?status={status}", headers=admin).json
        assert listed, f"no {status} consult in the demo"
        assert {c["status"] for c in listed} == {status}
    for consult in consults:
        if consult["status"] == "pending":
            assert consult["owner"] is None, consult
        elif consult["status"] in ("claimed", "answered"):
            assert consult["owner"] is not None, consult


def test_demo_run_twice_is_idempotent(app, flask, client):
    first = flask("demo")
    assert first.exit_code == 0, first.output
    admin = token_headers(
        client, "admin@demo.test", demo_logins(first.output)["admin@demo.test"]
    )
    users, consults = user_count(app), len(every_consult(client, admin))
    departments = client.get("/api/departments", headers=admin).json

    second = flask("demo")

    assert second.exit_code == 0, second.output
    assert demo_logins(second.output) == demo_logins(first.output)
    assert user_count(app) == users
    assert len(every_consult(client, admin)) == consults
    assert client.get("/api/departments", headers=admin).json == departments
    token_headers(
        client, "admin@demo.test", demo_logins(second.output)["admin@demo.test"]
    )


def test_demo_over_an_existing_department_does_not_crash(flask, client):
    """A database someone started by hand: the demo loads, or says why not in one line."""
    created = flask("departments", "create", "--slug", "radiology", "--name", "X-ray")
    assert created.exit_code == 0, created.output

    result = flask("demo")

    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"demo crashed: {result.exception!r}"
    )
    if result.exit_code == 0:
        logins = demo_logins(result.output)
        token_headers(client, "admin@demo.test", logins["admin@demo.test"])
    else:
        assert_cli_refused(result, "radiology")


SERVE_WITHOUT_SEED = """
import importlib, pkgutil, sys
import broker
from broker import create_app

for module in pkgutil.walk_packages(broker.__path__, "broker."):
    importlib.import_module(module.name)
app = create_app({"TESTING": True, "DATABASE_URL": sys.argv[1], "SWEEP_INTERVAL_SECONDS": 0})
client = app.test_client()
for path in ("/", "/sign-in", "/api/openapi.json", "/api/consults"):
    client.get(path)
print(sorted(app.cli.list_commands(None)))
print(sorted(m for m in sys.modules if m.split(".")[0] == "seed"))
print(sorted(m.name for m in pkgutil.iter_modules(broker.__path__)))
"""


def test_serving_never_loads_the_demo_or_the_generator(tmp_path):
    """seed/ (demo, generate) uses the broker; the broker loads it only to run those commands.

    Every module of the broker imported, an app made and requests served, in a
    fresh interpreter: the seed package is not loaded, and the serving package
    holds neither; the commands are registered all the same.
    """
    database = f"sqlite:///{tmp_path / 'boundary.db'}"
    run = subprocess.run(
        [sys.executable, "-c", SERVE_WITHOUT_SEED, database],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )

    assert run.returncode == 0, run.stderr
    commands, seed_modules, broker_modules = run.stdout.strip().splitlines()[-3:]
    assert {"demo", "generate"} <= set(ast.literal_eval(commands))
    assert ast.literal_eval(seed_modules) == []
    assert not {"demo", "generate"} & set(ast.literal_eval(broker_modules))
