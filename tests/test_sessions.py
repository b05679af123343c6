"""Sessions kept on the server: sign-out, idle and absolute limits, seeing and ending them.

The replay tests run against a real server process (`live_server_process`): a
browser's cookie, copied before sign-out (or before an end), is sent again as
an attacker would.
"""

import base64
import re
import zlib
from datetime import timedelta

import pytest
import requests
from helpers import PASSWORD, csrf_token, sign_in, signed_in_session

from broker import clock

WAIT = 10


class Browser:
    """A requests.Session signed in through the real sign-in page."""

    def __init__(self, url: str, email: str):
        self.url = url
        self.http = signed_in_session(url, email)

    @property
    def cookie(self) -> str:
        return self.http.cookies.get("session")

    def get(self, path, **kwargs):
        return self.http.get(
            self.url + path, allow_redirects=False, timeout=WAIT, **kwargs
        )

    def post_form(self, page_path, action_path):
        """POST a button's form found on page_path (its CSRF token), as a click does."""
        token = csrf_token(self.get(page_path).text)
        return self.http.post(
            self.url + action_path,
            data={"csrf_token": token},
            allow_redirects=False,
            timeout=WAIT,
        )


def replay(url: str, cookie: str, path: str):
    """The request an attacker holding a copy of the cookie sends."""
    return requests.get(
        url + path, cookies={"session": cookie}, allow_redirects=False, timeout=WAIT
    )


def test_a_cookie_copied_before_sign_out_is_refused_after_it(
    hospital, live_server_process
):
    url = live_server_process.url
    browser = Browser(url, "castillo@h.test")
    stolen = browser.cookie
    assert replay(url, stolen, "/api/consults").status_code == 200
    assert replay(url, stolen, "/queue/radiology").status_code == 200

    signed_out = browser.post_form("/consults", "/sign-out")

    assert signed_out.status_code == 302
    assert replay(url, stolen, "/api/consults").status_code == 401
    page = replay(url, stolen, "/queue/radiology")
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/sign-in")


def test_using_a_session_does_not_hand_out_a_fresh_cookie(
    hospital, live_server_process
):
    browser = Browser(live_server_process.url, "castillo@h.test")

    for path in ("/api/me", "/api/consults"):
        response = browser.get(path)
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers, path


def test_the_cookie_carries_only_a_random_key_not_the_user(
    hospital, live_server_process
):
    cookie = Browser(live_server_process.url, "castillo@h.test").cookie
    payload = cookie.split(".")[1] if cookie.startswith(".") else cookie.split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    content = zlib.decompress(raw) if cookie.startswith(".") else raw

    assert b'"key"' in content
    assert b"_user_id" not in content


def test_a_session_idle_for_too_long_is_refused_even_with_its_cookie(
    hospital, app, client
):
    start = clock.now()
    with clock.frozen_at(start):
        sign_in(client, "castillo@h.test")
        cookie = client.get_cookie("session").value
    with clock.frozen_at(start + timedelta(minutes=14)):
        assert client.get("/api/me").status_code == 200  # an API read: not a use
    with clock.frozen_at(start + timedelta(minutes=15, seconds=1)):
        replayed = app.test_client()
        replayed.set_cookie("session", cookie)
        assert replayed.get("/api/me").status_code == 401
        # Ended on the server, not only refused: it is no longer among the user's.
        held = hospital.castillo.get("/api/sessions").json
        assert [c["kind"] for c in held] == ["token"]


def test_a_session_ends_after_its_absolute_limit_however_busy(hospital, app, client):
    app.config["SESSION_ABSOLUTE_HOURS"] = 1
    start = clock.now()
    with clock.frozen_at(start):
        sign_in(client, "castillo@h.test")
    for minutes in (10, 20, 30, 40, 50, 59):
        with clock.frozen_at(start + timedelta(minutes=minutes)):
            assert client.get("/consults").status_code == 200, minutes
    with clock.frozen_at(start + timedelta(hours=1)):
        page = client.get("/consults")
        api = client.get("/api/me")

    assert page.status_code == 302
    assert page.headers["Location"].startswith("/sign-in")
    assert api.status_code == 401


