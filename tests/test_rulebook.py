"""One rulebook: every limit, action and permission defined once, so the API and the
pages cannot disagree.

- One table of bad inputs goes through the API and through every page form: each
  gets the same refusal (a 422 naming the field; the page shows the same words
  beside the field and keeps what was typed), never a 500.
- Hypothesis fills the page forms with arbitrary text and numbers: never a 500.
- A toy action added to the registry is offered as a button, served by the API,
  and refused by the same predicate on both.
- A sweep at an instant hours ahead does not move "now" for requests served meanwhile.
"""

import html
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from conftest import NEW_CONSULT
from helpers import csrf_token, sign_in
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker import clock, create_app
from broker.consults import access, actions, registry
from broker.consults.errors import NotAllowed
from broker.consults.escalation import sweep
from broker.consults.limits import Text
from broker.consults.registry import Action, Field

TOO_LONG_QUESTION = "Q-KEPT-" + "x" * 9_994
LONG_NOTE = "N-KEPT-" + "n" * 1_993

# (case, form, field, value, the refusal's words). `field` is the API's name;
# "stat.claim_minutes" is {"stat": {"claim_minutes": ...}}.
BAD_INPUTS = [
    ("question too long", "new", "question", TOO_LONG_QUESTION,
     "At most 10,000 characters (10,001 typed)."),
    ("question with NUL", "new", "question", "Is it\x00clear?",
     "Contains a NUL character."),
    ("question blank", "new", "question", "   ", "Question is required."),
    ("patient reference too long", "new", "patient_ref", "P" * 65,
     "At most 64 characters (65 typed)."),
    ("study reference too long", "new", "study_ref", "S" * 65,
     "At most 64 characters (65 typed)."),
    ("unknown urgency", "new", "urgency", "asap", "One of: stat, urgent, routine."),
    ("unknown department", "new", "department", "neurology", "No such department."),
    ("minutes too large", "policy", "stat.claim_minutes", 10_000_000_000,
     "A whole number from 1 to 43,200."),
    ("minutes negative", "policy", "urgent.answer_minutes", -5,
     "A whole number from 1 to 43,200."),
    ("minutes zero", "policy", "routine.followup_minutes", 0,
     "A whole number from 1 to 43,200."),
    ("answer before claim", "policy", "stat.answer_minutes", 5,
     "The time to answer cannot be shorter than to claim."),
    ("shift ends before it starts", "shift", "ends_at", "2030-01-01T07:00",
     "A shift must end after it starts."),
    ("shift spanning years", "shift", "ends_at", "2099-01-01T08:00",
     "A shift lasts at most 14 days."),
    ("handoff note too long", "handoff", "note", LONG_NOTE + "n",
     "At most 2,000 characters (2,001 typed)."),
    ("redirect reason too long", "redirect", "reason", LONG_NOTE + "r",
     "At most 2,000 characters (2,001 typed)."),
    ("release reason with NUL", "release", "reason", "Off\x00shift",
     "Contains a NUL character."),
    ("answer too long", "answer", "body", TOO_LONG_QUESTION,
     "At most 10,000 characters (10,001 typed)."),
    ("message blank", "message", "body", " ", "Message is required."),
    ("rating out of range", "close", "rating", 6, "A whole number from 1 to 5."),
    ("comment too long", "close", "comment", LONG_NOTE + "c",
     "At most 2,000 characters (2,001 typed)."),
]  # fmt: skip

VALID_MINUTES = {"claim_minutes": 10, "answer_minutes": 30, "followup_minutes": 30}
VALID_SHIFT = {"role": "primary", "starts_at": "2030-01-01T08:00"}
# Who fills each consult form, and the state the consult is in first.
ACTION_FORMS = {
    "handoff": ("castillo", "claimed", {"to_user_id": "@nguyen", "note": "Over to you."}),
    "redirect": ("castillo", "claimed", {"department": "cardiology", "reason": "Heart."}),
    "release": ("castillo", "claimed", {"reason": "Off shift."}),
    "answer": ("castillo", "claimed", {"body": "No collection."}),
    "message": ("castillo", "claimed", {"body": "Looking now."}),
    "close": ("patel", "answered", {"rating": 4, "comment": "Thanks."}),
}  # fmt: skip


