"""Live updates over Socket.IO: who may connect, which rooms they join, what is pushed where.

Rooms: `user:<id>` (personal alerts), `department:<id>` (its queue), `admins`,
and `consult:<id>` for those watching one consult. A consult change is pushed
to its department, its requester, the admins and its watchers: exactly those
who may see it. Pushes follow the commit (the domain's `consults_changed`
signal), so a rolled-back action never reaches a screen; with REDIS_URL set, the
message queue carries each push to the clients of every process.
"""

from flask import session
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, join_room, leave_room
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from broker import accounts
from broker.api.schemas import ConsultSchema, NotificationSchema
from broker.consults import access
from broker.consults.audit import record_read
from broker.consults.changes import consults_changed, notifications_created
from broker.consults.errors import NotFound
from broker.consults.queries import visible_consult
from broker.extensions import db, socketio
from broker.models import Consult, Notification, User

ADMINS = "admins"
consult_schema = ConsultSchema()
notification_schema = NotificationSchema()


def user_room(user_id: int) -> str:
    return f"user:{user_id}"


def department_room(department_id: int) -> str:
    return f"department:{department_id}"


def consult_room(consult_id: int) -> str:
    return f"consult:{consult_id}"


def rooms_of(user: User) -> list[str]:
    rooms = [user_room(user.id)]
    rooms += [department_room(d) for d in sorted(access.department_ids(user))]
    if user.is_admin:
        rooms.append(ADMINS)
    return rooms


def _authenticate(auth) -> User | None:
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        return accounts.user_for_token(auth["token"])
    if current_user.is_authenticated:
        return current_user._get_current_object()
    return None


def _connected_user() -> User | None:
    user_id = session.get("live_user_id")
    return db.session.get(User, user_id) if user_id else None


@socketio.on("connect")
def connect(auth=None):
    user = _authenticate(auth)
    if user is None:
        raise ConnectionRefusedError(
            "Sign in first: a session, or auth={'token': ...}."
        )
    session["live_user_id"] = user.id
    for room in rooms_of(user):
        join_room(room)


@socketio.on("watch")
def watch(data):
    """Join one consult's room; answers the consult, or a refusal if it may not be seen."""
    user = _connected_user()
    try:
        consult = visible_consult(user, int(data["consult_id"]))
    except (NotFound, KeyError, TypeError, ValueError):
        return {"ok": False, "error": "No such consult."}
    join_room(consult_room(consult.id))
    answer = {"ok": True, "consult": consult_schema.dump(consult)}
    record_read(consult, user, "live")
    return answer


@socketio.on("unwatch")
def unwatch(data):
    try:
        leave_room(consult_room(int(data["consult_id"])))
    except (KeyError, TypeError, ValueError):
        return {"ok": False}
    return {"ok": True}


def rooms_for_consult(consult: Consult) -> list[str]:
    return [
        department_room(consult.department_id),
        user_room(consult.requester_id),
        consult_room(consult.id),
        ADMINS,
    ]


@consults_changed.connect
def push_consults(sender, consult_ids, departures):
    """After a commit: push each changed consult to the rooms that may see it.

    A consult redirected away from a department is announced there as gone (no
    patient data), and its watchers' room is closed: they re-watch if they still
    may see it.
    """
    # The committing session may not query now; read the committed rows afresh.
    with Session(db.engine) as reader:
        consults = reader.scalars(
            select(Consult)
            .where(Consult.id.in_(consult_ids))
            .options(
                selectinload(Consult.department),
                selectinload(Consult.requester),
                selectinload(Consult.owner),
                selectinload(Consult.handoff_to),
            )
        )
        for consult in consults:
            if consult.id in departures:
                socketio.emit(
                    "consult_gone",
                    {"id": consult.id},
                    to=department_room(departures[consult.id]),
                )
                socketio.close_room(consult_room(consult.id))
            socketio.emit(
                "consult", consult_schema.dump(consult), to=rooms_for_consult(consult)
            )


@notifications_created.connect
def push_notifications(sender, notification_ids):
    with Session(db.engine) as reader:
        for notification in reader.scalars(
            select(Notification).where(Notification.id.in_(notification_ids))
        ):
            socketio.emit(
                "notification",
                notification_schema.dump(notification),
                to=user_room(notification.user_id),
            )
