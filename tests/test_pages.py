"""The pages through the test client: sessions, CSRF, and forms that keep what was typed."""

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from conftest import NEW_CONSULT
from helpers import at, create, csrf_token, sign_in
from sqlalchemy import event

from broker import clock, create_app
from broker.extensions import db


@pytest.fixture
def browser(app):
    """A fresh cookie jar, like a second browser."""
    return app.test_client()


def test_signing_in_leads_a_consultant_to_their_queue(hospital, browser):
    response = sign_in(browser, "castillo@h.test")

    assert response.status_code == 302
    assert browser.get("/").headers["Location"] == "/queue/radiology"


def test_a_wrong_password_is_refused_on_the_page(hospital, browser):
    token = csrf_token(browser.get("/sign-in").text)
    response = browser.post(
        "/sign-in",
        data={"csrf_token": token, "email": "castillo@h.test", "password": "x"},
    )

    assert response.status_code == 401
    assert "Wrong email or password." in response.text
    assert browser.get("/consults").status_code == 302


def test_pages_need_a_signed_in_user(hospital, browser):
    response = browser.get("/queue/radiology")

    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in")


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    hospital, browser, new_consult
):
    consult_id = new_consult()["id"]
    sign_in(browser, "castillo@h.test")

    response = browser.post(f"/consults/{consult_id}/claim", data={})

    assert response.status_code == 400
    assert hospital.patel.get(f"/api/consults/{consult_id}").json["status"] == "pending"


def test_the_session_ends_after_fifteen_idle_minutes(hospital, browser):
    start = clock.now()
    with clock.frozen_at(start):
        sign_in(browser, "castillo@h.test")
    with clock.frozen_at(start + timedelta(minutes=14)):
        assert browser.get("/consults").status_code == 200
    with clock.frozen_at(start + timedelta(minutes=28)):
        assert (
            browser.get("/consults").status_code == 200
        )  # 14 idle minutes since the last
    with clock.frozen_at(start + timedelta(minutes=43, seconds=1)):
        response = browser.get("/consults")

    assert response.status_code == 302
    assert response.headers["Location"] == "/sign-in"
    assert browser.get("/consults").status_code == 302


def test_a_claim_through_the_page_makes_the_consultant_owner(
    hospital, browser, new_consult
):
    consult_id = new_consult()["id"]
    sign_in(browser, "castillo@h.test")
    token = csrf_token(browser.get(f"/consults/{consult_id}").text)

    response = browser.post(
        f"/consults/{consult_id}/claim", data={"claim-csrf_token": token}
    )

    assert response.status_code == 302
    consult = hospital.patel.get(f"/api/consults/{consult_id}").json
    assert consult["owner"]["id"] == hospital.castillo.user_id


def test_a_refused_page_action_says_who_may_and_returns_to_the_consult_with_the_text(
    hospital, browser, new_consult
):
    consult_id = new_consult()["id"]
    hospital.nguyen.post(f"/api/consults/{consult_id}/claim")
    sign_in(browser, "castillo@h.test")
    page = browser.get(f"/consults/{consult_id}").text
    token = csrf_token(page)
    before = hospital.patel.get(f"/api/consults/{consult_id}").json

    response = browser.post(
        f"/consults/{consult_id}/answer",
        data={"answer-csrf_token": token, "answer-body": "I am only covering."},
    )

    assert response.status_code == 303
    assert response.headers["Location"] == f"/consults/{consult_id}"
    shown = browser.get(response.headers["Location"])
    assert shown.status_code == 200
    assert "Only the owner, Dr Nguyen, may answer this consult." in shown.text
    assert "Your unsent text" in shown.text
    assert ">I am only covering.</textarea>" in shown.text
    assert hospital.patel.get(f"/api/consults/{consult_id}").json == before
    # Shown once: the next visit is the consult as it is.
    assert "I am only covering." not in browser.get(f"/consults/{consult_id}").text