def _consult_in(hospital, new_consult, state: str) -> int:
    consult_id = new_consult()["id"]
    hospital.castillo.post(f"/api/consults/{consult_id}/claim")
    if state == "answered":
        answer = {"body": "Nothing to drain."}
        hospital.castillo.post(f"/api/consults/{consult_id}/answer", json=answer)
    return consult_id


def _resolve(value, hospital):
    if isinstance(value, str) and value.startswith("@"):
        return getattr(hospital, value[1:]).user_id
    return value


def _nested(field: str, value) -> dict:
    """ "stat.claim_minutes" -> {"stat": {"claim_minutes": value}}"""
    head, _, rest = field.partition(".")
    return {head: _nested(rest, value) if rest else value}


def _api_errors(errors: dict, field: str) -> list:
    for part in field.split("."):
        errors = errors[part]
    return errors


def _via_api(hospital, new_consult, form: str, field: str, value):
    if form == "new":
        return hospital.patel.post("/api/consults", json={**NEW_CONSULT, field: value})
    if form == "policy":
        urgency = field.partition(".")[0]
        stat = {urgency: VALID_MINUTES}
        body = {**stat, **_nested(field, value)}
        body[urgency] = {**VALID_MINUTES, **body[urgency]}
        return hospital.okafor.put("/api/departments/radiology/policy", json=body)
    if form == "shift":
        shift = {**VALID_SHIFT, "user_id": hospital.castillo.user_id, field: value}
        shift = {k: v + "Z" if k.endswith("_at") else v for k, v in shift.items()}
        return hospital.okafor.post("/api/departments/radiology/shifts", json=shift)
    who, state, valid = ACTION_FORMS[form]
    consult_id = _consult_in(hospital, new_consult, state)
    body = {k: _resolve(v, hospital) for k, v in {**valid, field: value}.items()}
    path = registry.ACTIONS[form].path
    return getattr(hospital, who).post(f"/api/consults/{consult_id}/{path}", json=body)


def _via_page(hospital, new_consult, browser, form: str, field: str, value):
    """(response, the page field's id) after sending the form with `value`."""
    if form == "new":
        sign_in(browser, "patel@h.test")
        token = csrf_token(browser.get("/consults/new").text)
        data = {"csrf_token": token, **NEW_CONSULT, field: value}
        return browser.post("/consults/new", data=data), field
    if form in ("policy", "shift"):
        sign_in(browser, "okafor@h.test")
        token = csrf_token(browser.get("/departments/radiology/settings").text)
        if form == "policy":
            data = {
                f"policy-{u}_{part.removesuffix('_minutes')}": minutes
                for u in ("stat", "urgent", "routine")
                for part, minutes in VALID_MINUTES.items()
            }
            name = "policy-" + field.replace(".", "_").removesuffix("_minutes")
        else:
            data = {f"shift-{k}": v for k, v in VALID_SHIFT.items()}
            data["shift-user_id"] = hospital.castillo.user_id
            data["shift-ends_at"] = "2030-01-01T20:00"
            name = f"shift-{field}"
        data |= {f"{form}-csrf_token": token, name: value}
        path = {"policy": "policy", "shift": "shifts"}[form]
        return browser.post(f"/departments/radiology/{path}", data=data), name
    who, state, valid = ACTION_FORMS[form]
    consult_id = _consult_in(hospital, new_consult, state)
    sign_in(browser, f"{who}@h.test")
    token = csrf_token(browser.get(f"/consults/{consult_id}").text)
    data = {f"{form}-{k}": _resolve(v, hospital) for k, v in valid.items()}
    data |= {f"{form}-csrf_token": token, f"{form}-{field}": value}
    return browser.post(f"/consults/{consult_id}/{form}", data=data), f"{form}-{field}"


@pytest.mark.parametrize(
    ("form", "field", "value", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_INPUTS],
)
def test_a_bad_input_gets_the_same_refusal_from_the_api_and_the_page(
    hospital, new_consult, app, form, field, value, words
):
    api = _via_api(hospital, new_consult, form, field, value)
    page, field_id = _via_page(
        hospital, new_consult, app.test_client(), form, field, value
    )

    assert api.status_code == 422, api.json
    assert words in _api_errors(api.json["errors"], field)
    assert page.status_code == 422, page.text[:500]
    beside = re.search(rf'id="{field_id}-error">([^<]*)<', page.text)
    assert beside is not None, f"no error beside {field_id}"
    assert html.unescape(beside.group(1)) == words
    if isinstance(value, str) and "-KEPT-" in value:
        assert value in html.unescape(page.text)  # what was typed is kept, all of it


