"""Browser pages."""

from flask import Blueprint, render_template

from broker.extensions import db, login_manager
from broker.models import User

web = Blueprint("web", __name__)


@web.get("/")
def index():
    return render_template("index.html")


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id))
