"""What a transaction changed, announced only once it is committed.

The domain marks the consults it changed and the notifications it wrote (each as
the row it inserted, so that nothing need read it back). Just
before the commit, `committing` asks its listeners to prepare, with the
committing session, whatever they will announce (a live push builds its
payloads here, reading nothing afterwards); each returns a function to run once
the commit has succeeded. A rollback drops the marks and the prepared work, so
nothing refused or undone is ever announced. The domain never imports a transport.
"""

from dataclasses import dataclass, field

from blinker import Namespace
from sqlalchemy import event
from sqlalchemy.orm import Session

signals = Namespace()
committing = signals.signal("changes-committing")

_CONSULTS = "broker.changed_consults"
_DEPARTURES = "broker.consult_departures"
_NOTIFICATIONS = "broker.created_notifications"
_AFTER_COMMIT = "broker.after_commit"
_WRITTEN = "broker.written_consults"
_INSERTED = "broker.inserted_outside"


@dataclass
class Changes:
    consult_ids: list[int] = field(default_factory=list)
    # consult id -> the department it left (a redirect): its members may no longer see it
    departures: dict[int, int] = field(default_factory=dict)
    # the new notifications, in id order, each as its columns by name
    notifications: list[dict] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.consult_ids or self.notifications)


def mark_changed(session: Session, consult_id: int) -> None:
    session.info.setdefault(_CONSULTS, set()).add(consult_id)


def mark_departed(session: Session, consult_id: int, department_id: int) -> None:
    session.info.setdefault(_DEPARTURES, {})[consult_id] = department_id


def mark_written(session: Session, consult) -> None:
    """A consult this transaction wrote through the session: current in memory."""
    session.info.setdefault(_WRITTEN, {})[consult.id] = consult


def written_consults(session: Session) -> dict:
    """The consults this transaction wrote through the session (id -> object)."""
    return session.info.get(_WRITTEN, {})


def written_outside_the_session(session: Session, obj) -> None:
    """An object inserted by a plain INSERT, then put in the session as read from it.
    A rollback takes it out of the session, as it does the objects the unit of
    work inserted: its row is gone (and SQLite may give its id to the next row)."""
    session.info.setdefault(_INSERTED, []).append(obj)


def mark_notified(session: Session, notification: dict) -> None:
    """A notification written in this transaction: its row, every column by name."""
    session.info.setdefault(_NOTIFICATIONS, {})[notification["id"]] = notification


@event.listens_for(Session, "before_commit")
def _prepare(session: Session) -> None:
    changes = Changes(
        consult_ids=sorted(session.info.get(_CONSULTS, ())),
        departures=dict(session.info.get(_DEPARTURES, {})),
        notifications=[
            n for _, n in sorted(session.info.get(_NOTIFICATIONS, {}).items())
        ],
    )
    if changes:
        prepared = committing.send(session, changes=changes)
        session.info[_AFTER_COMMIT] = [run for _, run in prepared if run is not None]


@event.listens_for(Session, "after_commit")
def _announce(session: Session) -> None:
    _forget(session)
    for run in session.info.pop(_AFTER_COMMIT, []):
        run()


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    inserted = session.info.get(_INSERTED, ())
    _forget(session)
    session.info.pop(_AFTER_COMMIT, None)
    for obj in inserted:
        if obj in session:
            session.expunge(obj)


def _forget(session: Session) -> None:
    for key in (_CONSULTS, _DEPARTURES, _NOTIFICATIONS, _WRITTEN, _INSERTED):
        session.info.pop(key, None)