def test_a_refused_long_text_is_shown_at_once_on_the_consults_page(
    hospital, browser, new_consult
):
    """Too long for the session cookie: the refusal is the consult's page itself,
    with the text, and the page puts its own address back in the address bar."""
    consult_id = new_consult()["id"]
    hospital.nguyen.post(f"/api/consults/{consult_id}/claim")
    sign_in(browser, "castillo@h.test")
    token = csrf_token(browser.get(f"/consults/{consult_id}").text)
    answer = "LONG-KEPT " + "a" * 5_000

    response = browser.post(
        f"/consults/{consult_id}/answer",
        data={"answer-csrf_token": token, "answer-body": answer},
    )

    assert response.status_code == 403
    assert "Only the owner, Dr Nguyen, may answer this consult." in response.text
    assert f">{answer}</textarea>" in response.text
    assert f'data-page-url="/consults/{consult_id}"' in response.text


def test_opening_a_consult_reads_that_persons_alerts_about_it(
    hospital, browser, new_consult
):
    offered, other = new_consult()["id"], new_consult()["id"]
    for consult_id in (offered, other):
        hospital.castillo.post(f"/api/consults/{consult_id}/claim")
        offer = {"to_user_id": hospital.nguyen.user_id, "note": "Yours?"}
        hospital.castillo.post(f"/api/consults/{consult_id}/handoff", json=offer)
    unread = hospital.nguyen.get("/api/notifications?unread=true").json
    assert sorted(n["consult_id"] for n in unread) == sorted([offered, other])
    sign_in(browser, "nguyen@h.test")

    page = browser.get(f"/consults/{offered}")

    assert page.status_code == 200
    unread = hospital.nguyen.get("/api/notifications?unread=true").json
    assert [n["consult_id"] for n in unread] == [other]
    # The badge counts what is left; the alert just read is said on the page.
    assert re.search(r'id="unread-count"[^>]*>\s*1\s*<', page.text)
    assert "Dr Castillo offers you" in page.text


def test_an_answer_form_with_an_error_keeps_nothing_lost(
    hospital, browser, new_consult
):
    consult_id = new_consult()["id"]
    hospital.castillo.post(f"/api/consults/{consult_id}/claim")
    sign_in(browser, "castillo@h.test")
    token = csrf_token(browser.get(f"/consults/{consult_id}").text)

    response = browser.post(
        f"/consults/{consult_id}/handoff",
        data={"handoff-csrf_token": token, "handoff-to_user_id": hospital.nguyen.user_id,
              "handoff-note": ""},
    )  # fmt: skip

    assert response.status_code == 422
    assert "Note is required." in response.text
    assert f'<option selected value="{hospital.nguyen.user_id}">' in response.text


def test_the_new_consult_form_keeps_what_was_typed_beside_a_field_error(
    hospital, browser
):
    sign_in(browser, "patel@h.test")
    token = csrf_token(browser.get("/consults/new").text)

    response = browser.post(
        "/consults/new",
        data={"csrf_token": token, "department": "radiology", "urgency": "stat",
              "patient_ref": "", "question": "Is the margin clear?"},
    )  # fmt: skip

    assert response.status_code == 422
    assert "Is the margin clear?" in response.text
    assert 'id="patient_ref-error"' in response.text
    assert hospital.patel.get("/api/consults").json == []


