"""Sign-in with the hospital's identity provider, against a real OpenID provider.

`oidc_provider` runs npm's oidc-provider (tests/oidc/provider.mjs) on Node.js,
with its own login and consent pages; the broker talks to it over HTTP exactly
as to Keycloak or Entra ID (discovery, keys, token endpoint). A person's steps
on the provider's pages are taken here with `requests`; tests/test_browser_staff.py
takes them in a browser.
"""

import json
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
import requests
from helpers import free_port

from broker import accounts
from broker.extensions import db

OIDC = Path(__file__).resolve().parent / "oidc"
SECRET = "broker-test-client-secret"
CALLBACK = "http://localhost/sign-in/oidc/callback"
ACCOUNTS = {
    "ito": {"email": "ito@h.test", "email_verified": True,
            "name": "Dr Ito"},
    "castillo": {"email": "castillo@h.test",
                 "email_verified": True, "name": "Dr Castillo"},
    "unverified": {"email": "castillo@h.test",
                   "email_verified": False, "name": "Mallory"},
}  # fmt: skip


@dataclass
class Provider:
    url: str
    process: subprocess.Popen

    def tamper(self, **changes) -> None:
        requests.post(f"{self.url}/__test/tamper", json=changes, timeout=5)


def start_provider(redirect_uris: list[str], log_path: Path) -> Provider:
    """The provider on a free port; `npm ci` first if tests/oidc has no node_modules."""
    if shutil.which("node") is None:
        pytest.fail("Node.js is needed for the OpenID tests (.ci/run installs it)")
    if not (OIDC / "node_modules").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=OIDC, check=True)
    port = free_port()
    config = {
        "port": port,
        "clients": [
            {
                "client_id": "broker",
                "client_secret": SECRET,
                "redirect_uris": redirect_uris,
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
            }
        ],
        "accounts": ACCOUNTS,
    }
    log = open(log_path, "wb")  # noqa: SIM115 (closed with the process)
    process = subprocess.Popen(
        ["node", "provider.mjs"], cwd=OIDC, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "PROVIDER_CONFIG": json.dumps(config)},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(url + "/.well-known/openid-configuration", timeout=1)
            return Provider(url, process)
        except requests.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(log_path.read_text()) from None
            time.sleep(0.1)


@pytest.fixture
def provider_redirect_uris() -> list[str]:
    return [CALLBACK]


@pytest.fixture
def oidc_provider(tmp_path, provider_redirect_uris):
    provider = start_provider(provider_redirect_uris, tmp_path / "provider.log")
    yield provider
    provider.process.terminate()
    provider.process.wait(timeout=10)


@pytest.fixture
def create_users() -> bool:
    return False


@pytest.fixture
def app_settings(oidc_provider, create_users):
    return {
        "OIDC_ISSUER": oidc_provider.url,
        "OIDC_CLIENT_ID": "broker",
        "OIDC_CLIENT_SECRET": SECRET,
        "OIDC_CREATE_USERS": create_users,
    }


def _form(page: requests.Response) -> tuple[str, dict]:
    """The first form of a provider page: its absolute action and its hidden fields."""
    action = re.search(r'<form[^>]*action="([^"]+)"', page.text).group(1)
    hidden = dict(
        re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"',
                   page.text)
    )  # fmt: skip
    return urljoin(page.url, action), hidden


def _follow(browser: requests.Session, response: requests.Response):
    """Follow the provider's redirects until it sends the browser back to the broker."""
    while response.is_redirect:
        location = urljoin(response.url, response.headers["Location"])
        if location.startswith(CALLBACK):
            return location
        response = browser.get(location, allow_redirects=False)
    return response


def provider_says_yes(client, login: str) -> str:
    """Start the sign-in at the broker, sign in and consent on the provider's own pages;
    answers the callback address (with code and state) the provider redirects to."""
    start = client.get("/sign-in/oidc")
    assert start.status_code == 302, start.data
    browser = requests.Session()
    page = _follow(browser, browser.get(start.location, allow_redirects=False))
    action, hidden = _form(page)
    page = browser.post(
        action, data={**hidden, "login": login, "password": "anything"},
        allow_redirects=False,
    )  # fmt: skip
    page = _follow(browser, page)
    if isinstance(page, str):
        return page
    action, hidden = _form(page)  # the consent page
    answer = _follow(browser, browser.post(action, data=hidden, allow_redirects=False))
    assert isinstance(answer, str), answer.text
    return answer


