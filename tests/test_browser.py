"""Browser tests: real Chromium (Debian's, via Playwright) against a real server process.

Every test signs people in through the sign-in page of `live_server_process` (a
`flask run --with-threads` on the test database) in their own browser context, so
each has their own session and their own live (Socket.IO) connection. "Without a
reload" is checked by never navigating the watching page, and by a mark left on
its `window` that a reload would wipe out. Waits are Playwright's `expect()`,
which retries until the condition holds or its limit passes: no sleeps.

The module is skipped when Chromium is missing, except in CI (CI=true), where a
missing browser is a failure (CHROMIUM_PATH overrides /usr/bin/chromium). The
screenshots in docs/screenshots/ are taken by `test_screenshots_of_each_main_page`.
"""

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from conftest import PASSWORD
from helpers import ROOT, WHOLE_STORY, scheduled
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI") == "true"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1200, "height": 800}
PHONE = {"width": 375, "height": 740}
WAIT = 10_000  # ms: only a limit; every wait ends as soon as its condition holds
LIVE = 2_000  # ms: how soon a live change must be on screen

if not CHROMIUM.exists() and not IN_CI:
    pytest.skip(
        f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium); "
        "in CI (CI=true) its absence fails instead",
        allow_module_level=True,
    )

expect.set_options(timeout=WAIT)

QUESTION = "Is there a drainable collection on today's CT? Fever 39.2, WBC 18."


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"CI=true but Chromium is missing at {CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def open_context(browser: Browser, live_server_process):
    """open_context(viewport=...) -> a fresh browser context (its own cookies) on the server.

    Uncaught script errors on any of its pages fail the test.
    """
    contexts: list[BrowserContext] = []
    script_errors: list[str] = []

    def open_(viewport=None) -> BrowserContext:
        context = browser.new_context(
            base_url=live_server_process.url, viewport=viewport or DESKTOP
        )
        context.set_default_timeout(WAIT)
        context.on(
            "page",
            lambda page: page.on(
                "pageerror", lambda error: script_errors.append(f"{page.url}: {error}")
            ),
        )
        contexts.append(context)
        return context

    yield open_
    for context in contexts:
        context.close()
    # Shown only when the test fails: what the server saw.
    print("--- server log (tail) ---\n" + live_server_process.log()[-6000:])
    assert not script_errors, script_errors


def sign_in(context: BrowserContext, email: str) -> Page:
    """A page of this context, signed in through the sign-in form as `email`."""
    page = context.new_page()
    page.goto("/sign-in")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#sign-in")
    page.wait_for_url(lambda url: "/sign-in" not in url)
    expect(page.locator("#sign-out")).to_be_attached()  # on a phone, in the menu
    return page


def live(page: Page) -> Page:
    """Wait until the page's live connection is up (its rooms are joined by then),
    and leave a mark on the window that a reload would erase."""
    page.wait_for_function("() => window.BrokerLive && BrokerLive.socket.connected")
    page.evaluate("() => { window.__notReloaded = true; }")
    return page


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("() => window.__notReloaded === true"), "the page reloaded"


def press(page: Page, button: str, done: str | re.Pattern) -> None:
    """Click a form's submit button and wait for the page it leads to (with its flash)."""
    with page.expect_navigation():
        page.click(button)
    expect(page.locator("p.flash").filter(has_text=done)).to_be_visible()


def consult_id_of(page: Page) -> int:
    match = re.search(r"/consults/(\d+)$", page.url)
    assert match, page.url
    return int(match.group(1))


def row(page: Page, consult_id: int, within: str = ""):
    return page.locator(f'{within} .consult-row[data-consult-id="{consult_id}"]')


def fill_new_consult(page: Page, patient_ref: str, question: str, urgency="stat"):
    page.goto("/consults/new")
    page.select_option("#department", "radiology")
    page.check(f'input[name="urgency"][value="{urgency}"]')
    page.fill("#patient_ref", patient_ref)
    page.fill("#question", question)
    page.fill("#study_ref", "ACC-20931")


def choose(page: Page, mode: str) -> None:
    """Choose what to do in the consult page's composer (answer, message, close, ...)."""
    page.check(f'input[name="composer-mode"][value="{mode}"]')


def timeline_kinds(page: Page) -> list[str]:
    return page.locator("#timeline > li").evaluate_all(
        "items => items.map(li => [...li.classList]"
        ".find(c => c.startsWith('kind-')).slice(5))"
    )


