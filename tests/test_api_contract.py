"""The API's published contract: the OpenAPI document and the shapes SPEC.md fixes."""

import json
from datetime import datetime

import pytest
from conftest import NEW_CONSULT
from marshmallow import Schema

from broker import accounts
from broker.api.consults import with_timeline
from broker.api.dumping import compiled
from broker.api.schemas import (
    ConsultDetailSchema,
    ConsultSchema,
    DepartmentSchema,
    OnCallSchema,
)
from broker.consults.queries import (
    ConsultFilter,
    consult_views,
    visible_consult_views,
    visible_consults,
)
from broker.extensions import db

CONSULT_KEYS = {
    "id", "department", "urgency", "status", "requester", "owner", "handoff",
    "patient_ref", "question", "study_ref", "created_at", "routed_at", "claimed_at",
    "answered_at", "closed_at", "claim_due_at", "answer_due_at", "escalation_level",
    "overdue", "rating",
}  # fmt: skip
EVENT_KEYS = {"kind", "actor", "at", "body"}
USER_KEYS = {"id", "name", "email"}

SPEC_OPERATIONS = [
    ("post", "/api/tokens"),
    ("get", "/api/me"),
    ("get", "/api/departments"),
    ("get", "/api/consults"),
    ("post", "/api/consults"),
    ("get", "/api/consults/{consult_id}"),
    *(
        ("post", f"/api/consults/{{consult_id}}/{action}")
        for action in [
            "claim", "release", "assign", "handoff", "handoff/accept",
            "handoff/decline", "answer", "messages", "redirect", "close", "cancel",
        ]
    ),
]  # fmt: skip


@pytest.fixture
def openapi(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    return response.json


@pytest.mark.parametrize(("method", "path"), SPEC_OPERATIONS)
def test_openapi_documents_every_operation_of_the_spec(openapi, method, path):
    assert method in openapi["paths"][path]


def test_openapi_documents_the_refusals_of_consult_actions(openapi):
    responses = openapi["paths"]["/api/consults/{consult_id}/answer"]["post"][
        "responses"
    ]
    assert {"200", "403", "404", "409", "422"} <= set(responses)


def test_openapi_consult_schema_has_the_spec_fields(openapi):
    schemas = openapi["components"]["schemas"]
    consult = next(
        s
        for name, s in schemas.items()
        if name.startswith("Consult") and "timeline" not in s["properties"]
    )
    assert set(consult["properties"]) >= CONSULT_KEYS


def test_a_token_is_issued_for_the_right_password_only(client, hospital):
    good = client.post(
        "/api/tokens",
        json={"email": "patel@h.test", "password": "correct horse battery"},
    )
    assert good.status_code == 201
    assert set(good.json) == {"token"}
    bad = client.post(
        "/api/tokens", json={"email": "patel@h.test", "password": "wrong"}
    )
    assert bad.status_code == 401
    assert "token" not in bad.json


def test_the_consult_and_its_timeline_have_the_spec_shape(hospital, new_consult):
    consult_id = new_consult()["id"]
    hospital.castillo.post(f"/api/consults/{consult_id}/claim")

    consult = hospital.patel.get(f"/api/consults/{consult_id}").json

    assert CONSULT_KEYS | {"timeline"} <= set(consult)
    assert set(consult["requester"]) == USER_KEYS
    assert set(consult["owner"]) == USER_KEYS
    assert consult["department"] == "radiology"
    for key in (
        "created_at",
        "routed_at",
        "claimed_at",
        "claim_due_at",
        "answer_due_at",
    ):
        assert datetime.fromisoformat(consult[key]).utcoffset() is not None, key
    assert [e["kind"] for e in consult["timeline"]] == ["created", "claimed"]
    for event in consult["timeline"]:
        assert set(event) >= EVENT_KEYS
        assert set(event["actor"]) == USER_KEYS


def test_every_action_answers_the_consult_as_it_now_stands(hospital, new_consult):
    consult_id = new_consult()["id"]

    claimed = hospital.castillo.post(f"/api/consults/{consult_id}/claim").json

    assert claimed["status"] == "claimed"
    assert claimed["owner"]["id"] == hospital.castillo.user_id
    assert claimed == hospital.castillo.get(f"/api/consults/{consult_id}").json


def test_lists_are_paginated_with_the_next_page_in_a_header(hospital, new_consult):
    for _ in range(3):
        new_consult()

    first = hospital.patel.get("/api/consults?page=1&page_size=2")
    last = hospital.patel.get("/api/consults?page=2&page_size=2")

    assert len(first.json) == 2
    assert json.loads(first.headers["X-Pagination"]) == {
        "page": 1,
        "page_size": 2,
        "first_page": 1,
        "next_page": 2,
    }
    assert len(last.json) == 1
    assert json.loads(last.headers["X-Pagination"]) == {
        "page": 2,
        "page_size": 2,
        "first_page": 1,
        "previous_page": 1,
    }


def test_a_nul_character_is_refused_as_invalid_input_naming_the_field(
    hospital, new_consult
):
    response = hospital.patel.post(
        "/api/consults", json={**NEW_CONSULT, "question": "Is it\x00 an abscess?"}
    )

    assert response.status_code == 422
    assert set(response.json["errors"]) == {"question"}
    assert hospital.patel.get("/api/consults").json == []


def test_a_body_that_is_not_json_is_invalid_input(hospital):
    response = hospital.patel.client.post(
        "/api/consults",
        data="{not json",
        headers={**hospital.patel.headers, "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json["errors"] == {"json": ["Invalid JSON body."]}


def test_answers_are_dumped_exactly_as_marshmallow_dumps_them(
    app, hospital, new_consult
):
    """The compiled dump (broker/api/dumping.py) against marshmallow's own, on a consult
    with an owner, a handoff on offer, a rating-less timeline, and on the caller; and
    the list's consult views against the consults themselves."""
    path = f"/api/consults/{new_consult()['id']}"
    assert hospital.castillo.post(f"{path}/claim").status_code == 200
    offer = {"to_user_id": hospital.nguyen.user_id, "note": "Yours?"}
    assert hospital.castillo.post(f"{path}/handoff", json=offer).status_code == 200
    pending = new_consult()

    with app.app_context():
        user = accounts.user_for_token(hospital.okafor.token)
        listed = list(db.session.scalars(visible_consults(user, ConsultFilter())))
        consult = with_timeline(listed[-1])
        cases = [
            (ConsultDetailSchema(), consult),
            (ConsultSchema(many=True), listed),
            (DepartmentSchema(many=True), [consult.department]),
            (
                OnCallSchema(),
                {"department": "radiology", "primary": user, "backups": []},
            ),
        ]
        for schema, obj in cases:
            assert (
                getattr(compiled(schema), "__self__", None) is None
            )  # not marshmallow's
            assert compiled(schema)(obj) == Schema.dump(schema, obj)
        # The list reads views, not ORM objects: the same answer.
        views = consult_views(visible_consult_views(user, ConsultFilter()))
        listing = ConsultSchema(many=True)
        assert compiled(listing)(views) == Schema.dump(listing, listed)
    assert consult.handoff is not None and listed[0].id == pending["id"]
