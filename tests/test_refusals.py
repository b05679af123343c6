"""Every refusal of the API has the status code SPEC.md names and changes nothing.

401 not signed in, 403 signed in but not allowed, 404 unknown or not visible,
409 the consult's state does not allow the action, 422 invalid input naming each
bad field. Each refusal is checked through the API only: the consult (with its
timeline and version) as an admin sees it is identical before and after, and the
error body never repeats the patient's data.
"""

from datetime import UTC, datetime, timedelta
from http import HTTPStatus

import pytest
from conftest import NEW_CONSULT, PASSWORD
from helpers import Calls

UNKNOWN_ID = 987_654

# How a consult is brought to each state, by whom: (actor, action, body).
CLAIM = ("castillo", "claim", None)
STEPS = {
    "pending": [],
    "claimed": [CLAIM],
    "offered": [
        CLAIM,
        ("castillo", "handoff", {"to_user_id": "@nguyen", "note": "Off at 7pm."}),
    ],
    "answered": [CLAIM, ("castillo", "answer", {"body": "No drainable collection."})],
    "closed": [
        CLAIM,
        ("castillo", "answer", {"body": "No drainable collection."}),
        ("patel", "close", {"rating": 5}),
    ],
    "cancelled": [("patel", "cancel", {"reason": "Patient was discharged."})],
}

# For every action: a state in which it is allowed, and a well-formed body.
ALLOWED = {
    "claim": ("pending", None),
    "release": ("claimed", {"reason": "Out of my field."}),
    "assign": ("claimed", {"user_id": "@nguyen"}),
    "handoff": ("claimed", {"to_user_id": "@nguyen", "note": "Please take over."}),
    "handoff/accept": ("offered", None),
    "handoff/decline": ("offered", {"reason": "Fully booked."}),
    "answer": ("claimed", {"body": "No drainable collection."}),
    "messages": ("claimed", {"body": "Any update?"}),
    "redirect": ("claimed", {"department": "cardiology", "reason": "Cardiac."}),
    "close": ("answered", {"rating": 4}),
    "cancel": ("claimed", {"reason": "No longer needed."}),
}


def resolve(body, hospital):
    """Replace "@name" placeholders with that person's user id."""
    if body is None:
        return None
    return {
        key: getattr(hospital, value[1:]).user_id
        if isinstance(value, str) and value.startswith("@")
        else value
        for key, value in body.items()
    }


class Unsigned(Calls):
    """A client whose Authorization header (if any) does not sign anyone in."""

    def __init__(self, client, authorization=None):
        self.client = client
        self.headers = {"Authorization": authorization} if authorization else {}


UNSIGNED = {
    "no-token": None,
    "wrong-token": "Bearer not-a-token",
    "empty-bearer": "Bearer ",
    "patels-token-as-basic": "Basic {patel}",
}


def unsigned(client, hospital, how):
    authorization = UNSIGNED[how]
    if authorization:
        authorization = authorization.format(patel=hospital.patel.token)
    return Unsigned(client, authorization)


@pytest.fixture
def consult_in(hospital, new_consult):
    """consult_in(state) -> the id of a fresh consult by patel in radiology, in that state."""

    def make(state: str) -> int:
        consult_id = new_consult()["id"]
        for actor, action, body in STEPS[state]:
            response = getattr(hospital, actor).post(
                f"/api/consults/{consult_id}/{action}", json=resolve(body, hospital)
            )
            assert response.status_code == 200, response.json
        return consult_id

    return make


@pytest.fixture
def assert_refused(hospital):
    """Make the call, check its refusal, and check that nothing changed.

    With a consult_id, the snapshot is that consult with its timeline and version;
    without, the viewer's list of consults, or whatever `watch` names. The viewer
    defaults to the admin, who sees every consult.
    """

    def check(
        caller,
        path,
        json=None,
        status=None,
        consult_id=None,
        viewer=None,
        fields=(),
        method="post",
        watch=None,
    ):
        viewer = viewer or hospital.admin
        watched = watch or (
            f"/api/consults/{consult_id}" if consult_id else "/api/consults"
        )
        before = viewer.get(watched)
        assert before.status_code == 200, before.json

        send = getattr(caller, method)
        response = send(path) if method in ("get", "delete") else send(path, json=json)

        assert response.status_code == status, response.get_data(as_text=True)
        error = response.json
        assert error["code"] == status
        assert error["status"] == HTTPStatus(status).phrase
        assert isinstance(error["message"], str) and error["message"].strip()
        if status == 422:
            assert set(error.get("errors", {})) == set(fields), error

        raw = response.get_data(as_text=True)
        consults = before.json if isinstance(before.json, list) else [before.json]
        private = [c.get(key) for c in consults for key in ("patient_ref", "question")]
        private += [
            (json or {}).get(key) for key in ("patient_ref", "question", "password")
        ]
        for text in private:
            if isinstance(text, str) and len(text.strip()) >= 6:
                assert text not in raw, f"the error repeats {text!r}"

        after = viewer.get(watched)
        assert after.json == before.json
        return response

    return check


