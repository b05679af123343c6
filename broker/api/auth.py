"""Bearer-token authentication for the API.

The API answers bearer tokens only; the browser pages use the login session.
Keeping the two apart means a session cookie can never be used to drive the
API from another site.
"""

from flask import g, request
from werkzeug.exceptions import Unauthorized

from broker import accounts
from broker.models import User


def bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def require_caller() -> None:
    """before_request for API blueprints: resolve the bearer token to a user, or 401."""
    token = bearer_token()
    user = accounts.user_for_token(token) if token else None
    if user is None:
        raise Unauthorized("Sign in: send 'Authorization: Bearer <token>'.")
    g.caller = user


def caller() -> User:
    return g.caller
