"""Sign-in sessions kept on the server, and the credentials (sessions, API tokens) a user holds.

A browser's cookie carries only a random key; the database keeps its digest, the
user, when it started and was last used, the address and the browser. A session
ends when its user signs out, ends it (or all of theirs) on /account/sessions,
an administrator ends all of the user's, or it is idle for SESSION_IDLE_MINUTES
or older than SESSION_ABSOLUTE_HOURS; both limits are checked on every use.

When a session or token ends, `credential_ended` is announced (after the commit)
with the credential's room name: the live layer disconnects its sockets.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from blinker import Namespace
from flask import current_app
from sqlalchemy import bindparam, event, or_, select, update
from sqlalchemy.orm import Session, joinedload

from broker import clock
from broker.consults.errors import NotFound
from broker.extensions import db
from broker.models import ApiToken, Membership, User, UserSession

signals = Namespace()
credential_ended = signals.signal("credential-ended")

# last_used_at is written at most this often per session: a page request costs one
# indexed read, and one write a minute while in use.
TOUCH_EVERY = timedelta(minutes=1)
BROWSER_LENGTH = 200


@dataclass(frozen=True)
class Credential:
    """What authenticated a caller: a session or a token, by id."""

    kind: str  # "session" or "token"
    id: int

    @property
    def room(self) -> str:
        return f"{self.kind}:{self.id}"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def idle_limit() -> timedelta:
    return timedelta(minutes=current_app.config["SESSION_IDLE_MINUTES"])


def absolute_limit() -> timedelta:
    return timedelta(hours=current_app.config["SESSION_ABSOLUTE_HOURS"])


def start(user: User, address: str | None, browser: str | None) -> str:
    """A new session for the user; returns the key for the cookie (shown only once)."""
    key = secrets.token_urlsafe(32)
    at = clock.now()
    db.session.add(
        UserSession(
            user=user,
            key_digest=digest(key),
            started_at=at,
            last_used_at=at,
            address=(address or "")[:64],
            browser=(browser or "")[:BROWSER_LENGTH],
        )
    )
    db.session.commit()
    return key


def why_invalid(record: UserSession) -> str | None:
    """None while the session may be used; else "ended", "idle" or "expired"."""
    at = clock.now()
    if record.ended_at is not None:
        return "ended"
    if at - record.started_at >= absolute_limit():
        return "expired"
    if at - record.last_used_at > idle_limit():
        return "idle"
    return None


def with_signed_in_user(user_relation):
    """Loads a credential's user (a session's or a token's) in the credential's own
    SELECT, with their memberships and departments: every permission check reads them."""
    return (
        joinedload(user_relation, innerjoin=True)
        .joinedload(User.memberships)
        .joinedload(Membership.department, innerjoin=True)
    )


# Built once, so that SQLAlchemy computes its cache key once, not on every request.
_BY_KEY = (
    select(UserSession)
    .where(UserSession.key_digest == bindparam("digest"))
    .options(with_signed_in_user(UserSession.user))
)


def find(key: str | None) -> tuple[UserSession | None, str | None]:
    """(the session, None) if the key's session may be used; else (None, why).

    One indexed read. A session found idle or expired is ended there and then.
    """
    if not key:
        return None, None
    record = db.session.scalars(_BY_KEY, {"digest": digest(key)}).unique().first()
    if record is None:
        return None, "ended"
    why = why_invalid(record)
    if why is not None:
        if record.ended_at is None:
            end(record)
        return None, why
    return record, None


def touch(record: UserSession) -> None:
    """Count a use of the session (a page request); written at most once a minute."""
    at = clock.now()
    if at - record.last_used_at >= TOUCH_EVERY:
        db.session.execute(
            update(UserSession)
            .where(UserSession.id == record.id)
            .values(last_used_at=at)
        )
        db.session.commit()
        record.last_used_at = at


def end(record: UserSession) -> None:
    _end_all([record], [])


def end_by_key(key: str | None) -> None:
    """Sign-out: end the session this key opened (if it is still going)."""
    if key:
        record = db.session.scalar(
            select(UserSession).where(UserSession.key_digest == digest(key))
        )
        if record is not None and record.ended_at is None:
            end(record)


def end_token(record: ApiToken) -> None:
    _end_all([], [record])


def _end_all(records: list[UserSession], tokens: list[ApiToken]) -> list[Credential]:
    """End these sessions and tokens in one transaction; then their sockets go."""
    ended = _mark_ended(records, tokens)
    db.session.commit()
    return ended


def _mark_ended(records: list[UserSession], tokens: list[ApiToken]) -> list[Credential]:
    """Mark them ended in the current transaction; their sockets are closed once it
    commits (and never, if it rolls back)."""
    at = clock.now()
    ended = []
    for record in records:
        record.ended_at = at
        ended.append(Credential("session", record.id))
    for token in tokens:
        token.revoked_at = at
        ended.append(Credential("token", token.id))
    db.session.info.setdefault(_ENDED, []).extend(ended)
    return ended


_ENDED = "broker.credentials_ended"


@event.listens_for(Session, "after_commit")
def _announce_ended(session: Session) -> None:
    for credential in session.info.pop(_ENDED, []):
        credential_ended.send(credential)


@event.listens_for(Session, "after_rollback")
def _forget_ended(session: Session) -> None:
    session.info.pop(_ENDED, None)


def _session_in_force() -> tuple:
    """The SQL form of `why_invalid(...) is None`."""
    at = clock.now()
    return (
        UserSession.ended_at.is_(None),
        UserSession.started_at > at - absolute_limit(),
        UserSession.last_used_at >= at - idle_limit(),
    )


def token_in_force(at=None) -> tuple:
    """The SQL form of `ApiToken.valid` at `at`: an instant, or a bind parameter for a
    statement built once (now, if not given)."""
    at = clock.now() if at is None else at
    return (
        ApiToken.revoked_at.is_(None),
        or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > at),
    )


def _open_sessions(user: User):
    return select(UserSession).where(
        UserSession.user_id == user.id, *_session_in_force()
    )


def _open_tokens(user: User):
    return select(ApiToken).where(ApiToken.user_id == user.id, *token_in_force())


def of(user: User) -> dict:
    """The user's sessions and tokens still in force, newest first."""
    return {
        "sessions": list(
            db.session.scalars(_open_sessions(user).order_by(UserSession.id.desc()))
        ),
        "tokens": list(
            db.session.scalars(_open_tokens(user).order_by(ApiToken.id.desc()))
        ),
    }