def refused_in(consult_id, hospital, assert_refused, actor, action, body, status):
    """`actor`'s `action` on the consult is refused with `status`, changing nothing."""
    assert_refused(
        getattr(hospital, actor),
        f"/api/consults/{consult_id}/{action}",
        resolve(body, hospital),
        status,
        consult_id,
    )


# The snapshot is not vacuous: an accepted action shows in it.


def test_an_accepted_action_moves_the_consults_version_and_timeline_on(
    hospital, consult_in
):
    consult_id = consult_in("pending")
    before = hospital.admin.get(f"/api/consults/{consult_id}").json
    hospital.castillo.post(f"/api/consults/{consult_id}/claim")
    after = hospital.admin.get(f"/api/consults/{consult_id}").json
    assert after["version"] > before["version"]
    assert [e["kind"] for e in after["timeline"]] == ["created", "claimed"]


# 401: not signed in.

CONSULT_ENDPOINTS = [
    pytest.param("get", "", None, "pending", id="GET consult"),
    *(
        pytest.param("post", f"/{action}", body, state, id=f"POST {action}")
        for action, (state, body) in ALLOWED.items()
    ),
]


@pytest.mark.parametrize(("method", "suffix", "body", "state"), CONSULT_ENDPOINTS)
def test_consult_endpoints_refuse_a_caller_who_is_not_signed_in(
    hospital, consult_in, assert_refused, client, method, suffix, body, state
):
    consult_id = consult_in(state)
    for how in UNSIGNED:
        assert_refused(
            unsigned(client, hospital, how),
            f"/api/consults/{consult_id}{suffix}",
            resolve(body, hospital),
            401,
            consult_id,
            method=method,
        )


POLICY = {"stat": {"claim_minutes": 5, "answer_minutes": 30, "followup_minutes": 30}}
SHIFTS = "/api/departments/radiology/shifts"


OTHER_ENDPOINTS = [
    ("get", "/api/me", None, "admin", "/api/consults"),
    ("get", "/api/departments", None, "admin", "/api/departments"),
    ("get", "/api/departments/radiology/members", None, "admin", "/api/consults"),
    (
        "put",
        "/api/departments/radiology/policy",
        POLICY,
        "admin",
        "/api/departments",
    ),
    ("get", "/api/departments/radiology/oncall", None, "okafor", SHIFTS),
    ("get", SHIFTS, None, "okafor", SHIFTS),
    ("post", SHIFTS, "@shift", "okafor", SHIFTS),
    ("delete", SHIFTS + "/{shift_id}", None, "okafor", SHIFTS),
    ("get", "/api/consults", None, "admin", "/api/consults"),
    ("get", "/api/consults?status=pending", None, "admin", "/api/consults"),
    ("post", "/api/consults", NEW_CONSULT, "admin", "/api/consults"),
    ("get", "/api/notifications", None, "castillo", "/api/notifications"),
    (
        "post",
        "/api/notifications/{notification_id}/read",
        None,
        "castillo",
        "/api/notifications",
    ),
    ("post", "/api/notifications/read-all", None, "castillo", "/api/notifications"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "watcher", "watch"),
    [pytest.param(*row, id=f"{row[0].upper()} {row[1]}") for row in OTHER_ENDPOINTS],
)
def test_other_endpoints_refuse_a_caller_who_is_not_signed_in(
    hospital, new_consult, assert_refused, client, method, path, body, watcher, watch
):
    now = datetime.now(UTC)
    shift = {
        "user_id": hospital.castillo.user_id,
        "role": "primary",
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(hours=8)).isoformat(),
    }
    added = hospital.okafor.post(SHIFTS, json=shift)
    assert added.status_code == 201, added.json
    new_consult()  # alerts castillo, the primary on call
    inbox = hospital.castillo.get("/api/notifications").json
    assert inbox, "the primary on call has a notification to mark read"
    path = path.format(shift_id=added.json["id"], notification_id=inbox[0]["id"])
    if body == "@shift":
        body = {**shift, "role": "backup"}
    for how in UNSIGNED:
        assert_refused(
            unsigned(client, hospital, how),
            path,
            body,
            401,
            method=method,
            viewer=getattr(hospital, watcher),
            watch=watch,
        )


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"email": "patel@h.test", "password": "wrong password"}, id="pw"),
        pytest.param({"email": "PATEL@h.test", "password": "Correct Horse"}, id="case"),
        pytest.param({"email": "nobody@h.test", "password": PASSWORD}, id="unknown"),
        pytest.param({"email": "patel@h.test", "password": ""}, id="empty-pw"),
    ],
)
def test_signing_in_with_wrong_credentials_is_401(
    hospital, assert_refused, client, credentials
):
    response = assert_refused(Unsigned(client), "/api/tokens", credentials, 401)
    assert "token" not in response.json


