"""Live updates over Socket.IO: who may connect, which rooms they join, what is pushed where.

Rooms: `user:<id>` (personal alerts), `department:<id>` (its queue), `admins`,
and `consult:<id>` for those watching one consult. A consult change is pushed
to its department, its requester, the admins and its watchers: exactly those
who may see it. Pushes follow the commit (the domain's `consults_changed`
signal, prepared before the commit, sent after it), so a rolled-back action never
reaches a screen; with REDIS_URL set, the
message queue carries each push to the clients of every process. A push that fails
(Redis or the database gone just then) is logged and dropped: the action is saved
and answered all the same, and clients catch up by resyncing when they reconnect.
"""

import contextvars
import threading
import time
from functools import wraps

from flask import current_app, g, request, session
from flask_login import current_user
from flask_socketio import ConnectionRefusedError, join_room, leave_room
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from broker import accounts, clock, sessions
from broker.api.dumping import use_compiled_dump
from broker.api.schemas import ConsultSchema, NotificationSchema
from broker.bulk import among
from broker.consults import access, audit
from broker.consults.audit import record_read
from broker.consults.changes import (
    Changes,
    committing,
    mark_written,
    written_consults,
)
from broker.consults.errors import NotFound
from broker.consults.queries import WITH_PEOPLE, visible_consult
from broker.extensions import db, socketio
from broker.models import Consult, User
from broker.sessions import Credential

ADMINS = "admins"
SIGN_IN_AGAIN = "Your session or token has ended: sign in again."
consult_schema = use_compiled_dump(ConsultSchema())
notification_schema = use_compiled_dump(NotificationSchema())


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


def _authenticate(auth) -> tuple[User, Credential] | None:
    """The user and what vouches for them: the token in `auth`, or the browser's session."""
    if isinstance(auth, dict) and isinstance(auth.get("token"), str):
        record = accounts.valid_token(auth["token"])
        return (record.user, Credential("token", record.id)) if record else None
    if current_user.is_authenticated:
        return current_user._get_current_object(), g.credential
    return None


# This process's sockets: sid -> (what authenticated it, its user's id).
_local: dict[str, tuple[Credential, int]] = {}


def _connected_user() -> User | None:
    """The socket's user while their session or token is in force (one read); else None,
    and the socket is disconnected once the handler's refusal is on its way."""
    kind, credential_id = session.get("live_credential") or (None, None)
    user = sessions.user_of(Credential(kind, credential_id)) if kind else None
    if user is None:
        socketio.start_background_task(_disconnect_soon, request.sid)
    return user


def _disconnect_soon(sid: str) -> None:
    socketio.sleep(0.5)  # the refusal (an acknowledgement) goes out first
    socketio.server.disconnect(sid, namespace="/", ignore_queue=True)


@socketio.on("connect")
def connect(auth=None):
    found = _authenticate(auth)
    if found is None:
        raise ConnectionRefusedError(
            "Sign in first: a session, or auth={'token': ...}."
        )
    user, credential = found
    session["live_credential"] = (credential.kind, credential.id)
    for room in [*rooms_of(user), credential.room]:
        join_room(room)
    _local[request.sid] = (credential, user.id)
    _start_background_work(current_app._get_current_object())


@socketio.on("disconnect")
def gone(*reason):
    _local.pop(request.sid, None)


# The largest id a consult can have (the column's range); beyond it there is none.
MAX_CONSULT_ID = 2**31 - 1
NO_SUCH_CONSULT = {"ok": False, "error": "No such consult."}


def _consult_id(data) -> int | None:
    """The event's {"consult_id": <id>}, or None for anything else (missing, not a
    whole number, out of range): answered with an error, never raised."""
    consult_id = data.get("consult_id") if isinstance(data, dict) else None
    if type(consult_id) is not int or not 1 <= consult_id <= MAX_CONSULT_ID:
        return None
    return consult_id


