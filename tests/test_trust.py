"""Secrets, sign-in limits, tokens, who sees the staff lists; reads of a consult audited."""

import http.client
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from conftest import PASSWORD
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from helpers import ROOT, free_port, token_headers

from broker import accounts, clock, create_app
from broker.extensions import db

NO_SECRET = (
    "Error: SECRET_KEY is not set: set it to a long random value, the same in every "
    "process (`make run` keeps one in instance/secret_key)"
)


def test_a_token_stops_working_when_it_expires(hospital, app, client):
    app.config["TOKEN_LIFETIME_HOURS"] = 12
    start = clock.now()
    with clock.frozen_at(start):
        headers = token_headers(client, "castillo@h.test")
    with clock.frozen_at(start + timedelta(hours=11, minutes=59)):
        assert client.get("/api/me", headers=headers).status_code == 200
    with clock.frozen_at(start + timedelta(hours=12)):
        assert client.get("/api/me", headers=headers).status_code == 401


def test_a_revoked_token_is_refused_and_other_tokens_still_work(hospital, client):
    first = token_headers(client, "castillo@h.test")
    second = token_headers(client, "castillo@h.test")

    assert client.delete("/api/tokens/current", headers=first).status_code == 204

    assert client.get("/api/me", headers=first).status_code == 401
    assert client.delete("/api/tokens/current", headers=first).status_code == 401
    assert client.get("/api/me", headers=second).status_code == 200


def test_revoking_needs_a_token(client):
    assert client.delete("/api/tokens/current").status_code == 401


def test_each_read_of_a_consult_is_in_its_access_log_for_the_chief(
    hospital, new_consult
):
    consult_id = new_consult()["id"]
    hospital.castillo.get(f"/api/consults/{consult_id}")
    hospital.patel.get(f"/api/consults/{consult_id}")

    log = hospital.okafor.get(f"/api/consults/{consult_id}/access-log")

    assert log.status_code == 200
    readers = [(entry["user"]["id"], entry["via"]) for entry in log.json]
    assert readers == [
        (hospital.patel.user_id, "api"),
        (hospital.castillo.user_id, "api"),
    ]


def test_a_list_of_consults_is_in_the_access_log_of_each_consult_listed(
    hospital, new_consult
):
    consult_id = new_consult()["id"]
    hospital.castillo.get("/api/consults")

    log = hospital.admin.get(f"/api/consults/{consult_id}/access-log").json
    assert [(e["user"]["id"], e["via"]) for e in log] == [
        (hospital.castillo.user_id, "api-list")
    ]


def test_only_its_chiefs_and_admins_see_who_read_a_consult(hospital, new_consult):
    consult_id = new_consult()["id"]
    path = f"/api/consults/{consult_id}/access-log"

    assert hospital.admin.get(path).status_code == 200
    assert hospital.castillo.get(path).status_code == 403
    assert hospital.patel.get(path).status_code == 403
    assert hospital.lee.get(path).status_code == 404
    assert hospital.outsider.get(path).status_code == 404


def attempt(client, email, password):
    return client.post("/api/tokens", json={"email": email, "password": password})


def test_failed_sign_ins_stop_that_address_guessing_that_account_but_not_others(
    hospital, app, client
):
    app.config["SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS"] = "3 per 15 minutes"
    for _ in range(3):
        assert attempt(client, "castillo@h.test", "guess").status_code == 401

    stopped = attempt(client, "castillo@h.test", PASSWORD)

    assert stopped.status_code == 429
    assert "token" not in stopped.json
    assert attempt(client, "nguyen@h.test", PASSWORD).status_code == 201


def test_successful_sign_ins_do_not_count_against_the_account(hospital, app, client):
    app.config["SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS"] = "2 per 15 minutes"
    for _ in range(4):
        assert attempt(client, "castillo@h.test", PASSWORD).status_code == 201


def test_one_address_cannot_try_without_end(hospital, app, client):
    app.config["SIGN_IN_LIMIT_PER_ADDRESS"] = "5 per minute"
    answers = [
        attempt(client, f"nobody{n}@h.test", "guess").status_code for n in range(6)
    ]

    assert answers == [401] * 5 + [429]
    token = re.search(r'csrf_token"[^>]* value="([^"]+)"', client.get("/sign-in").text)
    page = client.post(
        "/sign-in",
        data={
            "csrf_token": token.group(1),
            "email": "castillo@h.test",
            "password": PASSWORD,
        },
    )
    assert page.status_code == 429


