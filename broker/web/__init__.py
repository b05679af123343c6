"""The browser pages: server-rendered, thin views over the same domain functions as the API."""

from flask import Blueprint

from broker.extensions import db, login_manager
from broker.models import User

web = Blueprint("web", __name__)

login_manager.login_view = "web.sign_in"
login_manager.login_message = "Please sign in."


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """A deactivated user's session cookie signs no one in."""
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.active else None


from broker.web import (  # noqa: E402,F401  (registers the routes)
    admin,
    dashboard,
    oidc,
    schedule,
    views,
)
