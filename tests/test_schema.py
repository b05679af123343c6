"""Schemathesis: every operation of /api/openapi.json, fed generated requests.

Checks on every response: no 5xx (not_a_server_error), the body matches the
documented schema for its status (response_schema_conformance), the status and
content type are documented, and, stricter than the document's catch-all
`default` error response, that the status is listed for the operation itself
(`Answers`): a client reading the document must be able to see every answer an
operation gives.

Requests carry the bearer token of a signed-in user chosen for the operation,
and most of the time the path names a consult (department, shift, notification)
freshly put in the state where the operation can succeed, so that the success
responses are exercised too (each operation must succeed at least once), not only
refusals; now and then the consult is in another state (409), and now and then a
value is pushed to the edge of its range: a page number beyond any offset a
database takes, an instant that leaves the range of a datetime when turned to UTC,
text that no database can store.

Deterministic (derandomized, a fixed number of examples per operation): the
same requests on every run, on SQLite and on PostgreSQL.
"""

from datetime import date, timedelta

import pytest
import schemathesis
from conftest import PASSWORD
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from broker import accounts, create_app
from broker.extensions import db
from broker.models import User

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


class Answers:
    """A check: the status is listed for the operation, not only as `default`.

    It records rather than fails, so that one operation's run collects every
    unlisted status (each with a request that gets it) instead of stopping at
    the first; the test fails at the end with all of them. It also notes
    whether the operation ever succeeded.
    """

    def __init__(self):
        self.unlisted: dict[int, str] = {}
        self.succeeded = False

    def check(self):
        def status_code_is_listed(ctx, response, case):
            listed = set(case.operation.definition.raw.get("responses", {}))
            status = response.status_code
            self.succeeded |= 200 <= status < 300
            if str(status) not in listed and status not in self.unlisted:
                self.unlisted[status] = case.as_curl_command(
                    headers=dict(response.request.headers)
                )
            return True

        return status_code_is_listed

    def report(self, label: str) -> str:
        return "\n".join(
            f"{label} answers {status}, which its responses do not list:\n  {curl}"
            for status, curl in sorted(self.unlisted.items())
        )


# Values at the edge of their range, which random generation seldom reaches:
# a page far beyond any offset a database takes, instants that leave the range
# of a datetime when turned to UTC; and in any text field, NUL (PostgreSQL text
# cannot hold it) and a lone surrogate (not Unicode: no driver can encode it).
EDGE_INSTANTS = ["0001-01-01T00:00:00+00:04", "9999-12-31T23:59:00-01:00"]
EDGES = {
    "page": [2**63, 10**19],
    "from": EDGE_INSTANTS,
    "to": EDGE_INSTANTS,
    "updated_since": EDGE_INSTANTS,
    "starts_at": EDGE_INSTANTS,
    "ends_at": EDGE_INSTANTS,
}
EDGE_TEXT = ["Abscess?\x00", "Abscess?\ud800"]
EDGE_SLUG = "radio\x00logy"

NEW_CONSULT = {
    "department": "radiology",
    "urgency": "urgent",
    "patient_ref": "MRN-SCHEMA-1",
    "question": "Is there a fracture?",
}

CALLERS = ["okafor", "castillo", "nguyen", "lee", "patel", "admin", "outsider"]

# The states a scene can put a consult in, and the actions (by whom) that lead there.
STEPS = {
    "pending": [],
    "claimed": [("castillo", "claim", {})],
    "offered": [
        ("castillo", "claim", {}),
        ("castillo", "handoff", {"to_user_id": "nguyen", "note": "n"}),
    ],
    "answered": [
        ("castillo", "claim", {}),
        ("castillo", "answer", {"body": "No fracture."}),
    ],
    "closed": [
        ("castillo", "claim", {}),
        ("castillo", "answer", {"body": "No fracture."}),
        ("patel", "close", {}),
    ],
}


def mostly(usual, *others):
    """A strategy: `usual` about four times in five, else one of `others`."""
    return st.sampled_from([usual] * 4 * len(others) + list(others))