# --- no built-in secret -------------------------------------------------------------


def flask_command(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_without_a_secret_key_the_service_refuses_to_start_saying_so_in_one_line(
    tmp_path,
):
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'broker.sqlite'}"}
    for name in ("SECRET_KEY", "FLASK_DEBUG"):
        env.pop(name, None)

    refused = flask_command(env, "run", "--port", str(free_port()))

    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines() == [NO_SECRET]
    assert not (tmp_path / "broker.sqlite").exists()


def test_commands_that_do_not_serve_need_no_secret_key(tmp_path):
    """A migration or an operator's command signs nothing: it runs without the key."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'broker.sqlite'}"}
    for name in ("SECRET_KEY", "FLASK_DEBUG"):
        env.pop(name, None)

    migrated = flask_command(env, "db", "upgrade")
    created = flask_command(
        env, "departments", "create", "--slug", "radiology", "--name", "Radiology"
    )

    assert migrated.returncode == 0, migrated.stderr
    assert created.returncode == 0, created.stderr


def test_outside_tests_and_development_the_app_is_not_built_without_a_secret_key():
    settings = {"DATABASE_URL": "sqlite://", "SECRET_KEY": ""}
    with pytest.raises(RuntimeError, match="SECRET_KEY is not set"):
        create_app(settings)
    assert create_app({**settings, "SECRET_KEY": "k" * 64}).secret_key == "k" * 64


def forged_session_cookie(key: str, user_id: int) -> str:
    """The cookie anyone holding `key` could make: signed in as that user."""
    forger = Flask("forger")
    forger.secret_key = key
    serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
    return serializer.dumps({"_user_id": str(user_id), "_fresh": True})


@pytest.mark.skipif("SECRET_KEY" in os.environ, reason="needs SECRET_KEY unset")
def test_without_a_secret_key_tests_get_a_random_one_and_a_forged_cookie_is_refused(
    database_url,
):
    apps = [
        create_app({"TESTING": True, "DATABASE_URL": database_url}) for _ in range(2)
    ]
    assert apps[0].secret_key != apps[1].secret_key
    assert len(apps[0].secret_key) >= 32
    app = apps[0]
    with app.app_context():
        db.create_all()
        root = accounts.create_user("root@h.test", "Root", PASSWORD, is_admin=True)
    client = app.test_client()
    client.set_cookie("session", forged_session_cookie("dev-only-not-secret", root.id))

    assert client.get("/api/me").status_code == 401


# --- sign-in input normalised before it is counted -----------------------------------


def sign_in_page(client, data=None, json_body=None):
    token = re.search(r'csrf_token"[^>]* value="([^"]+)"', client.get("/sign-in").text)
    if json_body is not None:
        return client.post(
            "/sign-in", json=json_body, headers={"X-CSRFToken": token.group(1)}
        )
    return client.post("/sign-in", data={"csrf_token": token.group(1), **data})


@pytest.mark.parametrize(
    "email", [["castillo@h.test", "1"], 7, {"email": "castillo@h.test"}, None, True]
)
def test_an_email_that_is_not_one_string_is_invalid_everywhere(hospital, client, email):
    body = {"email": email, "password": PASSWORD}

    api = client.post("/api/tokens", json=body)
    page = sign_in_page(client, json_body=body)

    assert api.status_code == 422
    assert "email" in api.json["errors"]
    assert page.status_code == 422
    assert client.get("/api/me").status_code == 401


def test_a_password_that_is_not_one_string_is_invalid(hospital, client):
    body = {"email": "castillo@h.test", "password": [PASSWORD, "x"]}
    assert client.post("/api/tokens", json=body).status_code == 422
    assert sign_in_page(client, json_body=body).status_code == 422


def test_a_form_with_the_email_twice_is_invalid(hospital, client):
    data = {"email": ["castillo@h.test", "other@h.test"], "password": PASSWORD}
    assert sign_in_page(client, data=data).status_code == 422


def test_failures_count_against_the_account_however_its_email_is_written(
    hospital, app, client
):
    """The bypass of issue 13 (4): a list, or another spelling, is the same account."""
    app.config["SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS"] = "3 per 15 minutes"
    for _ in range(3):
        assert attempt(client, "castillo@h.test", "guess").status_code == 401

    as_list = sign_in_page(
        client, json_body={"email": ["castillo@h.test", "2"], "password": PASSWORD}
    )
    respelt = attempt(client, "  CASTILLO@h.test ", PASSWORD)
    page = sign_in_page(
        client, data={"email": " Castillo@H.Test", "password": PASSWORD}
    )

    assert as_list.status_code == 422
    assert respelt.status_code == 429
    assert page.status_code == 429


# --- throttling that protects without locking out (a real server, several addresses) -


def post_from(server, address: str, path: str, body: dict) -> int:
    """POST a JSON body to the real server from this local address (127.0.0.x)."""
    url = urlsplit(server.url)
    connection = http.client.HTTPConnection(
        url.hostname, url.port, timeout=60, source_address=(address, 0)
    )
    try:
        connection.request(
            "POST", path, json.dumps(body), {"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def sign_in_from(server, address, email, password) -> int:
    return post_from(
        server, address, "/api/tokens", {"email": email, "password": password}
    )


FAST_SLOW_DOWN = {
    "SIGN_IN_SLOW_DOWN_SECONDS": "0.01",
    "SIGN_IN_SLOW_DOWN_MAX_SECONDS": "0.04",
}


@pytest.mark.parametrize("server_env", [FAST_SLOW_DOWN])
def test_wrong_passwords_from_one_address_do_not_lock_the_clinician_out_elsewhere(
    hospital, live_server_process
):
    """Issue 13 (5): ten wrong passwords from anywhere locked the account for everyone."""
    server = live_server_process
    for _ in range(10):
        assert sign_in_from(server, "127.0.0.2", "castillo@h.test", "guess") == 401

    assert sign_in_from(server, "127.0.0.2", "castillo@h.test", PASSWORD) == 429
    assert sign_in_from(server, "127.0.0.3", "castillo@h.test", PASSWORD) == 201
    assert sign_in_from(server, "127.0.0.2", "nguyen@h.test", PASSWORD) == 201


@pytest.mark.parametrize("server_env", [FAST_SLOW_DOWN])
def test_many_addresses_guessing_one_account_slow_it_down_progressively(
    hospital, live_server_process
):
    server = live_server_process
    addresses = [f"127.0.0.{n}" for n in range(10, 14)]
    for address in addresses:
        for _ in range(3):
            assert sign_in_from(server, address, "castillo@h.test", "guess") == 401

    assert sign_in_from(server, "127.0.0.20", "castillo@h.test", PASSWORD) == 201
    delays = [
        float(seconds)
        for seconds in re.findall(r"Sign-in slowed by ([0-9.]+) s", server.log())
    ]
    # 12 failures, 5 allowed: attempts 6 to 12 and the right one after them wait
    # 0.01 s, doubling, at most 0.04 s.
    assert delays == [0.01, 0.02, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04]
    assert "castillo" not in server.log()


# --- equal time for unknown e-mails ----------------------------------------------------


def test_an_unknown_email_is_checked_against_a_hash_of_the_same_cost(
    hospital, app, client, monkeypatch
):
    checked = []
    real_check = accounts.check_password_hash

    def counting_check(password_hash, password):
        checked.append(password_hash.split("$")[0])
        return real_check(password_hash, password)

    monkeypatch.setattr(accounts, "check_password_hash", counting_check)

    assert attempt(client, "nobody@h.test", PASSWORD).status_code == 401

    assert checked == [app.config["PASSWORD_HASH_METHOD"]]
    with app.app_context():
        real = accounts.user_by_email("castillo@h.test").password_hash.split("$")[0]
    assert checked == [real]


# --- the staff list only for the department ------------------------------------------


def test_a_departments_members_are_listed_only_to_its_members_and_admins(hospital):
    path = "/api/departments/radiology/members"
    for caller in (hospital.okafor, hospital.castillo, hospital.admin):
        assert caller.get(path).status_code == 200, caller.name
    for caller in (hospital.lee, hospital.patel, hospital.outsider):
        refused = caller.get(path)
        assert refused.status_code == 403, caller.name
        assert "@" not in refused.text