def test_a_wrong_password_and_an_unknown_email_get_the_same_answer(hospital, client):
    wrong_password = client.post(
        "/api/tokens", json={"email": "patel@h.test", "password": "wrong password"}
    )
    unknown_email = client.post(
        "/api/tokens", json={"email": "nobody@h.test", "password": "wrong password"}
    )
    assert wrong_password.status_code == unknown_email.status_code == 401
    assert wrong_password.json == unknown_email.json


@pytest.mark.parametrize(
    ("credentials", "fields"),
    [
        pytest.param({}, {"email", "password"}, id="nothing"),
        pytest.param({"email": "patel@h.test"}, {"password"}, id="no-password"),
        pytest.param({"password": PASSWORD}, {"email"}, id="no-email"),
    ],
)
def test_signing_in_without_email_or_password_is_422_naming_them(
    hospital, assert_refused, client, credentials, fields
):
    assert_refused(
        Unsigned(client), "/api/tokens", credentials, 422, fields=tuple(fields)
    )


# 404: unknown, or not visible to the caller; never 403 for what one may not see.


@pytest.mark.parametrize(("method", "suffix", "body", "state"), CONSULT_ENDPOINTS)
def test_an_unknown_consult_and_one_the_caller_may_not_see_are_both_404(
    hospital, consult_in, assert_refused, method, suffix, body, state
):
    consult_id = consult_in(state)
    body = resolve(body, hospital)
    unknown = assert_refused(
        hospital.okafor,
        f"/api/consults/{UNKNOWN_ID}{suffix}",
        body,
        404,
        consult_id,
        method=method,
    )
    for who in ("outsider", "lee"):
        hidden = assert_refused(
            getattr(hospital, who),
            f"/api/consults/{consult_id}{suffix}",
            body,
            404,
            consult_id,
            method=method,
        )
        assert hidden.json == unknown.json, "a hidden consult must look unknown"


@pytest.mark.parametrize("too_big", [2**31, 2**63])
@pytest.mark.parametrize(
    ("method", "suffix", "body", "state"),
    [CONSULT_ENDPOINTS[0], CONSULT_ENDPOINTS[1]],  # GET consult, POST claim
)
def test_a_consult_id_too_big_for_the_database_is_an_unknown_consult(
    hospital, consult_in, assert_refused, method, suffix, body, state, too_big
):
    consult_id = consult_in(state)
    assert_refused(
        hospital.okafor,
        f"/api/consults/{too_big}{suffix}",
        body,
        404,
        consult_id,
        method=method,
    )


def test_a_consult_the_caller_may_not_see_is_not_in_their_list(hospital, consult_in):
    consult_in("pending")
    assert hospital.lee.get("/api/consults").json == []
    assert hospital.outsider.get("/api/consults").json == []


# 403: may see the consult, may not do this to it.