class Scenes:
    """Consults (and shifts, notifications) in the state an operation needs."""

    # operation label -> (caller name, the state its path's objects should be in)
    PLAN = {
        "POST /api/consults/{consult_id}/claim": ("castillo", "pending"),
        "POST /api/consults/{consult_id}/release": ("castillo", "claimed"),
        "POST /api/consults/{consult_id}/assign": ("okafor", "pending"),
        "POST /api/consults/{consult_id}/handoff": ("castillo", "claimed"),
        "POST /api/consults/{consult_id}/handoff/accept": ("nguyen", "offered"),
        "POST /api/consults/{consult_id}/handoff/decline": ("nguyen", "offered"),
        "POST /api/consults/{consult_id}/answer": ("castillo", "claimed"),
        "POST /api/consults/{consult_id}/messages": ("patel", "answered"),
        "POST /api/consults/{consult_id}/redirect": ("castillo", "pending"),
        "POST /api/consults/{consult_id}/close": ("patel", "answered"),
        "POST /api/consults/{consult_id}/cancel": ("patel", "claimed"),
        "GET /api/consults/{consult_id}": ("patel", "answered"),
        "GET /api/consults/{consult_id}/access-log": ("okafor", "claimed"),
        "DELETE /api/departments/{slug}/shifts/{shift_id}": ("okafor", None),
        "POST /api/notifications/{notification_id}/read": ("patel", None),
        "PUT /api/departments/{slug}/policy": ("okafor", None),
        "POST /api/departments/{slug}/shifts": ("okafor", None),
        "GET /api/reports/turnaround": ("okafor", None),
        "GET /api/reports/escalations": ("okafor", None),
        "GET /api/reports/open": ("okafor", None),
        "GET /api/users": ("admin", None),
        "POST /api/users": ("admin", None),
        "PATCH /api/users/{user_id}": ("admin", None),
        "POST /api/users/{user_id}/password-reset": ("admin", None),
        "POST /api/departments": ("admin", None),
        "PATCH /api/departments/{slug}": ("admin", None),
        "PUT /api/departments/{slug}/members/{user_id}": ("okafor", None),
        "DELETE /api/departments/{slug}/members/{user_id}": ("okafor", None),
        "GET /api/admin-log": ("admin", None),
        "PUT /api/me/password": ("castillo", None),
        "GET /api/audit": ("okafor", None),
        "DELETE /api/users/{user_id}/sessions": ("admin", None),
    }

    def __init__(self, app, hospital):
        self.app = app
        self.h = hospital
        self.shifts = 0
        self.made = 0  # users and departments made by generated requests

    def caller(self, name: str):
        return getattr(self.h, name)

    def token(self, name: str) -> str:
        """A fresh token: an operation may have revoked the caller's last one."""
        with self.app.app_context():
            user = db.session.get(User, self.caller(name).user_id)
            return accounts.issue_token(user)

    def consult(self, state: str) -> int:
        consult_id = self.h.patel.post("/api/consults", json=NEW_CONSULT).json["id"]
        for name, action, body in STEPS[state]:
            if "to_user_id" in body:
                body = {**body, "to_user_id": self.caller(body["to_user_id"]).user_id}
            response = self.caller(name).post(
                f"/api/consults/{consult_id}/{action}", json=body
            )
            assert response.status_code == 200, response.json
        return consult_id

    def shift(self) -> int:
        """A primary shift on a day of its own: primaries may not overlap."""
        self.shifts += 1
        day = date(2030, 1, 1) + timedelta(days=self.shifts)
        response = self.h.okafor.post(
            "/api/departments/radiology/shifts",
            json={
                "user_id": self.h.castillo.user_id,
                "role": "primary",
                "starts_at": f"{day}T08:00:00+00:00",
                "ends_at": f"{day}T20:00:00+00:00",
            },
        )
        assert response.status_code == 201, response.json
        return response.json["id"]

    def notification(self) -> int:
        self.consult("answered")  # tells patel
        return self.h.patel.get("/api/notifications").json[0]["id"]

    def prepare(self, case, data) -> str:
        """Point the case at real objects (mostly); return the token to send."""
        name, state = self.PLAN.get(case.operation.label, ("castillo", None))
        others = [other for other in CALLERS if other != name]
        name = data.draw(mostly(name, *others), label="caller")
        if data.draw(mostly(True, False), label="real objects"):
            self.point_at_objects(case, data, state)
        self.aim_body(case, data)
        self.push_to_edges(case, data)
        return self.token(name)

    def point_at_objects(self, case, data, state: str | None) -> None:
        """Path parameters naming a real department, consult, shift or notification."""
        params = case.path_parameters or {}
        if "slug" in params:
            slugs = mostly("radiology", "cardiology", EDGE_SLUG)
            params["slug"] = data.draw(slugs, label="slug")
        if "consult_id" in params:
            states = mostly(state, *(s for s in STEPS if s != state))
            params["consult_id"] = self.consult(data.draw(states, label="state"))
        if "shift_id" in params:
            params["slug"], params["shift_id"] = "radiology", self.shift()
        if "notification_id" in params:
            params["notification_id"] = self.notification()
        if "credential_id" in params:  # one of castillo's tokens (the usual caller)
            held = self.h.castillo.client.get(
                "/api/sessions",
                headers={"Authorization": f"Bearer {self.token('castillo')}"},
            )
            params["credential_id"] = held.json[0]["id"]
        if "user_id" in params:
            h = self.h
            people = mostly(h.nguyen.user_id, h.castillo.user_id, h.patel.user_id)
            params["user_id"] = data.draw(people, label="user")

    def aim_body(self, case, data) -> None:
        """Ids, slugs, credentials and shift times in a generated body, made real most of the time."""
        body = case.body
        if not isinstance(body, dict) or not data.draw(mostly(True, False)):
            return
        h = self.h
        if "user_id" in body:
            body["user_id"] = data.draw(
                st.sampled_from([h.castillo.user_id, h.nguyen.user_id])
            )
        if "to_user_id" in body:
            body["to_user_id"] = h.nguyen.user_id
        if "department" in body:
            pick = st.sampled_from(["radiology", "cardiology"])
            body["department"] = data.draw(pick, label="department")
        if "email" in body and "name" in body:  # a new user
            self.made += 1
            body["email"] = f"new{self.made}@h.test"
            if "password" in body:
                body["password"] = "a long pass phrase"
        elif "email" in body:
            body["email"], body["password"] = h.castillo.email, PASSWORD
        if "current_password" in body:
            body["current_password"] = PASSWORD
            body["new_password"] = "another long pass phrase"
        if "slug" in body:
            self.made += 1
            body["slug"] = f"department-{self.made}"
        if "starts_at" in body:
            # Two days only: a second primary shift on the same day overlaps (409).
            day = data.draw(st.sampled_from(["2031-01-01", "2031-01-02"]), label="day")
            body["starts_at"], body["ends_at"] = f"{day}T08:00Z", f"{day}T20:00Z"

    def push_to_edges(self, case, data) -> None:
        """Now and then, one query parameter or body field at the edge of its range."""
        query = {
            p["name"]
            for p in case.operation.definition.raw.get("parameters", [])
            if p.get("in") == "query"
        }
        body = case.body if isinstance(case.body, dict) else {}
        edges = {name: EDGES[name] for name in query | set(body) if name in EDGES}
        text = {k for k, v in body.items() if isinstance(v, str) and k not in edges}
        edges |= dict.fromkeys(text, EDGE_TEXT)
        if not edges or not data.draw(mostly(False, True)):
            return
        name = data.draw(st.sampled_from(sorted(edges)), label="edge")
        value = data.draw(st.sampled_from(edges[name]), label="value")
        if name in body:
            body[name] = value
        else:
            case.query = {**(case.query or {}), name: value}


