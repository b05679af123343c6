"""Personal, persistent alerts. Written in the same transaction as the action that causes them.

Messages are written by the system and name the consult by number and
department only: never the patient reference or the question.
"""

from sqlalchemy import select, update

from broker import clock
from broker.bulk import insert_rows
from broker.consults.changes import mark_notified
from broker.consults.errors import NotFound
from broker.consults.transactions import transaction
from broker.extensions import db
from broker.models import Consult, Notification, User


def describe(consult: Consult) -> str:
    """'stat consult #12 to Radiology': how alerts name a consult, without patient data."""
    return f"{consult.urgency} consult #{consult.id} to {consult.department.name}"


def alert(notices: list[dict]) -> None:
    """Insert notifications in one statement: dicts of user_id, consult_id, kind, message.

    The inserted rows come back whole, so their live push reads nothing.
    """
    if not notices:
        return
    at = clock.now()
    rows = [{**n, "message": n["message"][:300], "created_at": at} for n in notices]
    table = Notification.__table__
    for row in insert_rows(db.session, table, rows, returning=list(table.c)):
        mark_notified(db.session, dict(row._mapping))


def notices_for(user_ids, consult_id: int, kind: str, message: str) -> list[dict]:
    """One notice per user, even if a user is named twice (or as None: no one)."""
    return [
        {"user_id": u, "consult_id": consult_id, "kind": kind, "message": message}
        for u in dict.fromkeys(u for u in user_ids if u is not None)
    ]


def notify(user_ids, consult: Consult, kind: str, message: str) -> None:
    alert(notices_for(user_ids, consult.id, kind, message))


def inbox(user: User, unread_only: bool = False):
    query = select(Notification).where(Notification.user_id == user.id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return query.order_by(Notification.id.desc())


@transaction
def mark_read(user: User, notification_id: int) -> Notification:
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.user_id != user.id:
        raise NotFound("No such notification.")
    if notification.read_at is None:
        notification.read_at = clock.now()
    return notification


@transaction
def mark_read_for_consult(user: User, consult: Consult) -> list[Notification]:
    """Opening a consult reads this person's alerts about it: the ones read now."""
    unread = list(
        db.session.scalars(
            inbox(user, unread_only=True).where(Notification.consult_id == consult.id)
        )
    )
    at = clock.now()
    for notification in unread:
        notification.read_at = at
    return unread


@transaction
def mark_all_read(user: User) -> int:
    result = db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=clock.now())
    )
    return result.rowcount
