"""A retried new consult (Idempotency-Key) is created once.

A physician whose request timed out, or whose connection dropped before the answer
came, sends it again; the department must not get the same question twice with
two owners racing to answer it.
"""

import pytest
import requests
from conftest import NEW_CONSULT
from helpers import fire_together


def request_consult(caller, key=None, **overrides):
    """POST /api/consults as `caller`, with that Idempotency-Key if given; the response."""
    headers = {**caller.headers}
    if key is not None:
        headers["Idempotency-Key"] = key
    return caller.client.post(
        "/api/consults", json={**NEW_CONSULT, **overrides}, headers=headers
    )


def consults_of(caller) -> list[dict]:
    return caller.get("/api/consults", query_string={"requester": "me"}).json


def test_the_same_request_sent_twice_makes_one_consult(hospital):
    first = request_consult(hospital.patel, key="7f1c2a9e-retry")
    again = request_consult(hospital.patel, key="7f1c2a9e-retry")

    assert first.status_code == again.status_code == 201
    assert again.json == first.json
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [c["id"] for c in consults_of(hospital.patel)] == [first.json["id"]]
    timeline = hospital.patel.get(f"/api/consults/{first.json['id']}").json["timeline"]
    assert [e["kind"] for e in timeline] == ["created"]


def test_a_retry_after_the_consult_moved_on_answers_it_as_it_is_now(hospital):
    first = request_consult(hospital.patel, key="k-claimed")
    hospital.castillo.post(f"/api/consults/{first.json['id']}/claim")

    again = request_consult(hospital.patel, key="k-claimed")

    assert again.status_code == 201
    assert again.json["id"] == first.json["id"]
    assert again.json["status"] == "claimed"


def test_the_same_key_for_another_question_is_refused_and_creates_nothing(hospital):
    first = request_consult(hospital.patel, key="reused")
    other = request_consult(
        hospital.patel, key="reused", question="A different question?"
    )

    assert other.status_code == 409
    assert "A different question?" not in other.text
    assert [c["id"] for c in consults_of(hospital.patel)] == [first.json["id"]]


def test_keys_are_each_requesters_own_and_without_one_every_request_creates(
    hospital,
):
    mine = request_consult(hospital.patel, key="shared-key")
    theirs = request_consult(hospital.lee, key="shared-key")
    request_consult(hospital.patel)
    request_consult(hospital.patel)

    assert theirs.status_code == 201
    assert theirs.json["id"] != mine.json["id"]
    assert len(consults_of(hospital.patel)) == 3


@pytest.mark.parametrize("key", ["", "has space", "x" * 65, "ключ"])
def test_a_key_that_is_not_a_short_printable_token_is_invalid(hospital, key):
    response = request_consult(hospital.patel, key=key)

    assert response.status_code == 422
    assert set(response.json["errors"]) == {"Idempotency-Key"}
    assert consults_of(hospital.patel) == []


def test_simultaneous_retries_against_a_real_server_make_one_consult(
    hospital, live_server_process
):
    def send():
        return requests.post(
            f"{live_server_process.url}/api/consults",
            json=NEW_CONSULT,
            headers={**hospital.patel.headers, "Idempotency-Key": "burst-1"},
            timeout=30,
        )

    answers = fire_together([send] * 10)

    assert [a.status_code for a in answers] == [201] * 10, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sum("Idempotent-Replayed" not in a.headers for a in answers) == 1
    assert len(consults_of(hospital.patel)) == 1