def test_a_user_lists_their_sessions_and_tokens_and_no_one_elses(hospital, app):
    browser = app.test_client()
    sign_in(browser, "castillo@h.test")
    sign_in(app.test_client(), "nguyen@h.test")

    held = hospital.castillo.get("/api/sessions")

    assert held.status_code == 200
    kinds = sorted(c["kind"] for c in held.json)
    assert kinds == ["session", "token"]
    (mine,) = [c for c in held.json if c["kind"] == "session"]
    assert mine["address"] == "127.0.0.1"
    assert mine["browser"].startswith("Werkzeug")
    assert mine["started_at"] and mine["last_used_at"]
    (token,) = [c for c in held.json if c["kind"] == "token"]
    assert token["current"] is True
    # The page shows the same.
    page = browser.get("/account/sessions")
    assert page.status_code == 200
    assert mine["id"] in page.text and token["id"] in page.text


def test_ending_one_session_refuses_its_cookie_and_keeps_the_others(hospital, app):
    first, second = app.test_client(), app.test_client()
    sign_in(first, "castillo@h.test")
    sign_in(second, "castillo@h.test")
    sessions = [
        c for c in hospital.castillo.get("/api/sessions").json if c["kind"] == "session"
    ]
    oldest = sessions[-1]["id"]

    assert hospital.castillo.delete(f"/api/sessions/{oldest}").status_code == 204

    assert first.get("/api/me").status_code == 401
    assert second.get("/api/me").status_code == 200
    assert hospital.castillo.get("/api/me").status_code == 200


def test_someone_elses_session_cannot_be_ended(hospital, app):
    sign_in(app.test_client(), "nguyen@h.test")
    (theirs,) = [
        c for c in hospital.nguyen.get("/api/sessions").json if c["kind"] == "session"
    ]

    for credential_id in (theirs["id"], "token-999", "nonsense", "session-x"):
        response = hospital.castillo.delete(f"/api/sessions/{credential_id}")
        assert response.status_code == 404, credential_id
    assert hospital.nguyen.get("/api/sessions").json[0]["id"] == theirs["id"]


def test_ending_all_ends_every_session_and_token_of_the_user(hospital, app):
    browser = app.test_client()
    sign_in(browser, "castillo@h.test")
    other_token = (
        app.test_client()
        .post("/api/tokens", json={"email": "castillo@h.test", "password": PASSWORD})
        .json["token"]
    )

    assert hospital.castillo.delete("/api/sessions").status_code == 204

    assert browser.get("/api/me").status_code == 401
    assert hospital.castillo.get("/api/me").status_code == 401
    other = {"Authorization": f"Bearer {other_token}"}
    assert app.test_client().get("/api/me", headers=other).status_code == 401
    assert hospital.nguyen.get("/api/me").status_code == 200


def test_the_sessions_page_ends_one_and_then_all(hospital, app):
    browser, other = app.test_client(), app.test_client()
    sign_in(browser, "castillo@h.test")
    sign_in(other, "castillo@h.test")
    page = browser.get("/account/sessions").text
    others_id = re.findall(r'<tr id="(session-\d+)"', page)[0]  # newest first: `other`

    ended = browser.post(
        f"/account/sessions/{others_id}/end", data={"csrf_token": csrf_token(page)}
    )
    assert ended.status_code == 302
    assert other.get("/api/me").status_code == 401
    assert browser.get("/api/me").status_code == 200

    page = browser.get("/account/sessions").text
    all_ended = browser.post(
        "/account/sessions/end-all", data={"csrf_token": csrf_token(page)}
    )
    assert all_ended.headers["Location"] == "/sign-in"
    assert browser.get("/api/me").status_code == 401
    assert hospital.castillo.get("/api/me").status_code == 401


def test_an_admin_ends_all_of_a_users_sessions_and_tokens(hospital, app):
    browser = app.test_client()
    sign_in(browser, "castillo@h.test")
    path = f"/api/users/{hospital.castillo.user_id}/sessions"

    assert hospital.okafor.delete(path).status_code == 403
    assert hospital.castillo.get("/api/me").status_code == 200
    assert hospital.admin.delete("/api/users/9999/sessions").status_code == 404
    assert hospital.admin.delete(path).status_code == 204

    assert browser.get("/api/me").status_code == 401
    assert hospital.castillo.get("/api/me").status_code == 401
    assert hospital.admin.get("/api/me").status_code == 200


@pytest.mark.parametrize("method", ["get", "delete"])
def test_sessions_need_a_signed_in_caller(client, method):
    assert getattr(client, method)("/api/sessions").status_code == 401
