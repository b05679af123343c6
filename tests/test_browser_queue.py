"""Browser tests of the work tool (issue 12): alerts counted once, the dense queue with
its filters and countdowns, the phone header, settings, the dashboard, and axe-core.

Uses the fixtures and helpers of test_browser.py (real Chromium, real server).
"""

import re
from datetime import UTC, datetime, timedelta

import requests
import test_browser
from playwright.sync_api import Page, expect
from test_browser import PHONE, live, sign_in
from test_pages_settings import add_shift

# test_browser.py's fixtures: one Chromium per module, a context per person.
browser = test_browser.browser
open_context = test_browser.open_context

DESKTOP = {"width": 1280, "height": 800}


def settled(page: Page) -> Page:
    """Live, and the catch-up made on connecting is over."""
    live(page)
    page.wait_for_load_state("networkidle")
    return page


def offer_handoffs(hospital, new_consult, n: int) -> None:
    """n unread handoff alerts for Dr Nguyen."""
    for _ in range(n):
        path = f"/api/consults/{new_consult()['id']}"
        assert hospital.castillo.post(f"{path}/claim").status_code == 200
        offer = offer_to(hospital.nguyen)
        assert hospital.castillo.post(f"{path}/handoff", json=offer).status_code == 200


def offer_to(colleague) -> dict:
    return {"to_user_id": colleague.user_id, "note": "Yours?"}


def test_each_unread_alert_is_counted_and_listed_once(
    hospital, new_consult, open_context, live_server_process
):
    offer_handoffs(hospital, new_consult, 2)
    page = settled(sign_in(open_context(), "nguyen@h.test"))
    for path in ("/queue/radiology", "/consults", "/notifications"):
        page.goto(path)
        settled(page)
        assert page.inner_text("#unread-count") == "2", path
        assert page.locator("#notification-list li").count() == 2, path
        # Nothing new happened: nothing is announced.
        assert page.inner_text("#live-status") == "", path

    # A new alert arrives live (pushed by the server): counted once, announced once.
    path = f"{live_server_process.url}/api/consults/{new_consult()['id']}"
    for step, body in (("claim", None), ("handoff", offer_to(hospital.nguyen))):
        done = requests.post(
            f"{path}/{step}", json=body, headers=hospital.castillo.headers, timeout=10
        )
        assert done.status_code == 200, done.text
    expect(page.locator("#unread-count")).to_have_text("3")
    expect(page.locator("#live-status")).to_contain_text("offers you")
    page.wait_for_load_state("networkidle")
    assert page.locator("#notification-list li").count() == 3


def test_a_consult_redirected_away_is_not_announced_in_the_old_queue(
    hospital, new_consult, open_context
):
    now = datetime.now(UTC)
    on_call = add_shift(hospital, now - timedelta(hours=1), now + timedelta(hours=8))
    assert on_call.status_code == 201, on_call.json
    consult = new_consult()  # the on-call primary is alerted
    moved = hospital.nguyen.post(
        f"/api/consults/{consult['id']}/redirect",
        json={"department": "cardiology", "reason": "Cardiac question."},
    )
    assert moved.status_code == 200, moved.json
    page = sign_in(open_context(), "castillo@h.test")
    page.goto("/queue/radiology")
    settled(page)
    assert page.inner_text("#live-status") == ""
    expect(page.locator(f'[data-consult-id="{consult["id"]}"]')).to_have_count(0)


def test_the_alerts_button_is_named_as_it_reads(hospital, new_consult, open_context):
    offer_handoffs(hospital, new_consult, 1)
    page = settled(sign_in(open_context(), "nguyen@h.test"))
    button = page.locator(".notifications-menu summary")
    expect(button).to_contain_text("Alerts")
    name = button.evaluate(
        "el => el.getAttribute('aria-label') || el.textContent.replace(/\\s+/g, ' ').trim()"
    )
    assert name.startswith("Alerts"), name
    assert re.search(r"\b1\b", name), name


def many_consults(hospital, n: int) -> list[int]:
    """n pending consults of every urgency, through the API."""
    made = []
    for i in range(n):
        body = {
            "department": "radiology",
            "urgency": ("stat", "urgent", "routine")[i % 3],
            "patient_ref": f"MRN-{7000 + i}",
            "question": f"Question number {i}: any change since the last study? " * 3,
        }
        response = hospital.patel.post("/api/consults", json=body)
        assert response.status_code == 201, response.json
        made.append(response.json["id"])
    return made


def test_the_queue_shows_fifteen_consults_on_a_laptop_screen_with_patient_refs(
    hospital, open_context
):
    made = many_consults(hospital, 20)
    page = sign_in(open_context(viewport=DESKTOP), "castillo@h.test")
    page.goto("/queue/radiology")
    rows = page.locator(".consult-row")
    expect(rows).to_have_count(20)
    visible = rows.evaluate_all(
        "rows => rows.filter(r => r.getBoundingClientRect().bottom <= innerHeight).length"
    )
    assert visible >= 15, f"only {visible} consults fit 1280x800"
    first = page.locator(f'.consult-row[data-consult-id="{made[0]}"]')
    expect(first).to_contain_text("MRN-7000")
    assert page_width(page) <= DESKTOP["width"]