def come_back(client, callback: str):
    return client.get(callback.removeprefix("http://localhost"))


def signed_in_as(client) -> str | None:
    me = client.get("/api/me")
    return me.json["email"] if me.status_code == 200 else None


def test_a_user_signs_in_through_the_provider(client, hospital):
    response = come_back(client, provider_says_yes(client, "castillo"))
    assert response.status_code == 302, response.data
    assert signed_in_as(client) == "castillo@h.test"


def test_the_code_flow_uses_pkce_state_and_nonce(client, hospital):
    start = client.get("/sign-in/oidc")
    asked = parse_qs(urlparse(start.location).query)
    assert asked["response_type"] == ["code"]
    assert asked["code_challenge_method"] == ["S256"]
    assert {"state", "nonce", "code_challenge"} <= set(asked)


def test_a_user_is_matched_by_subject_after_the_first_time(app, client, hospital):
    come_back(client, provider_says_yes(client, "castillo"))
    with app.app_context():
        user = accounts.user_by_email("castillo@h.test")
        assert user.oidc_subject == "castillo"  # the provider's subject: its login
        user.email = "m.castillo@h.test"  # the hospital renamed the address here
        db.session.commit()
    client.post("/sign-out")
    again = app.test_client()
    assert come_back(again, provider_says_yes(again, "castillo")).status_code == 302
    assert signed_in_as(again) == "m.castillo@h.test"


def test_a_bad_state_is_refused(client, hospital):
    callback = provider_says_yes(client, "castillo")
    forged = re.sub(r"state=[^&]+", "state=forged", callback)
    response = come_back(client, forged)
    assert response.status_code == 401
    assert b"Sign-in refused" in response.data
    assert signed_in_as(client) is None


def test_a_replayed_code_is_refused(app, client, hospital):
    callback = provider_says_yes(client, "castillo")
    cookie = client.get_cookie("session").value  # holds the state, before it is used
    assert come_back(client, callback).status_code == 302
    replayer = app.test_client()
    replayer.set_cookie("session", cookie)
    response = come_back(replayer, callback)
    assert response.status_code == 401
    assert signed_in_as(replayer) is None


def test_an_id_token_for_another_audience_is_refused(client, hospital, oidc_provider):
    # Signed with the provider's own key, but for another application.
    oidc_provider.tamper(aud="another-application", azp="another-application")
    response = come_back(client, provider_says_yes(client, "castillo"))
    assert response.status_code == 401
    assert signed_in_as(client) is None


def test_an_unverified_email_matches_no_one(client, hospital):
    response = come_back(client, provider_says_yes(client, "unverified"))
    assert response.status_code == 401
    assert b"not verified your email" in response.data
    assert signed_in_as(client) is None


def test_a_deactivated_user_is_refused_though_the_provider_says_yes(client, hospital):
    hospital.admin.client.patch(
        f"/api/users/{hospital.castillo.user_id}",
        headers=hospital.admin.headers,
        json={"active": False},
    )
    response = come_back(client, provider_says_yes(client, "castillo"))
    assert response.status_code == 401
    assert b"deactivated" in response.data
    assert signed_in_as(client) is None


def test_someone_unknown_is_refused_with_a_clear_page(client, hospital):
    response = come_back(client, provider_says_yes(client, "ito"))
    assert response.status_code == 401
    assert b"no account here for ito@h.test" in response.data


@pytest.mark.parametrize("create_users", [True])
def test_someone_unknown_is_created_in_no_department(client, hospital):
    assert come_back(client, provider_says_yes(client, "ito")).status_code == 302
    me = client.get("/api/me").json
    assert (me["email"], me["name"], me["departments"]) == ("ito@h.test", "Dr Ito", [])


@pytest.mark.parametrize("create_users", [True])
def test_a_provider_user_makes_a_personal_token(client, hospital):
    come_back(client, provider_says_yes(client, "ito"))
    page = client.get("/account")
    csrf = re.search(rb'name="token-csrf_token"[^>]*value="([^"]+)"', page.data)
    made = client.post(
        "/account",
        data={
            "token-csrf_token": csrf.group(1).decode(),
            "token-name": "laptop",
            "token-days": "30",
        },
    )
    assert made.status_code == 200, made.data
    token = re.search(rb'id="new-token">([^<]+)<', made.data).group(1).decode()
    me = client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json["email"] == "ito@h.test"