FORBIDDEN = [
    # claim: department members only
    ("pending", "patel", "claim", None),
    ("pending", "admin", "claim", None),
    # release, answer, handoff: the owner only (castillo owns)
    ("claimed", "nguyen", "release", {"reason": "Not mine."}),
    ("claimed", "okafor", "release", {"reason": "Not mine."}),
    ("claimed", "patel", "release", {"reason": "Not mine."}),
    ("claimed", "nguyen", "answer", {"body": "Looks fine."}),
    ("claimed", "okafor", "answer", {"body": "Looks fine."}),
    ("claimed", "patel", "answer", {"body": "Looks fine."}),
    ("claimed", "admin", "answer", {"body": "Looks fine."}),
    ("claimed", "nguyen", "handoff", {"to_user_id": "@okafor", "note": "Yours."}),
    ("claimed", "okafor", "handoff", {"to_user_id": "@nguyen", "note": "Yours."}),
    ("offered", "nguyen", "handoff", {"to_user_id": "@okafor", "note": "Yours."}),
    # assign: a chief of the department or an admin
    ("pending", "castillo", "assign", {"user_id": "@castillo"}),
    ("claimed", "nguyen", "assign", {"user_id": "@nguyen"}),
    ("pending", "patel", "assign", {"user_id": "@castillo"}),
    # accept / decline: only the offered colleague (nguyen)
    ("offered", "castillo", "handoff/accept", None),
    ("offered", "okafor", "handoff/accept", None),
    ("offered", "patel", "handoff/accept", None),
    ("offered", "admin", "handoff/accept", None),
    ("offered", "castillo", "handoff/decline", {"reason": "No."}),
    ("offered", "okafor", "handoff/decline", {"reason": "No."}),
    ("offered", "patel", "handoff/decline", {"reason": "No."}),
    # close: the requester or an admin, not the owner nor the department
    ("answered", "castillo", "close", {"rating": 5}),
    ("answered", "nguyen", "close", {}),
    ("answered", "okafor", "close", {"rating": 3}),
    # cancel: the requester or an admin only
    ("pending", "castillo", "cancel", {"reason": "Duplicate."}),
    ("claimed", "castillo", "cancel", {"reason": "Duplicate."}),
    ("claimed", "okafor", "cancel", {"reason": "Duplicate."}),
    # messages: the requester and department members, not an admin
    ("claimed", "admin", "messages", {"body": "Status?"}),
    ("answered", "admin", "messages", {"body": "Status?"}),
    # redirect (SPEC rule 5): a pending one, department members; an owned one, only
    # its owner or the chief: a covering colleague must not end someone's ownership
    ("claimed", "patel", "redirect", {"department": "cardiology", "reason": "Heart."}),
    ("pending", "admin", "redirect", {"department": "cardiology", "reason": "Heart."}),
    ("claimed", "nguyen", "redirect", {"department": "cardiology", "reason": "Heart."}),
    ("answered", "nguyen", "redirect", {"department": "cardiology", "reason": "X"}),
    ("claimed", "admin", "redirect", {"department": "cardiology", "reason": "Heart."}),
]


@pytest.mark.parametrize(
    ("state", "actor", "action", "body"),
    [pytest.param(*case, id=f"{case[2]}-by-{case[1]}-{case[0]}") for case in FORBIDDEN],
)
def test_a_caller_who_may_see_but_not_do_it_is_403(
    hospital, consult_in, assert_refused, state, actor, action, body
):
    refused_in(consult_in(state), hospital, assert_refused, actor, action, body, 403)


# 409: the consult's state does not allow the action.