def test_a_lone_surrogate_is_refused_by_the_api_and_harmless_on_a_page(hospital, app):
    api = hospital.patel.post(
        "/api/consults", json={**NEW_CONSULT, "question": "Is it \ud800 clear?"}
    )
    browser = app.test_client()
    sign_in(browser, "patel@h.test")
    token = csrf_token(browser.get("/consults/new").text)
    # A form cannot carry a lone surrogate: its UTF-8 bytes arrive as U+FFFD.
    form = f"csrf_token={token}&department=radiology&urgency=stat&patient_ref=MRN-1"
    page = browser.post(
        "/consults/new",
        data=(form + "&question=Is+it+%ED%A0%80+clear%3F").encode(),
        content_type="application/x-www-form-urlencoded",
    )

    assert api.status_code == 422
    assert api.json["errors"]["question"] == [
        "Contains a character that is not valid Unicode."
    ]
    assert page.status_code == 302


# Hypothesis over the page forms, as Schemathesis goes over the API.

ANY_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=2_000, max_size=2_100),
    st.sampled_from(["\x00", " ", "stat", "-1", "0", "10000000000", "1e9", "２"]),
)
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def signed_in(app, hospital):
    """signed_in(email) -> a test client with that person's session."""

    def open_as(email):
        browser = app.test_client()
        sign_in(browser, email)
        return browser

    return open_as


def _posted(browser, page: str, path: str, prefix: str, data: dict):
    token = csrf_token(browser.get(page).text)
    key = f"{prefix}-csrf_token" if prefix else "csrf_token"
    return browser.post(path, data={key: token, **data})


@FUZZ
@given(
    department=ANY_TEXT,
    urgency=ANY_TEXT,
    patient_ref=ANY_TEXT,
    question=ANY_TEXT,
    study_ref=ANY_TEXT,
)
def test_the_new_consult_form_never_fails_on_any_input(signed_in, **data):
    browser = signed_in("patel@h.test")
    response = _posted(browser, "/consults/new", "/consults/new", "", data)
    assert response.status_code in (302, 409, 422)


@FUZZ
@given(
    minutes=st.lists(
        st.one_of(st.integers(min_value=-(2**70), max_value=2**70), ANY_TEXT),
        min_size=9,
        max_size=9,
    )
)
def test_the_deadline_form_never_fails_on_any_input(signed_in, minutes):
    browser = signed_in("okafor@h.test")
    names = [
        f"policy-{u}_{p}"
        for u in ("stat", "urgent", "routine")
        for p in ("claim", "answer", "followup")
    ]
    data = dict(zip(names, minutes, strict=True))
    page = "/departments/radiology/settings"
    response = _posted(browser, page, "/departments/radiology/policy", "policy", data)
    assert response.status_code in (302, 422)


@FUZZ
@given(role=ANY_TEXT, starts_at=ANY_TEXT, ends_at=ANY_TEXT, user_id=ANY_TEXT)
def test_the_shift_form_never_fails_on_any_input(signed_in, **data):
    browser = signed_in("okafor@h.test")
    data = {f"shift-{k}": v for k, v in data.items()}
    page = "/departments/radiology/settings"
    response = _posted(browser, page, "/departments/radiology/shifts", "shift", data)
    assert response.status_code in (302, 409, 422)


@FUZZ
@given(
    name=st.sampled_from(sorted(ACTION_FORMS)),
    values=st.lists(ANY_TEXT, min_size=2, max_size=2),
)
def test_every_consult_form_never_fails_on_any_input(
    signed_in, hospital, new_consult, name, values
):
    who, state, valid = ACTION_FORMS[name]
    consult_id = _consult_in(hospital, new_consult, state)
    browser = signed_in(f"{who}@h.test")
    data = {f"{name}-{k}": v for k, v in zip(valid, values, strict=False)}
    page = f"/consults/{consult_id}"
    response = _posted(browser, page, f"{page}/{name}", name, data)
    assert response.status_code in (302, 303, 403, 409, 422)


# The registry: one entry, and the action is everywhere.


def may_flag(user, consult) -> access.Verdict:
    if user.id == consult.requester_id:
        return access.ALLOWED
    return access.Verdict(NotAllowed("Only the requester may flag this consult."))


