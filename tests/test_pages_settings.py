"""Department settings through the pages (issue 12: 6): every error at once, shift
times with their year when not this year, and the two-week schedule."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from test_pages import csrf_token, sign_in

from broker import clock


@pytest.fixture
def browser(app):
    """A fresh cookie jar, like a second browser."""
    return app.test_client()


def policy_form(**changes) -> dict:
    minutes = {
        f"policy-{u}_{k}": str(v)
        for u, (c, a, f) in {
            "stat": (15, 60, 60),
            "urgent": (60, 240, 240),
            "routine": (480, 2880, 2880),
        }.items()
        for k, v in (("claim", c), ("answer", a), ("followup", f))
    }
    return {**minutes, **{f"policy-{k}": v for k, v in changes.items()}}


def test_answer_before_claim_is_shown_with_the_other_field_errors(hospital, browser):
    sign_in(browser, "okafor@h.test")
    page = browser.get("/departments/radiology/settings")

    sent = browser.post(
        "/departments/radiology/policy",
        data={
            "policy-csrf_token": csrf_token(page.text),
            **policy_form(stat_claim="30", stat_answer="10", routine_followup="x"),
        },
    )

    assert sent.status_code == 422
    assert 'id="policy-stat_answer-error"' in sent.text
    assert 'id="policy-routine_followup-error"' in sent.text
    assert re.search(
        r"answer.*claim",
        sent.text.split('id="policy-stat_answer-error"')[1][:300],
        re.I,
    )


def add_shift(hospital, starts_at: datetime, ends_at: datetime, role="primary"):
    return hospital.okafor.post(
        "/api/departments/radiology/shifts",
        json={
            "user_id": hospital.castillo.user_id,
            "role": role,
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
        },
    )


def test_a_shift_not_this_year_is_listed_with_its_year(hospital, browser):
    next_year = clock.now().year + 1
    starts = datetime(next_year, 1, 1, 8, tzinfo=UTC)
    assert add_shift(hospital, starts, starts + timedelta(hours=12)).status_code == 201
    sign_in(browser, "okafor@h.test")

    page = browser.get("/departments/radiology/settings").text

    assert f"01 Jan {next_year} 08:00" in page
    assert f"01 Jan {next_year} 20:00" in page


def test_a_shift_of_decades_is_refused_on_the_page(hospital, browser):
    sign_in(browser, "okafor@h.test")
    page = browser.get("/departments/radiology/settings")
    sent = browser.post(
        "/departments/radiology/shifts",
        data={"csrf_token": csrf_token(page.text),
              "shift-user_id": str(hospital.castillo.user_id), "shift-role": "primary",
              "shift-starts_at": "1999-01-01T00:00", "shift-ends_at": "2099-01-01T00:00"},
    )  # fmt: skip
    assert sent.status_code == 422
    assert "at most 14 days" in sent.text
    assert hospital.okafor.get("/api/departments/radiology/shifts").json == []


def test_the_schedule_shows_this_week_and_next_by_day_and_role(hospital, browser):
    now = clock.now().replace(minute=0, second=0, microsecond=0)
    assert add_shift(hospital, now, now + timedelta(hours=8)).status_code == 201
    later = now + timedelta(days=8)
    assert (
        add_shift(hospital, later, later + timedelta(hours=8), "backup").status_code
        == 201
    )
    sign_in(browser, "okafor@h.test")

    page = browser.get("/departments/radiology/settings").text

    weeks = re.findall(r'<table class="week"', page)
    assert len(weeks) == 2
    assert page.count("shift-block primary") >= 1
    assert page.count("shift-block backup") >= 1
    # The week view comes before the table of shifts.
    assert page.index('class="week"') < page.index('id="shift-table"')
