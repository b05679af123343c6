"""Staff come and go, in browsers (issue 14's "done when"), and sign-in through the
identity provider's own pages.

The helpers and fixtures (Chromium, a real server process, signed-in contexts)
are test_browser.py's.
"""

import re
from datetime import UTC, datetime, timedelta

import requests
from conftest import NEW_CONSULT
from helpers import server_process
from playwright.sync_api import Page, expect
from test_browser import (  # noqa: F401  (fixtures)
    LIVE,
    browser,
    live,
    open_context,
    sign_in,
)
from test_oidc import SECRET, start_provider

ITO_PASSWORD = "violet tractor museum"


def submit(page: Page, button: str, flash: str | re.Pattern) -> None:
    with page.expect_navigation():
        page.click(button)
    expect(page.locator("p.flash").filter(has_text=flash)).to_be_visible()


def local_input(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M")


def add_shift(page: Page, who: str, role: str, starts: datetime, ends: datetime):
    page.goto("/departments/neurology/settings")
    page.select_option("#shift-user_id", label=who)
    page.select_option("#shift-role", role)
    page.fill("#shift-starts_at", local_input(starts))
    page.fill("#shift-ends_at", local_input(ends))
    submit(page, "text=Add shift", "Shift added.")


def test_a_leaver_is_signed_out_and_their_consult_moves_to_the_primary(
    hospital,
    open_context,  # noqa: F811
    live_server_process,
):
    url = live_server_process.url
    admin = sign_in(open_context(), "admin@h.test")

    # The administrator creates a user and a department, and makes Dr Lee its chief.
    admin.goto("/admin/users")
    admin.fill("#email", "ito@h.test")
    admin.fill("#name", "Dr Ito")
    admin.fill("#password", ITO_PASSWORD)
    submit(admin, "#create-user", "Dr Ito created.")
    admin.goto("/admin/departments")
    admin.fill("#slug", "neurology")
    admin.fill("#name", "Neurology")
    submit(admin, "#create-department", "Neurology created.")
    admin.select_option("#user_id", label="Dr Lee <lee@h.test>")
    admin.check("#chief")
    submit(admin, "#add-member", "Dr Lee is now a chief.")

    # The chief adds Dr Ito as a member, and shifts: Lee primary now, Ito tomorrow.
    chief = sign_in(open_context(), "lee@h.test")
    chief.goto("/departments/neurology/members")
    chief.select_option("#user_id", label="Dr Ito <ito@h.test>")
    submit(chief, "#add-member", "Dr Ito is now a member.")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    add_shift(
        chief, "Dr Lee", "primary", now - timedelta(hours=1), now + timedelta(hours=8)
    )
    add_shift(
        chief, "Dr Ito", "primary", now + timedelta(hours=24), now + timedelta(hours=32)
    )

    # A consult arrives; Dr Ito claims it and keeps its page open.
    made = requests.post(
        f"{url}/api/consults",
        json={**NEW_CONSULT, "department": "neurology"},
        headers={"Authorization": f"Bearer {hospital.patel.token}"},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    consult_id = made.json()["id"]
    ito_context = open_context()
    ito = sign_in_with(ito_context, "ito@h.test", ITO_PASSWORD)
    ito.goto(f"/consults/{consult_id}")
    submit(ito, "text=Claim: I own this", "You own this consult now.")
    live(ito)
    token = requests.post(
        f"{url}/api/tokens",
        json={"email": "ito@h.test", "password": ITO_PASSWORD},
        timeout=10,
    ).json()["token"]
    chief.goto(f"/consults/{consult_id}")
    live(chief)

    # The administrator deactivates Dr Ito.
    admin.goto("/admin/users")
    admin.get_by_role("link", name="Dr Ito").click()
    submit(admin, "#deactivate", "Dr Ito is deactivated.")

    # The primary on call owns the consult now, is told live, and the timeline says why.
    expect(chief.locator("#notification-list")).to_contain_text(
        f"#{consult_id} to Neurology is yours now", timeout=LIVE
    )
    chief.reload()
    expect(chief.locator(".owner, .consult-owner").first).to_contain_text("Dr Lee")
    last = chief.locator("#timeline > li").last
    expect(last).to_have_class(re.compile("kind-assigned"))
    expect(last).to_contain_text("The broker")
    expect(last).to_contain_text("Dr Ito's account was deactivated")

    # Dr Ito's old session cookie and token are refused.
    again = ito_context.new_page()
    again.goto("/")
    expect(again).to_have_url(re.compile("/sign-in"))
    refused = requests.get(
        f"{url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert refused.status_code == 401


def test_a_deactivated_users_open_page_is_signed_out_within_a_second(
    hospital,
    open_context,  # noqa: F811
):
    castillo = live(sign_in(open_context(), "castillo@h.test"))
    response = hospital.admin.client.patch(
        f"/api/users/{hospital.castillo.user_id}",
        headers=hospital.admin.headers,
        json={"active": False},
    )
    assert response.status_code == 200
    # The page leaves for /sign-in only when the server ended its socket.
    expect(castillo).to_have_url(re.compile("/sign-in"), timeout=LIVE)


def sign_in_with(context, email: str, password: str) -> Page:
    page = context.new_page()
    page.goto("/sign-in")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#sign-in")
    page.wait_for_url(lambda u: "/sign-in" not in u)
    return page


def test_signing_in_through_the_providers_own_pages(
    hospital,
    browser,  # noqa: F811
    database_url,
    tmp_path,
):
    """The provider must know the server's address, and the server the provider's."""
    server = server_process(
        database_url,
        tmp_path / "server.log",
        OIDC_CLIENT_ID="broker",
        OIDC_CLIENT_SECRET=SECRET,
    )
    provider = start_provider(
        [f"{server.url}/sign-in/oidc/callback"], tmp_path / "provider.log"
    )
    try:
        server.env["OIDC_ISSUER"] = provider.url
        server.start()
        context = browser.new_context(base_url=server.url)
        page = context.new_page()
        page.goto("/sign-in")
        page.click("#sign-in-oidc")
        page.fill('input[name="login"]', "castillo")
        page.fill('input[name="password"]', "whatever the provider asks")
        page.click('button[type="submit"]')
        page.click('button[type="submit"]')  # the provider's consent page
        page.wait_for_url(re.compile(f"^{server.url}/(queue|consults|departments)"))
        expect(page.locator(".who")).to_contain_text("Dr Castillo")
        context.close()
    finally:
        if server.process is not None:
            server.stop()
        provider.process.terminate()
        provider.process.wait(timeout=10)
