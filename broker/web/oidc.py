"""Sign-in with the hospital's identity provider (OpenID Connect, through Authlib).

The authorization code flow with PKCE (S256); Authlib keeps the state, the nonce
and the code verifier in the session, checks the state on the way back, and
verifies the ID token (signature against the provider's keys from its discovery
document, issuer, audience, expiry, nonce). Which user it is, is `staff.identify`.
"""

from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import (
    Flask,
    abort,
    current_app,
    redirect,
    render_template,
    session,
    url_for,
)
from joserfc.errors import JoseError

from broker.consults.errors import NotAllowed
from broker.staff import identify
from broker.web import web
from broker.web.views import begin_session

PROVIDER = "hospital"


def init_oidc(app: Flask) -> None:
    """Register the provider when OIDC_ISSUER is set (discovery at its well-known address)."""
    if not app.config["OIDC_ISSUER"]:
        return
    oauth = OAuth(app)
    oauth.register(
        PROVIDER,
        client_id=app.config["OIDC_CLIENT_ID"],
        client_secret=app.config["OIDC_CLIENT_SECRET"],
        server_metadata_url=app.config["OIDC_ISSUER"].rstrip("/")
        + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": "openid email profile",
            "code_challenge_method": "S256",
        },
    )
    app.extensions["broker_oidc"] = oauth


def _client():
    oauth = current_app.extensions.get("broker_oidc")
    if oauth is None:
        abort(404)
    return oauth.create_client(PROVIDER)


def refused(message: str):
    return render_template("sign_in_refused.html", message=message), 401


@web.get("/sign-in/oidc")
def oidc_start():
    return _client().authorize_redirect(url_for("web.oidc_callback", _external=True))


@web.get("/sign-in/oidc/callback")
def oidc_callback():
    client = _client()
    try:
        token = client.authorize_access_token()
    except (OAuthError, JoseError, ValueError) as error:
        current_app.logger.info("OpenID sign-in refused: %s", error)
        return refused(
            "The identity provider's answer could not be accepted (it may have been "
            "used already, or come from another sign-in). Please sign in again."
        )
    claims = token.get("userinfo") or {}
    try:
        user = identify(
            str(claims["sub"]),
            claims.get("email"),
            claims.get("email_verified") is True,
            claims.get("name"),
            current_app.config["OIDC_CREATE_USERS"],
        )
    except NotAllowed as error:
        return refused(error.message)
    begin_session(user)
    session["signed_in_by"] = "oidc"
    return redirect(url_for("web.home"))
