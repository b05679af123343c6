"""Authentication for the API: a bearer token, or the browser's session for reads.

A session cookie may read (GET) the API, so signed-in pages can re-read what
they show after a reconnect; every change needs a bearer token, so a session
cookie can never drive an action from another site.
"""

from flask import g, request
from flask_login import current_user
from werkzeug.exceptions import Unauthorized

from broker import accounts, sessions
from broker.models import User


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def require_caller() -> None:
    """before_request for API blueprints: resolve the bearer token to a user, or 401."""
    token = bearer_token()
    record = accounts.valid_token(token) if token else None
    user = record.user if record is not None else None
    if record is not None:
        g.credential = sessions.Credential("token", record.id)
    if user is None and token is None and request.method in ("GET", "HEAD"):
        user = (
            current_user._get_current_object()
            if current_user.is_authenticated
            else None
        )
    if user is None:
        raise Unauthorized("Sign in: send 'Authorization: Bearer <token>'.")
    g.caller = user


def caller() -> User:
    return g.caller


def credential() -> "sessions.Credential":
    """What authenticated this request: its token, or the browser's session."""
    return g.credential