@socketio.on("watch")
def watch(data=None):
    """Join one consult's room; answers the consult, or a refusal if it may not be seen."""
    user = _connected_user()
    if user is None:
        return {"ok": False, "error": SIGN_IN_AGAIN}
    consult_id = _consult_id(data)
    if consult_id is None:
        return NO_SUCH_CONSULT
    try:
        consult = visible_consult(user, consult_id)
    except NotFound:
        return NO_SUCH_CONSULT
    join_room(consult_room(consult.id))
    answer = {"ok": True, "consult": consult_schema.dump(consult)}
    record_read(consult, user, "live")
    return answer


@socketio.on("unwatch")
def unwatch(data=None):
    if _connected_user() is None:
        return {"ok": False, "error": SIGN_IN_AGAIN}
    consult_id = _consult_id(data)
    if consult_id is None:
        return NO_SUCH_CONSULT
    leave_room(consult_room(consult_id))
    return {"ok": True}


def rooms_for_consult(consult: Consult) -> list[str]:
    return [
        department_room(consult.department_id),
        user_room(consult.requester_id),
        consult_room(consult.id),
        ADMINS,
    ]


def guarded(push):
    """A push runs after the commit: its failure must not turn a saved action into an error."""

    @wraps(push)
    def run() -> None:
        try:
            push()
        except Exception:
            current_app.logger.exception(
                "Live push failed; the change is saved, clients resync"
            )

    return run


# A change set this large (a sweep pass escalating many consults at once) is
# announced by a background task after the commit: reading and serialising a
# thousand consults before the commit would hold the sweep's row locks, and the
# sweeper, for longer than the sweep's own work. A client applies what it is sent
# by version, so a push that arrives after a later one changes nothing.
DEFERRED_ABOVE = 50
_deferred_tasks: list = []
_deferred_lock = threading.Lock()


@committing.connect
def prepare_pushes(session: Session, changes: Changes):
    """Before the commit, with the committing session: build every payload and its rooms.

    After the commit nothing is read: the prepared pushes are only sent. (Reading
    then would need a second connection while the first is still held, and under
    load the pool runs dry.) Large change sets are the exception (see above).
    """
    if len(changes.consult_ids) + len(changes.notifications) > DEFERRED_ABOVE:
        app = current_app._get_current_object()
        return lambda: _start_deferred(app, changes)
    pushes = _payloads(session, changes)
    return guarded(lambda: _send(pushes))


def _payloads(session: Session, changes: Changes) -> list:
    """(event name, payload, rooms) for each changed consult and new notification."""
    pushes: list[tuple[str, dict | None, str | list[str]]] = []
    if changes.consult_ids:
        for consult in _taking_turns(_changed_consults(session, changes.consult_ids)):
            if consult.id in changes.departures:
                old_room = department_room(changes.departures[consult.id])
                pushes.append(("consult_gone", {"id": consult.id}, old_room))
                pushes.append(("close_room", None, consult_room(consult.id)))
            pushes.append(
                ("consult", consult_schema.dump(consult), rooms_for_consult(consult))
            )
    for notification in _taking_turns(changes.notifications):
        payload = notification_schema.dump(notification)
        pushes.append(("notification", payload, user_room(notification["user_id"])))
    return pushes


# The consults this session wrote in the current transaction: those its flushes
# wrote, and those an action inserted itself (changes.mark_written).
@event.listens_for(Session, "after_flush")
def _remember_written(session: Session, flush_context) -> None:
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, Consult):
            mark_written(session, obj)


def _changed_consults(session: Session, ids: list[int]) -> list[Consult]:
    """The changed consults as this transaction leaves them, in id order.

    Those an action wrote through this session are current in memory, with their
    people: they are pushed as they are, without reading them back. Those changed
    by a statement (the sweep's UPDATE ... RETURNING) are read, in one SELECT.
    """
    session.flush()
    written = written_consults(session)
    unread = [i for i in ids if i not in written]
    read = {}
    if unread:
        read = {
            c.id: c
            for c in session.scalars(
                select(Consult)
                .where(among(session, Consult.id, unread))
                .options(*WITH_PEOPLE)
                .execution_options(populate_existing=True)
            )
        }
    return [written.get(i) or read[i] for i in ids if i in written or i in read]