def test_a_chief_edits_deadlines_and_a_member_may_not(hospital, browser, app):
    sign_in(browser, "okafor@h.test")
    page = browser.get("/departments/radiology/settings")
    assert page.status_code == 200
    minutes = {f"policy-{u}_{k}": v for u, (c, a, f) in
               {"stat": (10, 45, 45), "urgent": (60, 240, 240), "routine": (480, 2880, 2880)}.items()
               for k, v in (("claim", c), ("answer", a), ("followup", f))}  # fmt: skip

    saved = browser.post(
        "/departments/radiology/policy",
        data={"policy-csrf_token": csrf_token(page.text), **minutes},
    )

    assert saved.status_code == 302
    policy = hospital.castillo.get("/api/departments").json
    radiology = next(d for d in policy if d["slug"] == "radiology")
    assert radiology["policy"]["stat"] == {
        "claim_minutes": 10, "answer_minutes": 45, "followup_minutes": 45,
    }  # fmt: skip
    member = app.test_client()
    sign_in(member, "castillo@h.test")
    assert member.get("/departments/radiology/settings").status_code == 403


def test_pages_and_answers_carry_security_headers_and_are_never_cached(
    hospital, client
):
    page = client.get("/sign-in")
    answer = hospital.patel.get("/api/consults")

    for response in (page, answer):
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
    assert "HttpOnly" in page.headers["Set-Cookie"]
    assert "SameSite=Lax" in page.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "path",
    [
        "/queue/radio%00logy",
        "/departments/radio%00logy/settings",
        "/departments/radio%00logy/dashboard",
        "/queue/" + "r" * 65,
    ],
)
def test_a_department_page_no_department_can_have_is_not_found(hospital, browser, path):
    """A slug with a NUL (PostgreSQL cannot even compare it) or longer than the column."""
    sign_in(browser, "okafor@h.test")

    assert browser.get(path).status_code == 404


def test_a_department_page_for_an_unknown_slug_does_not_repeat_it(hospital, browser):
    sign_in(browser, "okafor@h.test")
    response = browser.get("/queue/no-such-ward")

    assert response.status_code == 404
    assert "no-such-ward" not in response.text


def new_consult_form(browser) -> dict:
    page = browser.get("/consults/new").text
    key = re.search(r'name="request_key"[^>]* value="([^"]+)"', page)
    assert key, "the form carries no request key"
    return {
        "csrf_token": csrf_token(page),
        "request_key": key.group(1),
        "department": "radiology",
        "urgency": "stat",
        "patient_ref": "MRN-PAGE-1",
        "question": "Is the margin clear?",
    }


def test_a_new_consult_form_sent_twice_makes_one_consult(hospital, browser):
    sign_in(browser, "patel@h.test")
    form = new_consult_form(browser)

    first = browser.post("/consults/new", data=form)
    again = browser.post("/consults/new", data=form)  # a double click, a resend

    assert first.status_code == again.status_code == 302
    assert again.headers["Location"] == first.headers["Location"]
    assert len(hospital.patel.get("/api/consults").json) == 1


def test_a_form_already_sent_and_changed_is_sent_again_only_on_purpose(
    hospital, browser
):
    sign_in(browser, "patel@h.test")
    form = new_consult_form(browser)
    browser.post("/consults/new", data=form)

    changed = browser.post(
        "/consults/new", data={**form, "question": "And the other margin?"}
    )

    assert changed.status_code == 409
    assert "already sent" in changed.text
    assert "And the other margin?" in changed.text
    assert form["request_key"] not in changed.text  # a new key: sending again creates
    assert len(hospital.patel.get("/api/consults").json) == 1
    resent = browser.post(
        "/consults/new",
        data={
            **new_consult_form_from(changed.text, form),
            "question": "And the other margin?",
        },
    )
    assert resent.status_code == 302
    assert len(hospital.patel.get("/api/consults").json) == 2


def new_consult_form_from(page: str, form: dict) -> dict:
    key = re.search(r'name="request_key"[^>]* value="([^"]+)"', page).group(1)
    return {**form, "csrf_token": csrf_token(page), "request_key": key}