def test_queue_filters_are_kept_in_the_url_and_through_live_updates(
    hospital, open_context, live_server_process
):
    made = many_consults(hospital, 6)
    stat = made[0::3]
    claimed = made[1]
    assert hospital.castillo.post(f"/api/consults/{claimed}/claim").status_code == 200
    page = sign_in(open_context(), "castillo@h.test")
    page.goto("/queue/radiology")
    with page.expect_navigation():
        page.select_option("#filter-urgency", "stat")
    assert "urgency=stat" in page.url
    ids = page.locator(".consult-row").evaluate_all(
        "rows => rows.map(r => Number(r.dataset.consultId))"
    )
    assert sorted(ids) == sorted(stat)

    page.goto("/queue/radiology?mine=1")
    expect(page.locator(".consult-row")).to_have_count(1)
    expect(page.locator("#filter-mine, [name=mine]")).to_be_checked()
    assert page.locator(".consult-row").get_attribute("data-consult-id") == str(claimed)

    # A new routine consult arrives live: a stat-only queue does not show it, and
    # keeps its filter; a new stat one appears.
    page.goto("/queue/radiology?urgency=stat")
    settled(page)
    for urgency in ("routine", "stat"):
        response = requests.post(
            f"{live_server_process.url}/api/consults",
            json={
                "department": "radiology",
                "urgency": urgency,
                "patient_ref": f"MRN-LIVE-{urgency}",
                "question": "Arrived live.",
            },
            headers=hospital.patel.headers,
            timeout=10,
        )
        assert response.status_code == 201, response.text
    expect(page.locator(".consult-row")).to_have_count(len(stat) + 1)
    expect(page.locator("#pending-list")).to_contain_text("MRN-LIVE-stat")
    expect(page.locator("#pending-list")).not_to_contain_text("MRN-LIVE-routine")
    assert "urgency=stat" in page.url


def test_queue_search_finds_a_patient_or_a_number_without_putting_it_in_the_url(
    hospital, open_context
):
    made = many_consults(hospital, 5)
    page = sign_in(open_context(), "castillo@h.test")
    page.goto("/queue/radiology")
    page.fill("#queue-search", "mrn-7003")
    expect(page.locator(".consult-row:visible")).to_have_count(1)
    expect(page.locator(".consult-row:visible")).to_contain_text("MRN-7003")
    assert "7003" not in page.url
    page.fill("#queue-search", f"#{made[2]}")
    expect(page.locator(".consult-row:visible")).to_have_count(1)
    page.fill("#queue-search", "no such patient")
    expect(page.locator(".consult-row:visible")).to_have_count(0)
    expect(page.locator(".search-none")).to_be_visible()


def test_countdowns_grow_louder_as_the_deadline_nears(
    hospital, new_consult, open_context
):
    consult = new_consult(urgency="routine")
    due = datetime.fromisoformat(consult["claim_due_at"])
    page = sign_in(open_context(), "castillo@h.test")
    countdown = page.locator(f'[data-consult-id="{consult["id"]}"] .due')
    for at, words, loudness in (
        (due - timedelta(hours=3), "3 h left to claim", None),
        (due - timedelta(minutes=12), "only 12 min left to claim", "soon"),
        (due + timedelta(seconds=10), "claim due now", "overdue"),
        (due + timedelta(minutes=4, seconds=10), "claim overdue by 5 min", "overdue"),
    ):
        page.clock.set_fixed_time(at)
        page.goto("/queue/radiology")
        expect(countdown).to_have_text(words)
        classes = countdown.get_attribute("class").split()
        for loud in ("soon", "overdue"):
            assert (loud in classes) == (loud == loudness), (words, classes)
        assert "overdue by 0 min" not in page.inner_text("main")


def test_the_phone_header_is_one_line_with_a_menu(hospital, open_context):
    page = sign_in(open_context(viewport=PHONE), "okafor@h.test")
    for path in (
        "/queue/radiology",
        "/consults/new",
        "/departments/radiology/settings",
    ):
        page.goto(path)
        height = page.locator("header.top").bounding_box()["height"]
        assert height <= 56, f"{path}: header {height:.0f} px high"
        expect(page.locator("header nav")).to_be_hidden()
        page.click("#menu-button")
        expect(page.locator("#menu-button")).to_have_attribute("aria-expanded", "true")
        expect(page.get_by_role("link", name="Radiology dashboard")).to_be_visible()
        expect(page.locator("#sign-out")).to_be_visible()
        assert page_width(page) <= PHONE["width"]


def page_width(page: Page) -> int:
    return page.evaluate("() => document.documentElement.scrollWidth")


def test_dashboard_tables_fit_a_laptop_and_their_scroll_areas_take_the_keyboard(
    hospital, open_context
):
    test_browser._seed(hospital)
    chief = sign_in(open_context(viewport=DESKTOP), "okafor@h.test")
    chief.goto("/departments/radiology/dashboard")
    expect(chief.locator("figure img.chart")).to_have_count(4)
    regions = chief.locator(".scroll")
    assert regions.count() >= 4
    for region in regions.all():
        hidden = region.evaluate("el => el.scrollWidth - el.clientWidth")
        assert hidden <= 0, f"{hidden} px of a table behind a scroll at 1280 px"
        expect(region).to_have_attribute("tabindex", "0")
        expect(region).to_have_attribute("role", "region")
        assert region.get_attribute("aria-labelledby") or region.get_attribute(
            "aria-label"
        )
