"""The browser pages: server-rendered, thin views over the same domain functions as the API."""

from flask import Blueprint, g, request, session

from broker import sessions
from broker.extensions import login_manager
from broker.models import User

web = Blueprint("web", __name__)

login_manager.login_view = "web.sign_in"
login_manager.login_message = "Please sign in."
# Sessions are kept and ended on the server (broker/sessions.py), not marked in the cookie.
login_manager.session_protection = None


# Requests that do not count as the user's activity (they do not hold off the idle limit).
NOT_A_USE = ("/api", "/static", "/socket.io")


@login_manager.request_loader
def load_user(_request) -> User | None:
    """The user of the session whose key the cookie carries, while it is in force.

    One indexed read; a page request also counts as a use (written once a minute).
    g.credential is what authenticated the request; g.session_ended says why not.
    """
    record, why = sessions.find(session.get("key"))
    if record is None:
        g.session_ended = why
        return None
    if not record.user.active:  # a deactivated user's session signs no one in
        return None
    g.credential = sessions.Credential("session", record.id)
    if not request.path.startswith(NOT_A_USE) and request.args.get("fragment") != "1":
        sessions.touch(record)
    return record.user


from broker.web import (  # noqa: E402,F401  (registers the routes)
    account,
    admin,
    dashboard,
    oidc,
    schedule,
    views,
)
