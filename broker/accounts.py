"""Users, departments, memberships and API tokens: the broker's directory.

Lookups and tokens live here; every change to people and departments is a
function of `broker/staff.py` (checked, logged, one transaction). The
`create_user`, `create_department` and `add_member` below are the command
line's (and the tests' and the demo's) way in: the same functions, with no
signed-in actor.
"""

import hashlib
import secrets
from datetime import timedelta
from functools import lru_cache

from flask import current_app
from sqlalchemy import bindparam, func, select
from werkzeug.security import check_password_hash, generate_password_hash

from broker import clock, sessions
from broker.consults.errors import NotFound
from broker.extensions import db
from broker.models import ApiToken, Department, Membership, User


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def user_by_email(email: str) -> User | None:
    return db.session.scalar(
        select(User).where(func.lower(User.email) == normalise_email(email))
    )


def create_user(email: str, name: str, password: str, is_admin: bool = False) -> User:
    from broker import staff

    return staff.create_user(None, email, name, password, admin=is_admin)


@lru_cache
def _dummy_hash(method: str) -> str:
    """A hash no password matches, made with the method (and cost) real ones use."""
    return generate_password_hash(secrets.token_hex(16), method=method)


def authenticate(email: str, password: str) -> User | None:
    """The active user with this e-mail and password, if local passwords are on.

    An unknown e-mail is checked against a dummy hash of the same cost, so the time
    taken does not tell which e-mails have accounts.
    """
    if not current_app.config["LOCAL_PASSWORDS"]:
        return None
    user = user_by_email(email)
    if user is None:
        method = current_app.config["PASSWORD_HASH_METHOD"]
        check_password_hash(_dummy_hash(method), password or "")
        return None
    if not user.check_password(password or "") or not user.active:
        return None
    return user


def department_by_slug(slug: str) -> Department:
    department = db.session.scalar(select(Department).where(Department.slug == slug))
    if department is None:
        raise NotFound("No such department.")
    return department


def create_department(slug: str, name: str) -> Department:
    from broker import staff

    return staff.create_department(None, slug, name)


def add_member(department: Department, user: User, chief: bool = False) -> Membership:
    """Make the user a member (or chief) of the department; repeating it only updates the role."""
    from broker import staff

    return staff.set_membership(None, department, user, chief)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    user: User, name: str | None = None, lifetime: timedelta | None = None
) -> str:
    """A new bearer token, valid for `lifetime` (default TOKEN_LIFETIME_HOURS).

    Only its digest is stored; the token is shown once.
    """
    token = secrets.token_urlsafe(32)
    lifetime = lifetime or timedelta(hours=current_app.config["TOKEN_LIFETIME_HOURS"])
    db.session.add(
        ApiToken(
            user=user,
            name=name,
            token_digest=_digest(token),
            expires_at=clock.now() + lifetime,
        )
    )
    db.session.commit()
    return token


def token_record(token: str) -> ApiToken | None:
    return db.session.scalar(
        select(ApiToken).where(ApiToken.token_digest == _digest(token))
    )


# Built once, so that SQLAlchemy computes its cache key once, not on every request.
_VALID_TOKEN = (
    select(ApiToken)
    .where(
        ApiToken.token_digest == bindparam("digest"),
        *sessions.token_in_force(bindparam("at")),
    )
    .options(sessions.with_signed_in_user(ApiToken.user))
)


def valid_token(token: str) -> ApiToken | None:
    """The token's record, unless it is unknown, expired or revoked, or its user
    deactivated; with its user, memberships and departments, in one SELECT."""
    found = db.session.scalars(
        _VALID_TOKEN, {"digest": _digest(token), "at": clock.now()}
    )
    record = found.unique().first()
    return record if record is not None and record.user.active else None


def user_for_token(token: str) -> User | None:
    """The token's user, unless it is unknown, expired or revoked, or the user deactivated."""
    record = valid_token(token)
    return record.user if record is not None else None


def revoke_token(token: str) -> None:
    """Revoke the token; its sockets are disconnected (broker/sessions.py)."""
    record = token_record(token)
    if record is not None and record.revoked_at is None:
        sessions.end_token(record)