def end_one(user: User, kind: str, credential_id: int) -> None:
    """End one of the user's own sessions ("session") or tokens ("token")."""
    model = UserSession if kind == "session" else ApiToken
    record = db.session.get(model, credential_id)
    if record is None or record.user_id != user.id:
        raise NotFound(f"No such {kind} of yours.")
    if kind == "session":
        if record.ended_at is None:
            _end_all([record], [])
    elif record.revoked_at is None:
        _end_all([], [record])


def end_all(user: User) -> list[Credential]:
    """End every session and token of the user: signed out everywhere, sockets closed."""
    ended = end_all_in_transaction(user)
    db.session.commit()
    return ended


def end_all_in_transaction(
    user: User, keeping: Credential | None = None
) -> list[Credential]:
    """`end_all` (but `keeping`, the one asking) as part of the caller's transaction:
    a deactivation or a password change. The sockets close once it commits."""
    records = db.session.scalars(
        select(UserSession).where(
            UserSession.user_id == user.id, UserSession.ended_at.is_(None)
        )
    )
    tokens = db.session.scalars(
        select(ApiToken).where(
            ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)
        )
    )
    return _mark_ended(
        [r for r in records if Credential("session", r.id) != keeping],
        [t for t in tokens if Credential("token", t.id) != keeping],
    )


def user_of(credential: Credential) -> User | None:
    """The credential's user while it is in force (one read by primary key), else None."""
    model = UserSession if credential.kind == "session" else ApiToken
    record = db.session.get(
        model,
        credential.id,
        options=[joinedload(model.user)],
        populate_existing=True,
    )
    if credential.kind == "session":
        valid = record is not None and why_invalid(record) is None
    else:
        valid = record is not None and record.valid
    return record.user if valid else None


def still_valid(credentials: set[Credential]) -> set[Credential]:
    """Which of these credentials are in force: one read per kind, however many."""
    valid = set()
    for kind, model, in_force in (
        ("session", UserSession, _session_in_force),
        ("token", ApiToken, token_in_force),
    ):
        ids = [c.id for c in credentials if c.kind == kind]
        if ids:
            found = select(model.id).where(model.id.in_(ids), *in_force())
            valid |= {Credential(kind, i) for i in db.session.scalars(found)}
    return valid
