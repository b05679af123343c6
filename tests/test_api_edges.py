"""Input at the edge of what the API can hold: refused (404, 422) or answered, never a 500.

Schemathesis (test_schema.py) reaches each of these now and then; here each is pinned
down, on SQLite and on PostgreSQL.
"""

import json
import logging
import re

import pytest
from conftest import NEW_CONSULT


def post_raw_json(caller, path, text):
    """A JSON body as written: `json=` could not carry a lone surrogate."""
    return caller.client.post(
        path,
        data=text,
        headers={**caller.headers, "Content-Type": "application/json"},
    )


def test_text_that_is_not_unicode_is_invalid_input_naming_the_field(hospital):
    body = json.dumps({**NEW_CONSULT, "question": "LONE"}).replace("LONE", "\\ud800")

    response = post_raw_json(hospital.patel, "/api/consults", body)

    assert response.status_code == 422
    assert set(response.json["errors"]) == {"question"}
    assert hospital.patel.get("/api/consults").json == []


def test_a_lone_surrogate_in_an_email_is_no_server_error(hospital):
    body = json.dumps({"email": "LONE", "password": "x"}).replace("LONE", "\\udfff")

    response = post_raw_json(hospital.patel, "/api/tokens", body)

    assert response.status_code == 422
    assert set(response.json["errors"]) == {"email"}


@pytest.mark.parametrize("slug", ["radio%00logy", "r" * 65])
def test_a_slug_no_department_can_have_is_not_found(hospital, slug):
    response = hospital.castillo.get(f"/api/departments/{slug}/oncall")

    assert response.status_code == 404
    assert response.json["code"] == 404


def test_a_page_past_any_offset_a_database_takes_is_empty(hospital, new_consult):
    new_consult()

    response = hospital.patel.get(f"/api/consults?page={2**63}")

    assert response.status_code == 200
    assert response.json == []
    assert "next_page" not in response.headers["X-Pagination"]


@pytest.mark.parametrize(
    "instant",
    [
        "0001-01-01T00:00:00+00:04",  # the year 0 in UTC
        "9999-12-31T23:59:00-01:00",  # the year 10000 in UTC
        "1899-12-31T23:59:59Z",
        "9999-01-01T00:00:00Z",
    ],
)
@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/consults?updated_since={}", "updated_since"),
        ("/api/departments/radiology/shifts?from={}", "from"),
        ("/api/reports/turnaround?to={}", "to"),
    ],
)
def test_an_instant_out_of_range_is_invalid_input(hospital, instant, path, field):
    url = path.format(instant.replace("+", "%2B"))

    response = hospital.okafor.get(url)

    assert response.status_code == 422
    assert set(response.json["errors"]) == {field}


def test_the_edges_of_the_range_are_taken(hospital):
    response = hospital.okafor.get(
        "/api/reports/turnaround?from=1900-01-01T00:00:00Z&to=9998-12-31T23:59:59Z"
    )

    assert response.status_code == 200
    assert response.json["from"] == "1900-01-01T00:00:00+00:00"


def test_a_body_over_the_size_limit_is_a_413_in_the_one_error_shape(hospital, app):
    big = {**NEW_CONSULT, "question": "x" * (1024 * 1024)}

    response = hospital.patel.post("/api/consults", json=big)

    assert response.status_code == 413
    assert response.json["code"] == 413
    assert hospital.patel.get("/api/consults").json == []
    app.config["MAX_CONTENT_LENGTH"] = 2000
    assert hospital.patel.post("/api/consults", json=NEW_CONSULT).status_code == 201
    small_big = {**NEW_CONSULT, "question": "x" * 2000}
    assert hospital.patel.post("/api/consults", json=small_big).status_code == 413


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
@pytest.mark.parametrize("path", ["/api/tokens", "/api/consults", "/sign-in"])
def test_json_nested_too_deep_is_invalid_input_and_logs_nothing(
    hospital, client, caplog, depth, path
):
    body = '{"email": ' + "[" * depth + "]" * depth + ', "password": "x"}'
    headers = {**hospital.patel.headers, "Content-Type": "application/json"}
    if path == "/sign-in":
        page = client.get("/sign-in").text
        headers["X-CSRFToken"] = re.search(r'csrf_token"[^>]* value="([^"]+)"', page)[1]

    response = client.post(path, data=body, headers=headers)

    assert response.status_code == 422
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_json_nested_as_deep_as_allowed_is_read(hospital, client):
    email = "[" * 31 + "]" * 31
    body = '{"email": ' + email + ', "password": "x"}'

    response = post_raw_json(hospital.patel, "/api/tokens", body)

    assert response.status_code == 422
    assert set(response.json["errors"]) == {"email"}