CONFLICTS = [
    # claim: only a pending consult
    ("claimed", "nguyen", "claim", None),
    ("claimed", "castillo", "claim", None),
    ("claimed", "okafor", "claim", None),
    ("answered", "nguyen", "claim", None),
    ("closed", "nguyen", "claim", None),
    ("cancelled", "nguyen", "claim", None),
    # answer: only a claimed consult
    ("pending", "castillo", "answer", {"body": "Fine."}),
    ("answered", "castillo", "answer", {"body": "Fine."}),
    ("closed", "castillo", "answer", {"body": "Fine."}),
    ("cancelled", "castillo", "answer", {"body": "Fine."}),
    # release: only a claimed consult
    ("pending", "castillo", "release", {"reason": "Busy."}),
    ("answered", "castillo", "release", {"reason": "Busy."}),
    ("closed", "castillo", "release", {"reason": "Busy."}),
    # close: only an answered consult
    ("pending", "patel", "close", {"rating": 5}),
    ("claimed", "patel", "close", {"rating": 5}),
    ("claimed", "admin", "close", {}),
    ("closed", "patel", "close", {}),
    ("cancelled", "patel", "close", {}),
    # accept / decline: only while a handoff is on offer
    ("claimed", "nguyen", "handoff/accept", None),
    ("pending", "nguyen", "handoff/accept", None),
    ("answered", "nguyen", "handoff/accept", None),
    ("claimed", "nguyen", "handoff/decline", {"reason": "No."}),
    ("pending", "nguyen", "handoff/decline", {"reason": "No."}),
    # cancel: not once closed or cancelled
    ("closed", "patel", "cancel", {"reason": "Changed my mind."}),
    ("cancelled", "patel", "cancel", {"reason": "Changed my mind."}),
    # redirect: not once closed or cancelled
    ("closed", "castillo", "redirect", {"department": "cardiology", "reason": "X"}),
    ("cancelled", "castillo", "redirect", {"department": "cardiology", "reason": "X"}),
    # messages: not on a closed or cancelled consult, whoever writes
    ("closed", "patel", "messages", {"body": "One more thing."}),
    ("closed", "castillo", "messages", {"body": "One more thing."}),
    ("closed", "nguyen", "messages", {"body": "One more thing."}),
    ("cancelled", "patel", "messages", {"body": "One more thing."}),
    ("cancelled", "castillo", "messages", {"body": "One more thing."}),
    # assign: not to the current owner, not once closed or cancelled
    ("claimed", "okafor", "assign", {"user_id": "@castillo"}),
    ("offered", "admin", "assign", {"user_id": "@castillo"}),
    ("closed", "okafor", "assign", {"user_id": "@nguyen"}),
    ("cancelled", "okafor", "assign", {"user_id": "@nguyen"}),
    # handoff: only an owned, open consult
    ("pending", "castillo", "handoff", {"to_user_id": "@nguyen", "note": "Yours."}),
    ("closed", "castillo", "handoff", {"to_user_id": "@nguyen", "note": "Yours."}),
]


@pytest.mark.parametrize(
    ("state", "actor", "action", "body"),
    [pytest.param(*case, id=f"{case[2]}-{case[0]}-by-{case[1]}") for case in CONFLICTS],
)
def test_an_action_the_consults_state_does_not_allow_is_409(
    hospital, consult_in, assert_refused, state, actor, action, body
):
    refused_in(consult_in(state), hospital, assert_refused, actor, action, body, 409)


# 422: invalid input, naming each bad field.

REQUIRED = ("department", "urgency", "patient_ref", "question")


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        pytest.param({key: None for key in REQUIRED}, REQUIRED, id="nothing"),
        *(pytest.param({key: None}, (key,), id=f"no-{key}") for key in REQUIRED),
        pytest.param({"urgency": "asap"}, ("urgency",), id="urgency-asap"),
        pytest.param({"urgency": "STAT"}, ("urgency",), id="urgency-upper"),
        pytest.param({"urgency": ""}, ("urgency",), id="urgency-empty"),
        pytest.param({"department": "neurology"}, ("department",), id="dept-unknown"),
        pytest.param({"department": ""}, ("department",), id="dept-empty"),
        pytest.param({"patient_ref": ""}, ("patient_ref",), id="ref-empty"),
        pytest.param({"patient_ref": "   "}, ("patient_ref",), id="ref-blank"),
        pytest.param({"patient_ref": 4417}, ("patient_ref",), id="ref-number"),
        pytest.param({"patient_ref": "M" * 65}, ("patient_ref",), id="ref-65"),
        pytest.param({"question": ""}, ("question",), id="question-empty"),
        pytest.param({"question": " \n\t "}, ("question",), id="question-blank"),
        pytest.param({"study_ref": "A" * 65}, ("study_ref",), id="study-ref-65"),
        pytest.param(
            {"urgency": "soon", "patient_ref": ""},
            ("urgency", "patient_ref"),
            id="two-bad-fields",
        ),
    ],
)
def test_creating_a_consult_with_invalid_input_is_422_naming_the_field(
    hospital, new_consult, assert_refused, changes, fields
):
    new_consult()
    body = {**NEW_CONSULT, **changes}
    body = {key: value for key, value in body.items() if value is not None}
    assert_refused(hospital.patel, "/api/consults", body, 422, fields=fields)