def operation_labels() -> list[str]:
    """Every operation of the document ("POST /api/consults"), read at collection."""
    app = create_app(
        {"TESTING": True, "DATABASE_URL": "sqlite://", "SWEEP_INTERVAL_SECONDS": 0}
    )
    paths = app.test_client().get("/api/openapi.json").json["paths"]
    methods = {"get", "put", "post", "delete", "patch"}
    return [
        f"{method.upper()} {path}"
        for path, operations in paths.items()
        for method in operations
        if method in methods
    ]


@pytest.mark.parametrize("label", operation_labels())
def test_every_operation_answers_as_documented(app, hospital, label):
    """Generated requests, valid and invalid, against one operation.

    (Not `schemathesis.pytest.from_fixture`: with pytest 9.2 it fails with
    "'Function' object has no attribute '_nodeid'"; this is the same test.)
    """
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operation = schema.find_operation_by_label(label)
    scenes = Scenes(app, hospital)
    answers = Answers()
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=cases, data=st.data())
    @SETTINGS
    def run(case, data):
        token = scenes.prepare(case, data)
        case.call_and_validate(
            headers={"Authorization": f"Bearer {token}"},
            checks=[*CHECKS, answers.check()],
        )

    run()
    assert not answers.unlisted, answers.report(label)
    assert answers.succeeded, f"{label} never succeeded: the scenes miss its state"