def test_the_whole_story_across_three_browsers(hospital, open_context):
    physician = sign_in(open_context(), "patel@h.test")
    radiologist = sign_in(open_context(), "castillo@h.test")
    colleague = sign_in(open_context(), "nguyen@h.test")

    # The radiologist watches the open queue.
    radiologist.goto("/queue/radiology")
    expect(radiologist.locator("#pending-list .consult-row")).to_have_count(0)
    live(radiologist)

    # The physician sends a stat consult ...
    fill_new_consult(physician, "MRN-4417", QUESTION)
    press(physician, "#send-consult", re.compile(r"Consult #\d+ sent to Radiology\."))
    consult_id = consult_id_of(physician)

    # ... and it is in the radiologist's queue within two seconds, without a reload.
    queued = row(radiologist, consult_id, "#pending-list")
    expect(queued).to_be_visible(timeout=LIVE)
    expect(queued).to_contain_text("stat")
    expect(queued).to_contain_text(QUESTION)
    expect(queued.locator(".owner")).to_have_text("No owner yet")
    assert_not_reloaded(radiologist)
    assert radiologist.url.endswith("/queue/radiology")

    # The physician keeps the consult open; the colleague opens it too.
    live(physician)
    expect(physician.locator("#owner")).to_have_text("No owner yet")
    colleague.goto(f"/consults/{consult_id}")
    live(colleague)

    # The radiologist opens it from the queue and claims it.
    queued.locator("a").click()
    radiologist.wait_for_url(f"**/consults/{consult_id}")
    press(radiologist, "#claim-button", "You own this consult now.")
    expect(radiologist.locator("#owner")).to_have_text("Dr Castillo")
    expect(radiologist.locator("#answer-button")).to_be_visible()

    # The physician's page shows the owner, without a reload.
    expect(physician.locator("#owner")).to_have_text("Dr Castillo", timeout=LIVE)
    expect(physician.locator(".badge.status-claimed")).to_be_visible()
    assert_not_reloaded(physician)
    # The colleague's page too: the claim button is gone, and no answer button.
    expect(colleague.locator("#owner")).to_have_text("Dr Castillo", timeout=LIVE)
    expect(colleague.locator("#claim-button")).to_have_count(0)
    expect(colleague.locator("#answer-button")).to_have_count(0)

    # The radiologist hands off to the colleague ...
    radiologist.get_by_text("Hand off to a colleague").click()
    radiologist.select_option('[name="handoff-to_user_id"]', label="Dr Nguyen")
    radiologist.fill('[name="handoff-note"]', "End of my shift: yours if you agree.")
    press(
        radiologist,
        "#handoff-button",
        "Handoff offered. You stay the owner until it is accepted.",
    )
    expect(radiologist.locator("#owner")).to_have_text("Dr Castillo")
    live(radiologist)

    # ... whose open page shows the offer live, and an alert.
    offer = colleague.locator(".card.offer")
    expect(offer).to_contain_text("End of my shift: yours if you agree.")
    expect(colleague.locator("#accept-button")).to_be_visible()
    expect(colleague.locator("#unread-count")).to_have_text("1")
    assert_not_reloaded(colleague)
    expect(physician.locator(".notice")).to_contain_text("Handoff offered to Dr Nguyen")

    # The colleague accepts: the physician sees the new owner live.
    press(colleague, "#accept-button", "Handoff accepted: you own this consult now.")
    expect(colleague.locator("#owner")).to_have_text("Dr Nguyen")
    live(colleague)
    expect(physician.locator("#owner")).to_have_text("Dr Nguyen", timeout=LIVE)
    expect(physician.locator(".notice")).to_have_count(0)
    expect(radiologist.locator("#owner")).to_have_text("Dr Nguyen")
    expect(radiologist.locator("#answer-button")).to_have_count(0)

    # The new owner answers; the physician's page shows the answer live.
    first_answer = "Yes: a 4 cm rim-enhancing collection in the right lower quadrant."
    colleague.fill('[name="answer-body"]', first_answer)
    press(colleague, "#answer-button", "Answer sent.")
    live(colleague)
    expect(physician.locator("#timeline")).to_contain_text(first_answer)
    expect(physician.locator("#message-button")).to_have_text("Ask follow-up")
    expect(physician.locator("#message-button")).to_be_visible()
    expect(physician.locator("#close-button")).to_have_count(1)
    assert_not_reloaded(physician)

    # A follow-up goes back to the same owner, whose page shows it live.
    followup = "Is it safely accessible percutaneously?"
    physician.fill('[name="message-body"]', followup)
    press(physician, "#message-button", "Sent.")
    live(physician)
    expect(colleague.locator("#timeline")).to_contain_text(followup)
    expect(colleague.locator("#answer-button")).to_be_visible()
    expect(colleague.locator("#owner")).to_have_text("Dr Nguyen")
    assert_not_reloaded(colleague)

    second_answer = "Yes, via a right anterior approach; IR can drain today."
    colleague.fill('[name="answer-body"]', second_answer)
    press(colleague, "#answer-button", "Answer sent.")
    expect(physician.locator("#timeline")).to_contain_text(second_answer)
    assert_not_reloaded(physician)

    # The physician closes it with a rating.
    choose(physician, "close")
    physician.check('input[name="close-rating"][value="5"]')
    physician.fill('[name="close-comment"]', "Quick and clear, thank you.")
    press(physician, "#close-button", "Consult closed. Thank you.")
    expect(physician.locator(".badge.status-closed")).to_be_visible()
    expect(physician.locator("#close-button")).to_have_count(0)
    expect(physician.locator("#message-button")).to_have_count(0)

    # The timeline tells the whole story, in order.
    assert timeline_kinds(physician) == WHOLE_STORY
    heads = physician.locator("#timeline .event-head").all_inner_texts()
    expected = [
        "Dr Patel asked",
        "Dr Castillo claimed it",
        "Dr Castillo offered a handoff to Dr Nguyen",
        "Dr Nguyen accepted the handoff from Dr Castillo",
        "Dr Nguyen answered",
        "Dr Patel asked a follow-up",
        "Dr Nguyen answered",
        "Dr Patel closed it (rated 5/5)",
    ]
    for head, start in zip(heads, expected, strict=True):
        assert " ".join(head.split()).startswith(start), (head, start)
    texts = physician.locator("#timeline > li .text").all_inner_texts()
    assert texts == [
        "End of my shift: yours if you agree.",
        first_answer,
        followup,
        second_answer,
        "Quick and clear, thank you.",
    ]

    # The radiologist's queue no longer lists it: it is closed.
    radiologist.goto("/queue/radiology")
    expect(row(radiologist, consult_id)).to_have_count(0)