def describe(body):
    """A short readable test id for a request body."""
    return ",".join(f"{key}={value!r}"[:24] for key, value in body.items()) or "{}"


INVALID = [
    # release / decline / cancel / redirect need a reason
    ("claimed", "castillo", "release", {}, "reason"),
    ("claimed", "castillo", "release", {"reason": ""}, "reason"),
    ("claimed", "castillo", "release", {"reason": "  \n "}, "reason"),
    ("offered", "nguyen", "handoff/decline", {}, "reason"),
    ("offered", "nguyen", "handoff/decline", {"reason": "   "}, "reason"),
    ("pending", "patel", "cancel", {}, "reason"),
    ("claimed", "patel", "cancel", {"reason": "   "}, "reason"),
    ("claimed", "castillo", "redirect", {"department": "cardiology"}, "reason"),
    (
        "claimed",
        "castillo",
        "redirect",
        {"department": "cardiology", "reason": " "},
        "reason",
    ),
    # redirect needs another, existing department
    ("claimed", "castillo", "redirect", {"reason": "Elsewhere."}, "department"),
    (
        "pending",
        "castillo",
        "redirect",
        {"department": "neurology", "reason": "Brain."},
        "department",
    ),
    (
        "claimed",
        "castillo",
        "redirect",
        {"department": "radiology", "reason": "Same."},
        "department",
    ),
    # answer and messages need a body
    ("claimed", "castillo", "answer", {}, "body"),
    ("claimed", "castillo", "answer", {"body": ""}, "body"),
    ("claimed", "castillo", "answer", {"body": "   "}, "body"),
    ("claimed", "patel", "messages", {"body": ""}, "body"),
    ("claimed", "nguyen", "messages", {"body": " "}, "body"),
    ("answered", "patel", "messages", {"body": "  "}, "body"),
    # handoff: to one colleague of the department, other than oneself, with a note
    (
        "claimed",
        "castillo",
        "handoff",
        {"to_user_id": "@lee", "note": "X."},
        "to_user_id",
    ),
    (
        "claimed",
        "castillo",
        "handoff",
        {"to_user_id": "@patel", "note": "X"},
        "to_user_id",
    ),
    (
        "claimed",
        "castillo",
        "handoff",
        {"to_user_id": UNKNOWN_ID, "note": "X"},
        "to_user_id",
    ),
    (
        "claimed",
        "castillo",
        "handoff",
        {"to_user_id": 2**31, "note": "X"},
        "to_user_id",
    ),
    (
        "claimed",
        "castillo",
        "handoff",
        {"to_user_id": "@castillo", "note": "X"},
        "to_user_id",
    ),
    ("claimed", "castillo", "handoff", {"note": "X"}, "to_user_id"),
    ("claimed", "castillo", "handoff", {"to_user_id": "@nguyen"}, "note"),
    ("claimed", "castillo", "handoff", {"to_user_id": "@nguyen", "note": " "}, "note"),
    # assign: to a member of the department
    ("pending", "okafor", "assign", {"user_id": "@lee"}, "user_id"),
    ("pending", "okafor", "assign", {"user_id": "@patel"}, "user_id"),
    ("claimed", "admin", "assign", {"user_id": "@outsider"}, "user_id"),
    ("pending", "okafor", "assign", {"user_id": UNKNOWN_ID}, "user_id"),
    ("pending", "okafor", "assign", {"user_id": 2**31}, "user_id"),
    ("pending", "okafor", "assign", {"user_id": 2**63}, "user_id"),
    ("pending", "okafor", "assign", {"user_id": "someone"}, "user_id"),
    ("pending", "okafor", "assign", {}, "user_id"),
    # close: a rating is 1 to 5
    ("answered", "patel", "close", {"rating": 0}, "rating"),
    ("answered", "patel", "close", {"rating": 6}, "rating"),
    ("answered", "patel", "close", {"rating": -1}, "rating"),
    ("answered", "patel", "close", {"rating": 4.5}, "rating"),
    ("answered", "patel", "close", {"rating": "excellent"}, "rating"),
    ("answered", "admin", "close", {"rating": 6}, "rating"),
]