@pytest.fixture
def toy_app(app):
    """The app made again after a toy action joined the registry (one entry and its
    function), on the same database."""

    def flag(consult, user, why):
        return actions.post_message.do(consult, user, body=f"Flagged: {why}")

    registry.add(
        Action(
            name="flag",
            path="flag",
            do=flag,
            may=may_flag,
            inputs=(Field("why", Text("Why", 200)),),
            done="Flagged.",
            button="Flag it",
        )
    )
    keys = ("TESTING", "DATABASE_URL", "SECRET_KEY", "SWEEP_INTERVAL_SECONDS",
            "PASSWORD_HASH_METHOD", "SESSION_COOKIE_SECURE", "TOKEN_LIFETIME_HOURS")  # fmt: skip
    try:
        yield create_app({k: app.config[k] for k in keys})
    finally:
        registry.remove("flag")


def test_a_toy_action_is_a_button_an_api_call_and_one_rule(
    hospital, new_consult, toy_app
):
    consult_id = new_consult()["id"]
    requester, colleague, api = (toy_app.test_client() for _ in range(3))
    sign_in(requester, "patel@h.test")
    sign_in(colleague, "castillo@h.test")

    page = requester.get(f"/consults/{consult_id}").text
    assert 'id="flag-button"' in page and "Flag it" in page
    assert 'id="flag-button"' not in colleague.get(f"/consults/{consult_id}").text
    paths = api.get("/api/openapi.json").json["paths"]
    assert "/api/consults/{consult_id}/flag" in paths

    flagged = api.post(
        f"/api/consults/{consult_id}/flag",
        json={"why": "Wrong side?"},
        headers=hospital.patel.headers,
    )
    assert flagged.status_code == 200, flagged.json
    assert flagged.json["timeline"][-1]["body"] == "Flagged: Wrong side?"

    refused = api.post(
        f"/api/consults/{consult_id}/flag",
        json={"why": "No."},
        headers=hospital.castillo.headers,
    )
    assert refused.status_code == 403
    assert refused.json["message"] == "Only the requester may flag this consult."
    token = csrf_token(colleague.get(f"/consults/{consult_id}").text)
    by_page = colleague.post(
        f"/consults/{consult_id}/flag",
        data={"flag-csrf_token": token, "flag-why": "No."},
    )
    assert by_page.status_code == 303  # back to the consult's page, which says why
    shown = colleague.get(by_page.headers["Location"]).text
    assert "Only the requester may flag this consult." in shown
    too_long = api.post(
        f"/api/consults/{consult_id}/flag",
        json={"why": "w" * 201},
        headers=hospital.patel.headers,
    )
    assert too_long.json["errors"] == {"why": ["At most 200 characters (201 typed)."]}
    timeline = hospital.patel.get(f"/api/consults/{consult_id}").json["timeline"]
    assert [e["body"] for e in timeline if e["kind"] == "message"] == [
        "Flagged: Wrong side?"
    ]


# The clock: a context variable, not a process-wide switch.


def test_a_sweep_at_another_instant_does_not_move_now_for_requests_meanwhile(
    app, hospital, new_consult
):
    consult_id = new_consult()["id"]
    ahead = datetime.now(UTC) + timedelta(hours=2)
    sweeping, done = threading.Event(), threading.Event()

    def sweep_two_hours_ahead():
        with app.app_context(), clock.frozen_at(ahead):
            sweep(ahead, timedelta(hours=72))
            sweeping.set()
            done.wait(30)  # still "two hours ahead" in this thread meanwhile

    sweeper = threading.Thread(target=sweep_two_hours_ahead)
    sweeper.start()
    try:
        assert sweeping.wait(30)
        before = datetime.now(UTC)
        hospital.castillo.post(f"/api/consults/{consult_id}/claim")
        after = datetime.now(UTC)
    finally:
        done.set()
        sweeper.join(30)

    timeline = hospital.patel.get(f"/api/consults/{consult_id}").json["timeline"]
    escalated = [e for e in timeline if e["kind"] == "escalated"]
    claimed = datetime.fromisoformat(timeline[-1]["at"])
    assert escalated and datetime.fromisoformat(escalated[0]["at"]) == ahead
    assert timeline[-1]["kind"] == "claimed"
    assert before <= claimed <= after
