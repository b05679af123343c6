"""Users, departments, memberships and API tokens: the broker's directory."""

import hashlib
import secrets
from datetime import timedelta
from functools import lru_cache

from flask import current_app
from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload
from werkzeug.security import check_password_hash, generate_password_hash

from broker import clock, sessions
from broker.consults.deadlines import default_policies
from broker.consults.errors import Conflict, Invalid, NotFound
from broker.extensions import db
from broker.models import ApiToken, Department, Membership, User


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def user_by_email(email: str) -> User | None:
    return db.session.scalar(
        select(User).where(func.lower(User.email) == normalise_email(email))
    )


def create_user(email: str, name: str, password: str, is_admin: bool = False) -> User:
    email = normalise_email(email)
    if "@" not in email:
        raise Invalid("email", "A valid email address is required.")
    if not (name or "").strip():
        raise Invalid("name", "A name is required.")
    if len(password or "") < 8:
        raise Invalid("password", "The password needs at least 8 characters.")
    if user_by_email(email) is not None:
        raise Conflict(f"A user with email {email} already exists.")
    user = User(email=email, name=name.strip(), is_admin=is_admin)
    user.set_password(password, current_app.config["PASSWORD_HASH_METHOD"])
    db.session.add(user)
    db.session.commit()
    return user


@lru_cache
def _dummy_hash(method: str) -> str:
    """A hash no password matches, made with the method (and cost) real ones use."""
    return generate_password_hash(secrets.token_hex(16), method=method)


def authenticate(email: str, password: str) -> User | None:
    """The user with this e-mail and password, or None.

    An unknown e-mail is checked against a dummy hash of the same cost, so the time
    taken does not tell which e-mails have accounts.
    """
    user = user_by_email(email)
    if user is None:
        method = current_app.config["PASSWORD_HASH_METHOD"]
        check_password_hash(_dummy_hash(method), password or "")
        return None
    return user if user.check_password(password or "") else None


def department_by_slug(slug: str) -> Department:
    department = db.session.scalar(select(Department).where(Department.slug == slug))
    if department is None:
        raise NotFound("No such department.")
    return department


def create_department(slug: str, name: str) -> Department:
    slug = (slug or "").strip().lower()
    if not slug or not slug.replace("-", "").isalnum():
        raise Invalid("slug", "A slug is lower-case letters, digits and dashes.")
    if not (name or "").strip():
        raise Invalid("name", "A name is required.")
    if db.session.scalar(select(Department).where(Department.slug == slug)):
        raise Conflict(f"A department with slug {slug} already exists.")
    department = Department(slug=slug, name=name.strip(), policies=default_policies())
    db.session.add(department)
    db.session.commit()
    return department


def add_member(department: Department, user: User, chief: bool = False) -> Membership:
    """Make the user a member (or chief) of the department; repeating it only updates the role."""
    membership = db.session.get(Membership, (user.id, department.id))
    if membership is None:
        membership = Membership(user=user, department=department)
        db.session.add(membership)
    membership.is_chief = chief
    db.session.commit()
    return membership


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user: User) -> str:
    """A new bearer token, valid for TOKEN_LIFETIME_HOURS. Only its digest is stored."""
    token = secrets.token_urlsafe(32)
    lifetime = timedelta(hours=current_app.config["TOKEN_LIFETIME_HOURS"])
    db.session.add(
        ApiToken(
            user=user, token_digest=_digest(token), expires_at=clock.now() + lifetime
        )
    )
    db.session.commit()
    return token


def _token_record(token: str) -> ApiToken | None:
    return db.session.scalar(
        select(ApiToken).where(ApiToken.token_digest == _digest(token))
    )


# A signed-in user comes with their memberships and their departments: every
# permission check reads them, so they are loaded in the token's own SELECT.
WITH_MEMBERSHIPS_OF_TOKEN = (
    joinedload(ApiToken.user, innerjoin=True)
    .joinedload(User.memberships)
    .joinedload(Membership.department, innerjoin=True)
)


def valid_token(token: str) -> ApiToken | None:
    """The token's record, unless it is unknown, expired or revoked; with its user,
    memberships and departments, in one SELECT."""
    at = clock.now()
    return (
        db.session.scalars(
            select(ApiToken)
            .where(
                ApiToken.token_digest == _digest(token),
                ApiToken.revoked_at.is_(None),
                or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > at),
            )
            .options(WITH_MEMBERSHIPS_OF_TOKEN)
        )
        .unique()
        .first()
    )


def user_for_token(token: str) -> User | None:
    """The token's user, unless it is unknown, expired or revoked."""
    record = valid_token(token)
    return record.user if record is not None else None


def revoke_token(token: str) -> None:
    """Revoke the token; its sockets are disconnected (broker/sessions.py)."""
    record = _token_record(token)
    if record is not None and record.revoked_at is None:
        sessions.end_token(record)
