"""Behind a TLS-terminating proxy (TRUSTED_PROXIES=1), as docs/nginx.conf sets it up.

The proxy tells the app the client's address, scheme and host in X-Forwarded-*
headers: sign-in forms work over HTTPS (Flask-WTF then insists on a same-origin
Referer, which the app's Referrer-Policy lets browsers send), answers carry HSTS,
and each client has its own sign-in allowance. The whole path through a real nginx
is tests/test_deploy.py.
"""

import pytest
from conftest import PASSWORD
from test_pages import csrf_token

ORIGIN = "https://broker.test:8443"  # a non-default port, kept by the proxy's Host
PROXIED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "broker.test:8443"}


@pytest.fixture
def app_settings():
    return {"TRUSTED_PROXIES": 1}


def proxied(address: str = "10.1.2.3", **headers) -> dict:
    return {**PROXIED, "X-Forwarded-For": address, **headers}


def sign_in_form(client, headers: dict, email="castillo@h.test"):
    token = csrf_token(client.get("/sign-in", headers=headers).text)
    return client.post(
        "/sign-in",
        data={"csrf_token": token, "email": email, "password": PASSWORD},
        headers=headers,
    )


def test_signing_in_over_https_works_with_the_referer_the_policy_lets_through(
    hospital, client
):
    page = client.get("/sign-in", headers=proxied())
    # A same-origin form post carries the page's address as its Referer.
    assert page.headers["Referrer-Policy"] == "same-origin"

    signed_in = sign_in_form(client, proxied(Referer=f"{ORIGIN}/sign-in"))

    assert signed_in.status_code == 302, signed_in.text
    assert signed_in.headers["Location"] == "/"


def test_a_form_over_https_without_a_same_origin_referer_is_refused(hospital, client):
    """Flask-WTF's strict referrer check stays on: it is what the policy serves."""
    missing = sign_in_form(client, proxied())
    elsewhere = sign_in_form(client, proxied(Referer="https://elsewhere.test/sign-in"))

    assert missing.status_code == 400
    assert elsewhere.status_code == 400


def test_answers_over_https_carry_hsts_and_plain_http_ones_do_not(hospital, client):
    over_https = client.get("/sign-in", headers=proxied())
    over_http = client.get("/sign-in", headers={"X-Forwarded-For": "10.1.2.3"})
    api = client.get("/api/me", headers={**hospital.patel.headers, **proxied()})

    assert over_https.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert api.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in over_http.headers


def test_each_client_behind_the_proxy_has_its_own_sign_in_allowance(
    hospital, app, client
):
    """At shift change, everyone comes through the one proxy address."""
    app.config["SIGN_IN_LIMIT_PER_ADDRESS"] = "5 per minute"

    def attempt(address):
        return client.post(
            "/api/tokens",
            json={"email": "castillo@h.test", "password": PASSWORD},
            headers=proxied(address),
        ).status_code

    others = [attempt(f"10.0.0.{n}") for n in range(1, 9)]
    one = [attempt("10.9.9.9") for _ in range(6)]

    assert others == [201] * 8
    assert one == [201] * 5 + [429]