def test_pages_show_and_read_times_on_the_hospitals_clock(app, hospital, browser):
    """HOSPITAL_TIME_ZONE: deadlines and timelines shown, and shifts typed, in local
    time; the API keeps UTC."""
    app.config["HOSPITAL_TIME_ZONE"] = "America/New_York"
    consult = hospital.patel.post("/api/consults", json=NEW_CONSULT).json
    due = datetime.fromisoformat(consult["claim_due_at"])
    sign_in(browser, "okafor@h.test")

    page = browser.get(f"/consults/{consult['id']}").text
    local = due.astimezone(ZoneInfo("America/New_York"))
    assert f"claim by {local:%H:%M} {local.tzname()}" in page
    assert f"{due:%H:%M} UTC" not in page

    settings = browser.get("/departments/radiology/settings").text
    assert "Shift schedule (America/New_York)" in settings
    # A shift next week (the settings page lists shifts to come), 08:00-20:00 New York time.
    new_york = ZoneInfo("America/New_York")
    day = (datetime.now(new_york) + timedelta(days=7)).date()
    starts = datetime(day.year, day.month, day.day, 8, tzinfo=new_york)
    ends = starts.replace(hour=20)
    added = browser.post(
        "/departments/radiology/shifts",
        data={"csrf_token": csrf_token(settings),
              "shift-user_id": str(hospital.castillo.user_id), "shift-role": "primary",
              "shift-starts_at": f"{day}T08:00", "shift-ends_at": f"{day}T20:00"},
    )  # fmt: skip
    assert added.status_code == 302
    shifts = hospital.okafor.get("/api/departments/radiology/shifts",
                                 query_string={"from": f"{day}T00:00:00Z"}).json  # fmt: skip
    assert [(s["starts_at"], s["ends_at"]) for s in shifts] == [
        (starts.astimezone(ZoneInfo("UTC")).isoformat(), ends.astimezone(ZoneInfo("UTC")).isoformat())
    ]  # fmt: skip
    shown = f"{starts:%a %d %b} 08:00 {starts.tzname()}"
    assert shown in browser.get("/departments/radiology/settings").text


def test_a_misspelt_time_zone_stops_the_start_with_its_name():
    with pytest.raises(RuntimeError, match="Europe/Londn"):
        create_app({"HOSPITAL_TIME_ZONE": "Europe/Londn", "DATABASE_URL": "sqlite://"})


def test_a_refused_or_missing_page_is_a_page_that_says_so(
    hospital, browser, new_consult
):
    consult_id = new_consult()["id"]
    sign_in(browser, "lee@h.test")  # cardiology: may not see a radiology consult

    missing = browser.get(f"/consults/{consult_id}")
    refused = browser.get("/departments/radiology/dashboard")

    assert missing.status_code == 404
    assert missing.content_type.startswith("text/html")
    assert "<h1>404 Not Found</h1>" in missing.text
    assert NEW_CONSULT["patient_ref"] not in missing.text
    assert refused.status_code == 403
    assert "not yours to see or do" in refused.text
    assert browser.post("/consults").status_code == 405


# --- the queue's order ------------------------------------------------------------------

# Made in this order (so ids 1..5), at these minutes after T0, with these claim deadlines:
# routine at 0 (due 480), stat at 600 (due 615), urgent at 500 (due 560),
# stat at 590 (due 605), urgent at 450 (due 510).
QUEUE = [("routine", 0), ("stat", 600), ("urgent", 500), ("stat", 590), ("urgent", 450)]


def test_the_queue_lists_stat_then_urgent_then_routine_each_by_deadline(
    hospital, browser, new_consult
):
    ids = [create(new_consult, at=m, urgency=u)["id"] for u, m in QUEUE]
    by_deadline = sorted(ids, key=lambda i: QUEUE[ids.index(i)][1])
    with clock.frozen_at(at(620)):
        sign_in(browser, "castillo@h.test")
        page = browser.get("/queue/radiology")
    assert page.status_code == 200

    shown = [int(i) for i in re.findall(r'data-consult-id="(\d+)"', page.text)]
    assert shown == [ids[3], ids[1], ids[4], ids[2], ids[0]]
    assert shown not in (ids, by_deadline)  # neither the order made nor deadlines only