def _taking_turns(items, every: int = 100):
    """Yield the items, letting other work run every so often: under gevent a long
    loop would otherwise hold every websocket and request of the process."""
    for n, item in enumerate(items, start=1):
        yield item
        if n % every == 0:
            socketio.sleep(0)


def _send(pushes: list) -> None:
    for event_name, payload, to in _taking_turns(pushes):
        if event_name == "close_room":
            socketio.close_room(to)
        else:
            socketio.emit(event_name, payload, to=to)


def _start_deferred(app, changes: Changes) -> None:
    def push_later() -> None:
        with app.app_context():
            try:
                guarded(lambda: _send(_payloads(db.session, changes)))()
            finally:
                db.session.remove()

    with _deferred_lock:
        _deferred_tasks[:] = [t for t in _deferred_tasks if t.is_alive()]
        # In this request's context: "now" (clock.py) is the committing request's.
        context = contextvars.copy_context()
        task = threading.Thread(
            target=context.run, args=(push_later,), name="deferred-pushes", daemon=True
        )
        task.start()
        _deferred_tasks.append(task)


def wait_for_deferred_pushes(timeout: float = 30.0) -> None:
    """Block until the background pushes started so far are sent (tests, benchmarks)."""
    with _deferred_lock:
        tasks = list(_deferred_tasks)
    for task in tasks:
        task.join(timeout)


# --- credentials that end, and the audit of pushes -----------------------------------


@sessions.credential_ended.connect
def close_sockets(credential: Credential) -> None:
    """A session or token ended: its sockets, on every process, are disconnected."""
    guarded(lambda: socketio.close_room(credential.room))()


_shown: list[
    tuple
] = []  # (user ids, consult id, at) of pushes delivered here, unwritten
_shown_lock = threading.Lock()
PENDING_PUSH_AUDIT_LIMIT = 10_000  # pushes kept while the database is away


def consult_pushed(sids: list[str], payload: dict) -> None:
    """A `consult` push reached these sockets of this process: each user is recorded as
    shown it (written by `_write_shown` within a second, many pushes in one INSERT)."""
    users = {_local[sid][1] for sid in sids if sid in _local}
    if users:
        with _shown_lock:
            _shown.append((users, payload["id"], clock.now()))


def _write_shown(app) -> None:
    with _shown_lock:
        pushes = _shown[:]
        del _shown[:]
    if not pushes:
        return
    rows = [
        row
        for users, consult_id, at in pushes
        for row in audit.rows_for(sorted(users), [consult_id], "live-push", at)
    ]
    with app.app_context():
        try:
            audit.write(rows)
            db.session.commit()
        except Exception:
            db.session.rollback()
            with _shown_lock:  # kept for the next try, up to a bound
                _shown[:0] = pushes[-PENDING_PUSH_AUDIT_LIMIT:]
            app.logger.exception("Could not write the audit of live pushes")
        finally:
            db.session.remove()


def _close_ended_sockets(app) -> None:
    """Disconnect this process's sockets whose session or token expired (no event tells)."""
    held = dict(_local)
    if not held:
        return
    with app.app_context():
        try:
            valid = sessions.still_valid(
                {credential for credential, _ in held.values()}
            )
        finally:
            db.session.remove()
    for sid, (credential, _) in held.items():
        if credential not in valid:
            socketio.server.disconnect(sid, namespace="/", ignore_queue=True)


def _background(app) -> None:
    checked_at = 0.0
    while True:
        socketio.sleep(1)
        _write_shown(app)
        every = app.config["LIVE_CREDENTIAL_CHECK_SECONDS"]
        if every and time.monotonic() - checked_at >= every:
            checked_at = time.monotonic()
            try:
                _close_ended_sockets(app)
            except Exception:
                app.logger.exception(
                    "Could not check the live connections' credentials"
                )


def _start_background_work(app) -> None:
    """Once per app, with its first socket: the push audit writer and the checks."""
    with _shown_lock:
        if app.extensions.get("live_background"):
            return
        app.extensions["live_background"] = True
    socketio.server.manager.on_consult_pushed = consult_pushed
    socketio.start_background_task(_background, app)
