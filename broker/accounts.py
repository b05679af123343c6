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

from flask import current_app
from sqlalchemy import func, select, update

from broker import clock
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


def authenticate(email: str, password: str) -> User | None:
    """The active user with this e-mail and password, if local passwords are on."""
    if not current_app.config["LOCAL_PASSWORDS"]:
        return None
    user = user_by_email(email)
    if user is None or not user.active or not user.check_password(password or ""):
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


def user_for_token(token: str) -> User | None:
    """The token's user, unless it is unknown, expired or revoked, or the user deactivated."""
    record = token_record(token)
    if record is None or not record.valid or not record.user.active:
        return None
    return record.user


def revoke_token(token: str) -> None:
    record = token_record(token)
    if record is not None and record.revoked_at is None:
        record.revoked_at = clock.now()
        db.session.commit()


def revoke_tokens_of(user: User, keeping: ApiToken | None = None) -> None:
    """Revoke every live token of the user (but `keeping`), in the caller's transaction."""
    query = update(ApiToken).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)
    )
    if keeping is not None:
        query = query.where(ApiToken.id != keeping.id)
    db.session.execute(query.values(revoked_at=clock.now()))