# --- bad input and hardening (issue 13) ----------------------------------------------


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Pacific/Kiritimati"])
@pytest.mark.parametrize(
    "query",
    [
        {"from": "9999-12-31"},
        {"to": "9999-12-31"},
        {"from": "9999-12-31", "to": "9999-12-31"},
        {"from": "0001-01-01", "to": "0001-01-01"},
        {"from": "0001-01-01", "to": "9999-12-31"},
    ],
)
def test_a_dashboard_for_far_dates_is_a_page_not_an_error(
    app, hospital, browser, query, zone
):
    app.config["HOSPITAL_TIME_ZONE"] = zone
    sign_in(browser, "okafor@h.test")

    response = browser.get("/departments/radiology/dashboard", query_string=query)

    assert response.status_code == 200


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "Pacific/Kiritimati"])
@pytest.mark.parametrize(
    "starts_at, ends_at",
    [
        ("9999-12-31T22:00", "9999-12-31T23:59"),
        ("0001-01-01T00:00", "0001-01-01T08:00"),
    ],
)
def test_a_shift_at_far_dates_is_refused_on_the_page(
    app, hospital, browser, zone, starts_at, ends_at
):
    app.config["HOSPITAL_TIME_ZONE"] = zone
    sign_in(browser, "okafor@h.test")
    settings = browser.get("/departments/radiology/settings").text

    response = browser.post(
        "/departments/radiology/shifts",
        data={"csrf_token": csrf_token(settings),
              "shift-user_id": str(hospital.castillo.user_id), "shift-role": "primary",
              "shift-starts_at": starts_at, "shift-ends_at": ends_at},
    )  # fmt: skip

    assert response.status_code == 422
    assert "1900" in response.text
    assert hospital.okafor.get("/api/departments/radiology/shifts").json == []


def test_marking_all_read_returns_to_this_sites_page_whatever_the_referer(
    hospital, browser
):
    sign_in(browser, "castillo@h.test")
    page = browser.get("/notifications").text

    response = browser.post(
        "/notifications/read-all",
        data={"csrf_token": csrf_token(page)},
        headers={"Referer": "https://evil.example/phish"},
    )

    assert response.status_code == 302
    assert response.headers["Location"] == "/notifications"


def test_socketio_answers_carry_the_security_headers_and_are_never_cached(client):
    response = client.get(
        "/socket.io/", query_string={"EIO": "4", "transport": "polling"}
    )

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


def statements_run_by(app, request) -> int:
    """The SQL statements the app runs to answer `request()` (which must succeed)."""
    with app.app_context():
        engine = db.engine
    seen = []

    def count(*args):
        seen.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        response = request()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200
    return len(seen)


def test_the_queue_and_the_list_read_each_rows_people_with_the_rows(
    app, hospital, browser, new_consult
):
    """No SELECT per row's requester or owner (an N+1): the same statements for one
    consult as for four, each with other people."""
    sign_in(browser, "okafor@h.test")
    queue = lambda: browser.get("/queue/radiology")  # noqa: E731
    listing = lambda: hospital.okafor.get("/api/consults?department=radiology")  # noqa: E731
    new_consult()
    before = statements_run_by(app, queue), statements_run_by(app, listing)

    for requester, owner in ((hospital.lee, hospital.castillo), (hospital.admin, None)):
        consult_id = new_consult(by=requester)["id"]
        if owner is not None:
            assert owner.post(f"/api/consults/{consult_id}/claim").status_code == 200
    hospital.nguyen.post(f"/api/consults/{new_consult()['id']}/claim")
    page = browser.get("/queue/radiology").text

    assert statements_run_by(app, queue) == before[0]
    assert statements_run_by(app, listing) == before[1]
    assert all(n in page for n in ("Dr Lee", "Dr Castillo", "Dr Nguyen", "Admin"))
