"""Browser tests of the work tool (issue 12): alerts counted once, the dense queue with
its filters and countdowns, the phone header, settings, the dashboard, and axe-core.

Uses the fixtures and helpers of test_browser.py (real Chromium, real server).
"""

import re
from datetime import UTC, datetime, timedelta

import requests
import test_browser
from playwright.sync_api import Page, expect
from test_browser import live, sign_in

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
    shift = {
        "user_id": hospital.castillo.user_id,
        "role": "primary",
        "starts_at": (now - timedelta(hours=1)).isoformat(),
        "ends_at": (now + timedelta(hours=8)).isoformat(),
    }
    assert (
        hospital.okafor.post(
            "/api/departments/radiology/shifts", json=shift
        ).status_code
        == 201
    )
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
