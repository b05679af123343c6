"""Input at the edge of what the API can hold: refused (404, 422) or answered, never a 500.

Schemathesis (test_schema.py) reaches each of these now and then; here each is pinned
down, on SQLite and on PostgreSQL.
"""

import json

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
    assert '"total": 1' in response.headers["X-Pagination"]


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
