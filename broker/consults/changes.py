"""'Consult changed' signals, sent only after the change is committed.

The domain marks what it changed; when the transaction commits, the
`consults_changed` signal carries the ids to whoever listens (live pushes,
notifications). A rollback drops the marks, so nothing refused or undone is
ever announced. The domain never imports a transport.
"""

from blinker import Namespace
from sqlalchemy import event
from sqlalchemy.orm import Session

signals = Namespace()
consults_changed = signals.signal("consults-changed")
notifications_created = signals.signal("notifications-created")

_CONSULTS = "broker.changed_consults"
_DEPARTURES = "broker.consult_departures"
_NOTIFICATIONS = "broker.created_notifications"


def mark_changed(session: Session, consult_id: int) -> None:
    session.info.setdefault(_CONSULTS, set()).add(consult_id)


def mark_departed(session: Session, consult_id: int, department_id: int) -> None:
    """The consult left this department (a redirect): its members may no longer see it."""
    session.info.setdefault(_DEPARTURES, {})[consult_id] = department_id


def mark_notified(session: Session, notification_id: int) -> None:
    session.info.setdefault(_NOTIFICATIONS, set()).add(notification_id)


@event.listens_for(Session, "after_commit")
def _announce(session: Session) -> None:
    changed = session.info.pop(_CONSULTS, None)
    departures = session.info.pop(_DEPARTURES, {})
    notified = session.info.pop(_NOTIFICATIONS, None)
    if changed:
        consults_changed.send(None, consult_ids=sorted(changed), departures=departures)
    if notified:
        notifications_created.send(None, notification_ids=sorted(notified))


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    for key in (_CONSULTS, _DEPARTURES, _NOTIFICATIONS):
        session.info.pop(key, None)