@pytest.mark.parametrize(
    ("state", "actor", "action", "body", "field"),
    [
        pytest.param(*case, id=f"{case[2]}-by-{case[1]}-{case[0]}-{describe(case[3])}")
        for case in INVALID
    ],
)
def test_an_action_with_invalid_input_is_422_naming_the_field(
    hospital, consult_in, assert_refused, state, actor, action, body, field
):
    consult_id = consult_in(state)
    assert_refused(
        getattr(hospital, actor),
        f"/api/consults/{consult_id}/{action}",
        resolve(body, hospital),
        422,
        consult_id,
        fields=(field,),
    )


# Input that is not even well-formed is refused as invalid, never a server error.


def test_a_body_that_is_not_json_is_422_and_changes_nothing(
    app, hospital, consult_in, client
):
    app.config["PROPAGATE_EXCEPTIONS"] = False  # answer as a real server would
    consult_id = consult_in("pending")
    url = f"/api/consults/{consult_id}"
    before = hospital.admin.get(url).json
    response = client.post(
        f"{url}/cancel",
        data='{"reason": "unfinished',
        headers={**hospital.patel.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.json["code"] == 422
    assert hospital.admin.get(url).json == before


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/consults", {**NEW_CONSULT, "question": "Abscess?\x00"}, "question"),
        ("/api/consults", {**NEW_CONSULT, "patient_ref": "MRN\x0017"}, "patient_ref"),
        ("/cancel", {"reason": "Dis\x00charged."}, "reason"),
    ],
)
def test_a_nul_character_in_text_is_invalid_input_on_every_database(
    hospital, new_consult, assert_refused, path, body, field
):
    """PostgreSQL cannot store NUL in text: it must be a 422, never a server error."""
    consult_id = new_consult()["id"]
    if path == "/cancel":
        path = f"/api/consults/{consult_id}/cancel"
    assert_refused(hospital.patel, path, body, 422, fields=(field,))


# Error bodies never repeat protected health information.

SECRET_REF = "MRN-SECRET-90210"
SECRET_QUESTION = "Is the 4 o'clock breast lesion of Jane Roe malignant?"


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"urgency": "whenever"}, id="bad-urgency"),
        pytest.param({"department": "oncology"}, id="bad-department"),
        pytest.param({"patient_ref": SECRET_REF + "-" * 60}, id="ref-too-long"),
        pytest.param({"question": "   "}, id="blank-question"),
        pytest.param({"study_ref": SECRET_REF * 5}, id="study-ref-too-long"),
    ],
)
def test_a_refused_new_consult_does_not_repeat_the_patients_data(hospital, changes):
    body = {
        **NEW_CONSULT,
        "patient_ref": SECRET_REF,
        "question": SECRET_QUESTION,
        **changes,
    }
    response = hospital.patel.post("/api/consults", json=body)
    assert response.status_code == 422
    raw = response.get_data(as_text=True)
    assert SECRET_REF not in raw
    assert SECRET_QUESTION not in raw
    assert "Jane Roe" not in raw


@pytest.mark.parametrize(
    ("state", "actor", "action", "body", "status"),
    [
        pytest.param("claimed", "nguyen", "claim", None, 409, id="claim-claimed"),
        pytest.param("closed", "castillo", "answer", {"body": "x"}, 409, id="closed"),
        pytest.param("claimed", "nguyen", "answer", {"body": "x"}, 403, id="non-owner"),
        pytest.param("claimed", "lee", "answer", {"body": "x"}, 404, id="hidden"),
        pytest.param("claimed", "castillo", "answer", {"body": " "}, 422, id="blank"),
    ],
)
def test_a_refused_action_does_not_repeat_the_patients_data(
    hospital, new_consult, state, actor, action, body, status
):
    consult_id = new_consult(patient_ref=SECRET_REF, question=SECRET_QUESTION)["id"]
    for step_actor, step_action, step_body in STEPS[state]:
        step = getattr(hospital, step_actor).post(
            f"/api/consults/{consult_id}/{step_action}",
            json=resolve(step_body, hospital),
        )
        assert step.status_code == 200
    response = getattr(hospital, actor).post(
        f"/api/consults/{consult_id}/{action}", json=body
    )
    assert response.status_code == status
    raw = response.get_data(as_text=True)
    assert SECRET_REF not in raw
    assert SECRET_QUESTION not in raw
