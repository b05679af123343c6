"""Tokens expire and can be revoked; every read of a consult's details is audited."""

import re
from datetime import timedelta

from conftest import PASSWORD
from helpers import token_headers

from broker import clock


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


def test_listing_consults_is_not_a_read_of_their_details(hospital, new_consult):
    consult_id = new_consult()["id"]
    hospital.castillo.get("/api/consults")

    assert hospital.admin.get(f"/api/consults/{consult_id}/access-log").json == []


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


def test_failed_sign_ins_lock_the_account_for_a_while_but_not_others(
    hospital, app, client
):
    app.config["SIGN_IN_FAILURES_PER_ACCOUNT"] = "3 per 15 minutes"
    for _ in range(3):
        assert attempt(client, "castillo@h.test", "guess").status_code == 401

    locked = attempt(client, "castillo@h.test", PASSWORD)

    assert locked.status_code == 429
    assert "token" not in locked.json
    assert attempt(client, "nguyen@h.test", PASSWORD).status_code == 201


def test_successful_sign_ins_do_not_count_against_the_account(hospital, app, client):
    app.config["SIGN_IN_FAILURES_PER_ACCOUNT"] = "2 per 15 minutes"
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
