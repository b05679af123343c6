"""The deadline sweep: escalation ladders and the automatic close.

Each rung is one conditional UPDATE ... RETURNING over the consults whose rung
time has passed. Firing a rung clears its time in the same statement, so a
second sweep, in this process or another, running at the same instant finds
nothing left to fire: each step happens exactly once, settled by the database.
The rung times are indexed and cleared once fired, so a pass costs in
proportion to what is due, not to what is open.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, select, update

from broker import clock
from broker.bulk import insert_rows
from broker.consults.changes import mark_changed
from broker.consults.notifications import alert, notices_for
from broker.consults.oncall import Coverage, coverage_at
from broker.extensions import db
from broker.models import (
    Consult,
    ConsultEvent,
    Department,
    EventKind,
    Membership,
    Status,
)

consults = Consult.__table__
events_table = ConsultEvent.__table__

AUTO_CLOSED = "closed automatically: no follow-up after the answer"


def waiting_for(status: str) -> str:
    """What an escalated consult was not, by its deadline: claimed, or answered."""
    return "claimed" if status == Status.PENDING else "answered"


def escalated_detail(level: int, status: str) -> str:
    """The ESCALATED event's detail, for a consult in `status` reaching `level`."""
    return f"level {level}: not {waiting_for(status)} by its deadline"


@dataclass
class SweepResult:
    escalated: list[tuple[int, int]] = field(
        default_factory=list
    )  # (consult id, level)
    closed: list[int] = field(default_factory=list)


@dataclass
class _Recipients:
    """Who each department's alerts go to at the sweep's instant, looked up once per pass."""

    at: datetime
    _coverage: dict[int, Coverage] = field(default_factory=dict)
    _chiefs: dict[int, list[int]] = field(default_factory=dict)
    _members: dict[int, list[int]] = field(default_factory=dict)

    def coverage(self, department_id: int) -> Coverage:
        if department_id not in self._coverage:
            self._coverage[department_id] = coverage_at(department_id, self.at)
        return self._coverage[department_id]

    def members(self, department_id: int, chiefs_only: bool = False) -> list[int]:
        cache = self._chiefs if chiefs_only else self._members
        if department_id not in cache:
            query = select(Membership.user_id).where(
                Membership.department_id == department_id
            )
            if chiefs_only:
                query = query.where(Membership.is_chief)
            cache[department_id] = list(db.session.scalars(query))
        return cache[department_id]

    def for_rung(self, level: int, status: str, owner_id: int | None, dept: int):
        """Claim ladder: 1 → backup and primary on call (else everyone), 2 → chiefs.

        Answer ladder: 1 → the owner and the backup on call, 2 → chiefs.
        A department without a chief sends level 2 to all its members.
        """
        if level >= 2:
            return self.members(dept, chiefs_only=True) or self.members(dept)
        on_call = self.coverage(dept)
        backups = [u.id for u in on_call.backups]
        if status == Status.CLAIMED:
            return [owner_id, *backups]
        covering = backups + ([on_call.primary.id] if on_call.primary else [])
        return covering or self.members(dept)


def sweep(at: datetime, auto_close_after: timedelta) -> SweepResult:
    """One pass as of `at`: fire every due rung (level 1 before 2), then auto-close."""
    result = SweepResult()
    recipients = _Recipients(at)
    with clock.frozen_at(at):
        try:
            for level in (1, 2):
                result.escalated += _fire_rung(level, at, recipients)
            result.closed = _auto_close(at - auto_close_after, at)
            db.session.commit()
        except BaseException:
            db.session.rollback()
            raise
    return result


def rung_update(level: int, at: datetime, read=lambda column: column):
    """The UPDATE ... RETURNING that fires every consult's level-`level` rung due at `at`.

    `read` wraps the ladder columns where they are compared (bench/sweep.py hides
    them from their indexes, to measure a full scan against this).
    """
    rung = (
        consults.c.level1_escalation_at
        if level == 1
        else consults.c.level2_escalation_at
    )
    due = [read(rung) <= at, consults.c.status.in_([Status.PENDING, Status.CLAIMED])]
    if level == 2:
        due.append(read(consults.c.level1_escalation_at).is_(None))
    highest = consults.c.max_escalation_level
    return (
        update(consults)
        .where(*due)
        .values(
            {
                rung: None,
                consults.c.escalation_level: level,
                highest: case((highest < level, level), else_=highest),
                consults.c.version: consults.c.version + 1,
                consults.c.updated_at: at,
            }
        )
        .returning(
            consults.c.id,
            consults.c.status,
            consults.c.owner_id,
            consults.c.department_id,
            consults.c.urgency,
        )
    )


def _fire_rung(level: int, at: datetime, recipients: _Recipients) -> list:
    rows = db.session.execute(rung_update(level, at)).all()
    if not rows:
        return []
    names = _department_names({row.department_id for row in rows})
    events, notices = [], []
    for row in rows:
        events.append(
            {
                "consult_id": row.id,
                "kind": EventKind.ESCALATED.value,
                "actor_id": None,
                "at": at,
                "detail": escalated_detail(level, row.status),
            }
        )
        message = (
            f"Escalated to level {level}: {row.urgency} consult #{row.id} to "
            f"{names[row.department_id]} was not {waiting_for(row.status)} by its deadline."
        )
        notices += notices_for(
            recipients.for_rung(level, row.status, row.owner_id, row.department_id),
            row.id,
            "escalated",
            message,
        )
        mark_changed(db.session, row.id)
    insert_rows(db.session, events_table, events)
    alert(notices)
    return [(row.id, level) for row in rows]


def _auto_close(answered_before: datetime, at: datetime) -> list[int]:
    """Answered consults with no follow-up for the configured time are closed, by no one."""
    rows = db.session.execute(
        update(consults)
        .where(
            consults.c.status == Status.ANSWERED,
            consults.c.answered_at <= answered_before,
        )
        .values(
            status=Status.CLOSED.value,
            closed_at=at,
            handoff_to_id=None,
            handoff_note=None,
            handoff_offered_at=None,
            version=consults.c.version + 1,
            updated_at=at,
        )
        .returning(consults.c.id)
    ).all()
    if not rows:
        return []
    insert_rows(
        db.session,
        events_table,
        [
            {
                "consult_id": row.id,
                "kind": EventKind.CLOSED.value,
                "actor_id": None,
                "at": at,
                "detail": AUTO_CLOSED,
            }
            for row in rows
        ],
    )
    for row in rows:
        mark_changed(db.session, row.id)
    return [row.id for row in rows]


def _department_names(ids: set[int]) -> dict[int, str]:
    rows = db.session.execute(
        select(Department.id, Department.name).where(Department.id.in_(ids))
    )
    return {department_id: name for department_id, name in rows}