def test_a_field_error_keeps_what_was_typed(hospital, open_context):
    page = sign_in(open_context(), "patel@h.test")
    fill_new_consult(page, "", QUESTION, urgency="urgent")
    with page.expect_navigation() as navigation:
        page.click("#send-consult")
    assert navigation.value.status == 422
    assert page.url.endswith("/consults/new")

    # The error is beside the patient reference field ...
    error = page.locator("#patient_ref-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text(re.compile(r"required", re.IGNORECASE))
    field = page.locator(".field.has-error")
    expect(field).to_have_count(1)
    expect(field.locator("#patient_ref")).to_have_attribute(
        "aria-describedby", re.compile(r"\bpatient_ref-error\b")
    )
    # ... and everything typed is still there.
    expect(page.locator("#question")).to_have_value(QUESTION)
    expect(page.locator("#study_ref")).to_have_value("ACC-20931")
    expect(page.locator("#department")).to_have_value("radiology")
    expect(page.locator('input[name="urgency"][value="urgent"]')).to_be_checked()
    # The cursor is in the field to fix.
    expect(page.locator("#patient_ref")).to_be_focused()

    # Fixed, it goes through with what was typed first.
    page.fill("#patient_ref", "MRN-4417")
    press(page, "#send-consult", re.compile(r"Consult #\d+ sent to Radiology\."))
    expect(page.locator(".question .text")).to_have_text(QUESTION)
    expect(page.locator(".badge.urgency-urgent")).to_be_visible()


def test_a_non_owner_sees_no_answer_button_but_can_add_a_note(
    hospital, new_consult, open_context
):
    claimed = new_consult()
    assert (
        hospital.castillo.post(f"/api/consults/{claimed['id']}/claim").status_code
        == 200
    )
    pending = new_consult(urgency="routine", question="Any fracture on the wrist film?")

    colleague = sign_in(open_context(), "nguyen@h.test")
    colleague.goto(f"/consults/{claimed['id']}")
    expect(colleague.locator("#owner")).to_have_text("Dr Castillo")
    expect(colleague.locator("#answer-button")).to_have_count(0)
    expect(colleague.locator('[name="answer-body"]')).to_have_count(0)
    expect(colleague.locator("#claim-button")).to_have_count(0)
    expect(colleague.locator("#close-button")).to_have_count(0)
    expect(colleague.locator("#handoff-button")).to_have_count(0)
    expect(colleague.locator("label[for=message-body]")).to_contain_text(
        "you are not the owner"
    )
    colleague.fill('[name="message-body"]', "Covering tonight: prior CT is from March.")
    press(colleague, "#message-button", "Sent.")
    note = colleague.locator("#timeline > li").last
    expect(note).to_have_class(re.compile(r"\bkind-note\b"))
    expect(note).to_contain_text("Dr Nguyen added a note")
    expect(note).to_contain_text("Covering tonight: prior CT is from March.")
    # A note does not answer: still claimed by the same owner, still no answer button.
    expect(colleague.locator(".badge.status-claimed")).to_be_visible()
    expect(colleague.locator("#owner")).to_have_text("Dr Castillo")
    expect(colleague.locator("#answer-button")).to_have_count(0)
    # A department member does see a claim button on a pending consult.
    colleague.goto(f"/consults/{pending['id']}")
    expect(colleague.locator("#claim-button")).to_be_visible()

    # The requester sees no claim button, and no answer button.
    physician = sign_in(open_context(), "patel@h.test")
    physician.goto(f"/consults/{pending['id']}")
    expect(physician.locator("#owner")).to_have_text("No owner yet")
    expect(physician.locator("#claim-button")).to_have_count(0)
    physician.goto(f"/consults/{claimed['id']}")
    expect(physician.locator("#answer-button")).to_have_count(0)
    expect(physician.locator("#claim-button")).to_have_count(0)


def test_a_wrong_password_is_refused_with_an_error(hospital, open_context):
    page = open_context().new_page()
    page.goto("/sign-in")
    page.fill("#email", "castillo@h.test")
    page.fill("#password", "not the password")
    with page.expect_navigation() as navigation:
        page.click("#sign-in")
    assert navigation.value.status == 401
    expect(page.locator("#password-error")).to_have_text("Wrong email or password.")
    expect(page.locator("#email")).to_have_value("castillo@h.test")
    expect(page.locator("#password")).to_have_value("")
    expect(page.locator("#sign-out")).to_have_count(0)
    # Not signed in: a page sends you to sign in.
    page.goto("/queue/radiology")
    expect(page).to_have_url(re.compile(r"/sign-in"))


def test_another_departments_queue_is_refused(hospital, open_context):
    radiologist = sign_in(open_context(), "castillo@h.test")
    response = radiologist.goto("/queue/cardiology")
    assert response.status == 403
    assert radiologist.goto("/queue/radiology").status == 200
    # The requester belongs to no department: no queue at all.
    physician = sign_in(open_context(), "patel@h.test")
    assert physician.goto("/queue/radiology").status == 403


def test_a_live_refresh_does_not_bring_back_a_message_already_shown(
    hospital, new_consult, open_context
):
    """A page's live refresh can leave while the page's own form is being posted: it
    carries the session cookie with the "done" message not yet shown. The page the
    form leads to shows the message; the refresh's answer must not restore it.

    (Seen in the story: "You own this consult now." shown again after the handoff.)
    """
    consult = new_consult()
    path = f"/consults/{consult['id']}"
    context = open_context()
    page = sign_in(context, "castillo@h.test")
    page.goto(path)
    token = page.locator('form[action$="/claim"] input[type=hidden]')
    response = context.request.post(
        f"{path}/claim",
        form={token.get_attribute("name"): token.input_value()},
        max_redirects=0,
    )
    assert response.status == 302
    cookie_with_message = next(
        c["value"] for c in context.cookies() if c["name"] == "session"
    )
    page.goto(path)
    expect(page.locator("p.flash")).to_have_text("You own this consult now.")

    # The live refresh that left with the earlier cookie comes back now.
    refresh = context.request.get(
        f"{path}?fragment=1", headers={"Cookie": f"session={cookie_with_message}"}
    )
    assert refresh.ok
    page.goto(path)
    expect(page.locator("#owner")).to_have_text("Dr Castillo")
    expect(page.locator("p.flash")).to_have_count(0)


def test_a_change_made_while_the_page_connects_is_not_missed(
    hospital, new_consult, open_context, live_server_process
):
    """Between the page's rendering and its live connection, a change can only
    reach it by the catch-up the page makes when it connects."""
    consult = new_consult()
    path = f"/consults/{consult['id']}"
    page = sign_in(open_context(), "patel@h.test")

    def claim_then_load(route):
        # The page is rendered (up to its scripts); the radiologist claims now.
        response = requests.post(
            f"{live_server_process.url}/api{path}/claim",
            headers=hospital.castillo.headers,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        route.continue_()

    page.route("**/socket.io.min.js", claim_then_load)
    page.goto(path)
    live(page)
    assert hospital.patel.get(f"/api{path}").json["owner"]["name"] == "Dr Castillo"
    expect(page.locator("#owner")).to_have_text("Dr Castillo", timeout=LIVE)


@pytest.mark.parametrize("server_env", [{"LIVE_RESYNC_SECONDS": "1"}])
def test_a_push_lost_while_connected_is_caught_up_by_the_periodic_resync(
    hospital, new_consult, open_context, server_env
):
    """A claim made in another process with no shared Redis reaches no socket: the
    page, still connected, must find it by asking what changed."""
    consult = new_consult()
    page = live(sign_in(open_context(), "patel@h.test"))
    page.goto(f"/consults/{consult['id']}")
    live(page)
    # Settled: the catch-up made on connecting (and any re-render it led to) is over.
    page.wait_for_load_state("networkidle")
    expect(page.locator("#owner")).to_have_text("No owner yet")

    claimed = hospital.castillo.post(f"/api/consults/{consult['id']}/claim")
    assert claimed.status_code == 200, claimed.json

    expect(page.locator("#owner")).to_have_text("Dr Castillo", timeout=4 * LIVE)
    assert page.evaluate("() => BrokerLive.socket.connected")
    assert_not_reloaded(page)


def page_width(page: Page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


def test_the_consult_page_and_the_main_pages_fit_a_phone(hospital, open_context):
    seeded = _seed(hospital)
    consult = f"/consults/{seeded['story']}"
    pages = {
        # The consult page as its owner (most actions), requester and chief.
        "castillo@h.test": [consult, "/queue/radiology", "/notifications", "/oncall"],
        "patel@h.test": [consult, "/consults", "/consults/new"],
        "okafor@h.test": [consult, "/departments/radiology/settings"],
    }
    for email, paths in pages.items():
        page = sign_in(open_context(viewport=PHONE), email)
        for path in paths:
            page.goto(path)
            expect(page.locator("main h1")).to_be_visible()
            for summary in page.locator("main details summary").all():
                summary.click()
            width = page_width(page)
            assert width <= PHONE["width"], f"{email} {path}: {width} px wide"


def test_a_long_link_in_a_question_does_not_widen_a_phone_page(
    hospital, new_consult, open_context
):
    """Clinicians paste viewer links and DICOM UIDs: one long word must wrap."""
    uid = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"
    consult = new_consult(
        question=f"Please compare with https://pacs.example.org/viewer?study={uid}",
        study_ref=uid[:60],
    )
    page = sign_in(open_context(viewport=PHONE), "castillo@h.test")
    for path in (f"/consults/{consult['id']}", "/queue/radiology"):
        page.goto(path)
        expect(page.get_by_text("pacs.example.org").first).to_be_visible()
        width = page_width(page)
        assert width <= PHONE["width"], f"{path}: {width} px wide"


def test_the_alerts_menu_stays_on_a_phone_screen(hospital, new_consult, open_context):
    path = f"/api/consults/{new_consult()['id']}"
    assert hospital.castillo.post(f"{path}/claim").status_code == 200
    offer = {"to_user_id": hospital.nguyen.user_id, "note": "Yours?"}
    assert hospital.castillo.post(f"{path}/handoff", json=offer).status_code == 200
    page = sign_in(open_context(viewport=PHONE), "nguyen@h.test")
    expect(page.locator("#unread-count")).to_have_text("1")
    page.click(".notifications-menu summary")
    menu = page.locator(".notifications-menu .menu")
    expect(menu).to_be_visible()
    box = menu.bounding_box()
    assert box is not None
    assert box["x"] >= 0, f"the menu starts {-box['x']:.0f} px left of the screen"
    assert box["x"] + box["width"] <= PHONE["width"], box


def owners_page(hospital, new_consult, open_context) -> tuple[Page, str]:
    """Castillo's open page of a consult he has claimed (live), and its path."""
    path = f"/consults/{new_consult()['id']}"
    assert hospital.castillo.post(f"/api{path}/claim").status_code == 200
    page = sign_in(open_context(), "castillo@h.test")
    page.goto(path)
    live(page)
    return page, path


def test_a_live_update_keeps_an_open_form_and_what_was_typed(
    hospital, new_consult, open_context, live_server_process
):
    page, path = owners_page(hospital, new_consult, open_context)
    page.fill('[name="answer-body"]', "Draft answer, half written")
    page.get_by_text("Hand off to a colleague").click()
    page.fill('[name="handoff-note"]', "Draft handoff note")
    page.focus('[name="handoff-note"]')

    # A colleague adds a note, through the server (so that it is pushed live).
    response = requests.post(
        f"{live_server_process.url}/api{path}/messages",
        headers=hospital.nguyen.headers,
        json={"body": "Prior CT from March is in PACS."},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    expect(page.locator("#timeline")).to_contain_text("Prior CT from March is in PACS.")
    assert_not_reloaded(page)

    expect(page.locator('[name="answer-body"]')).to_have_value(
        "Draft answer, half written"
    )
    expect(page.locator('[name="handoff-note"]')).to_have_value("Draft handoff note")
    # The section the user had opened is still open, the cursor still in it.
    expect(page.locator('[name="handoff-note"]')).to_be_visible()
    expect(page.locator('[name="handoff-note"]')).to_be_focused()


def _seed(hospital) -> dict:
    """Shifts, and consults in every state, made through the API."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    def hours(n: float) -> datetime:
        return now + timedelta(hours=n)

    for who, role in ((hospital.castillo, "primary"), (hospital.nguyen, "backup")):
        scheduled(hospital.okafor, who, role, hours(-2), hours(10))
    scheduled(hospital.okafor, hospital.okafor, "primary", hours(10), hours(22))

    def consult(urgency, patient_ref, question, study_ref=None, by=None):
        body = {
            "department": "radiology",
            "urgency": urgency,
            "patient_ref": patient_ref,
            "question": question,
        }
        if study_ref:
            body["study_ref"] = study_ref
        response = (by or hospital.patel).post("/api/consults", json=body)
        assert response.status_code == 201, response.json
        return response.json["id"]

    def ok(caller, path, json=None):
        response = caller.post(path, json=json)
        assert response.status_code == 200, response.json

    closed = consult(
        "routine", "MRN-1180", "Old scaphoid fracture: united?", "ACC-20877"
    )
    ok(hospital.nguyen, f"/api/consults/{closed}/claim")
    ok(hospital.nguyen, f"/api/consults/{closed}/answer", {"body": "Yes, united."})
    ok(hospital.patel, f"/api/consults/{closed}/close", {"rating": 4})

    answered = consult(
        "routine",
        "MRN-3321",
        "Follow-up of a 6 mm lung nodule: interval change since last year?",
        "ACC-20912",
    )
    ok(hospital.nguyen, f"/api/consults/{answered}/claim")
    ok(
        hospital.nguyen,
        f"/api/consults/{answered}/answer",
        {
            "body": "Stable at 6 mm over 12 months: benign features, no further follow-up."
        },
    )

    story = consult(
        "stat",
        "MRN-4417",
        "Known sigmoid diverticulitis, fever 39.2 and WBC 18 after 48 h of IV "
        "antibiotics. Is there a drainable collection on today's CT?",
        "ACC-20931",
    )
    ok(hospital.castillo, f"/api/consults/{story}/claim")
    ok(
        hospital.castillo,
        f"/api/consults/{story}/answer",
        {"body": "A 4 cm rim-enhancing collection in the left lower quadrant."},
    )
    ok(
        hospital.patel,
        f"/api/consults/{story}/messages",
        {"body": "Is it safely accessible percutaneously?"},
    )
    ok(
        hospital.nguyen,
        f"/api/consults/{story}/messages",
        {"body": "IR is free after 14:00 if drainage is needed."},
    )

    handoff = consult(
        "urgent",
        "MRN-2208",
        "New headache and papilloedema: venous sinus thrombosis on the CT venogram?",
        "ACC-20925",
    )
    ok(hospital.castillo, f"/api/consults/{handoff}/claim")
    ok(
        hospital.castillo,
        f"/api/consults/{handoff}/handoff",
        {"to_user_id": hospital.nguyen.user_id, "note": "Neuro is your area."},
    )
    consult("stat", "MRN-5530", "Suspected pulmonary embolism: CTPA ready for reading.")
    consult(
        "urgent",
        "MRN-6102",
        "Post-op day 3, rising lactate: any sign of anastomotic leak?",
        by=hospital.lee,
    )
    consult("routine", "MRN-7781", "Shoulder ultrasound: full-thickness cuff tear?")
    return {"story": story}


def test_screenshots_of_each_main_page(hospital, open_context, tmp_path):
    """Each main page, with data on it. UPDATE_SCREENSHOTS=1 saves them to
    docs/screenshots/ for the README; otherwise they go to a temporary folder."""
    seeded = _seed(hospital)
    folder = SCREENSHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(page: Page, name: str, full_page=True):
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        page.screenshot(path=str(folder / name), full_page=full_page)
        assert (folder / name).stat().st_size > 5_000

    visitor = open_context().new_page()
    visitor.goto("/sign-in")
    expect(visitor.locator("#sign-in")).to_be_visible()
    shoot(visitor, "sign-in.png", full_page=False)

    radiologist = sign_in(open_context(), "castillo@h.test")
    radiologist.goto("/queue/radiology")
    expect(radiologist.locator("#pending-list .consult-row")).to_have_count(3)
    expect(radiologist.locator(".oncall-line")).to_contain_text("Dr Castillo")
    shoot(radiologist, "queue.png")

    radiologist.goto(f"/consults/{seeded['story']}")
    expect(radiologist.locator("#answer-button")).to_be_visible()
    radiologist.get_by_text("Hand off to a colleague").click()
    shoot(radiologist, "consult.png")

    radiologist.goto("/notifications")
    expect(radiologist.locator("ul.notifications li").first).to_be_visible()
    shoot(radiologist, "alerts.png")

    radiologist.goto("/oncall")
    expect(radiologist.locator("table")).to_contain_text("Dr Nguyen")
    shoot(radiologist, "on-call.png")

    physician = sign_in(open_context(), "patel@h.test")
    physician.goto("/consults")
    expect(physician.locator(".consult-row")).to_have_count(6)
    shoot(physician, "my-consults.png")

    fill_new_consult(physician, "", "Any residual tumour after resection?")
    with physician.expect_navigation():
        physician.click("#send-consult")
    expect(physician.locator("#patient_ref-error")).to_be_visible()
    shoot(physician, "new-consult.png")

    chief = sign_in(open_context(), "okafor@h.test")
    chief.goto("/departments/radiology/settings")
    expect(chief.locator("#shift-table")).to_contain_text("Dr Castillo")
    shoot(chief, "department-settings.png")

    phone = sign_in(open_context(viewport=PHONE), "castillo@h.test")
    phone.goto(f"/consults/{seeded['story']}")
    expect(phone.locator("#answer-button")).to_be_visible()
    shoot(phone, "consult-phone.png")


def test_the_chief_sees_the_dashboard_drawn_with_data_and_a_requester_is_refused(
    hospital, open_context
):
    _seed(hospital)
    chief = sign_in(open_context(), "okafor@h.test")

    response = chief.goto("/departments/radiology/dashboard")

    assert response.status == 200
    charts = chief.locator("figure img.chart")
    expect(charts).to_have_count(4)
    for chart in charts.all():  # each image loaded and drawn
        assert chart.evaluate("img => img.complete && img.naturalWidth > 0")
    consults = int(chief.locator(".kpi-value").first.inner_text())
    assert consults >= 5
    expect(chief.locator("table.report").first).to_contain_text("Week of")
    download = chief.locator("#csv-download")
    assert "format=csv" in download.get_attribute("href")
    csv = chief.request.get(download.get_attribute("href"))
    assert csv.ok and csv.text().startswith("group,count,")

    requester = sign_in(open_context(), "patel@h.test")
    assert requester.goto("/departments/radiology/dashboard").status == 403
    member = sign_in(open_context(), "castillo@h.test")
    assert member.goto("/departments/radiology/dashboard").status == 403


@pytest.mark.parametrize(
    ("action", "body", "words"),
    [
        ("assign", {"user_id": "@nguyen"}, "Dr Okafor reassigned"),
        ("redirect", {"department": "cardiology", "reason": "Cardiac."}, "Dr Okafor redirected"),
    ],
)  # fmt: skip
def test_an_owner_whose_consult_is_taken_sees_it_live_and_keeps_what_they_typed(
    hospital, new_consult, open_context, live_server_process, action, body, words
):
    """SPEC rule 7: the chief reassigns or redirects the consult Castillo is answering."""
    page, path = owners_page(hospital, new_consult, open_context)
    draft = "No drainable collection; the fluid is reactive.\nSecond line of my answer."
    page.fill('[name="answer-body"]', draft)

    body = {
        k: hospital.nguyen.user_id if v == "@nguyen" else v for k, v in body.items()
    }
    response = requests.post(
        f"{live_server_process.url}/api{path}/{action}",
        headers=hospital.okafor.headers,
        json=body,
        timeout=10,
    )
    assert response.status_code == 200, response.text

    notices = page.locator("#consult-notices")
    expect(notices).to_contain_text(words, timeout=LIVE)
    expect(notices).to_contain_text("it is no longer yours")
    expect(page.locator("#unread-count")).to_have_text("1")
    expect(page.locator('[name="answer-body"]')).to_have_count(0, timeout=LIVE)
    expect(page.locator("#answer-button")).to_have_count(0)
    kept = page.locator("#unsent-text textarea")
    expect(kept).to_have_value(draft)
    expect(page.locator("#unsent-text")).to_contain_text("Your answer")
    if action == "assign":
        expect(page.locator("#owner")).to_have_text("Dr Nguyen")
    assert_not_reloaded(page)


def test_an_over_long_question_is_counted_and_refused_with_every_character_kept(
    hospital, open_context
):
    page = sign_in(open_context(), "patel@h.test")
    fill_new_consult(page, "MRN-4417", "Is there a leak?")
    expect(page.locator("[maxlength]")).to_have_count(0)
    left = page.locator("#question-counter .left")
    expect(left).to_have_text("9,984 characters left")
    expect(page.locator("#patient_ref-counter .left")).to_have_text(
        "56 characters left"
    )

    question = "Q" * 20_000
    page.fill("#question", question)
    expect(left).to_have_text("10,000 characters too many")
    page.click("#send-consult")

    error = page.locator("#question-error")
    expect(error).to_have_text("At most 10,000 characters (20,000 typed).")
    expect(page.locator("#question")).to_be_focused()
    assert page.locator("#question").input_value() == question
    assert page.url.endswith("/consults/new")
    assert hospital.patel.get("/api/consults").json == []


def test_a_form_error_on_the_consult_page_keeps_the_address_and_focuses_the_field(
    hospital, new_consult, open_context
):
    consult = new_consult()
    path = f"/consults/{consult['id']}"
    assert hospital.castillo.post(f"/api{path}/claim").status_code == 200
    page = sign_in(open_context(), "castillo@h.test")
    page.goto(path)
    page.fill('[name="answer-body"]', "Half an answer")
    choose(page, "handoff")
    expect(page.locator('[name="answer-body"]')).to_be_hidden()
    page.select_option('[name="handoff-to_user_id"]', label="Dr Nguyen")
    with page.expect_navigation() as navigation:
        page.click("#handoff-button")

    assert navigation.value.status == 422
    expect(page).to_have_url(re.compile(rf"{path}$"))
    note = page.locator('[name="handoff-note"]')
    expect(note).to_be_visible()
    expect(note).to_be_focused()
    expect(page.locator("#handoff-note-error")).to_contain_text("required")
    # The rating is one row of five choices.
    physician_page = sign_in(open_context(), "patel@h.test")
    answer = {"body": "Nothing to drain."}
    assert hospital.castillo.post(f"/api{path}/answer", json=answer).status_code == 200
    physician_page.goto(path)
    live(physician_page)
    physician_page.wait_for_load_state("networkidle")
    choose(physician_page, "close")
    stars = physician_page.locator('input[name="close-rating"]')
    expect(stars).to_have_count(5)
    expect(stars.last).to_be_visible()
    tops = stars.evaluate_all(
        "els => els.map(e => Math.round(e.getBoundingClientRect().top))"
    )
    assert len(set(tops)) == 1, tops
    stars.nth(3).focus()
    physician_page.keyboard.press("ArrowRight")
    expect(
        physician_page.locator('input[name="close-rating"][value="5"]')
    ).to_be_checked()
