"""Reading consults: one at a time or as a filtered list, always within what the user may see."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, bindparam, case, or_, select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from broker import clock
from broker.consults import access
from broker.consults.errors import NotFound
from broker.extensions import db
from broker.models import (
    OPEN_STATUSES,
    Consult,
    ConsultEvent,
    Department,
    Status,
    Urgency,
    User,
)

NOT_FOUND = "No such consult."

# updated_at is stamped when an action runs, before its commit, so concurrent commits can
# be pushed out of updated_at order. A resync reaches back this far before the newest
# updated_at a client has seen; the client skips versions it already has.
RESYNC_MARGIN = timedelta(seconds=5)


# A consult's many-to-one relations, loaded in the consult's own SELECT (joins):
# a list or a page then reads every row's people with one statement, however many
# rows. Follow-up SELECTs (selectinload) or lazy loads would add one per relation.
WITH_PEOPLE = (
    joinedload(Consult.department, innerjoin=True),
    joinedload(Consult.requester, innerjoin=True),
    joinedload(Consult.owner),
    joinedload(Consult.handoff_to),
)


# An action reads the consult it is about to change with all that it and its
# answer need, in two statements built once: the consult with its people and its
# department's deadline policies (a ladder restarts from them), then its timeline.
# The event the action adds joins the timeline in memory, so the answer needs no
# read after the commit (which would take a second connection from the pool).
_FOR_ACTION = (
    select(Consult)
    .where(Consult.id == bindparam("consult_id"))
    .options(
        *WITH_PEOPLE,
        joinedload(Consult.department, innerjoin=True).joinedload(Department.policies),
    )
)
_TIMELINE = (
    select(ConsultEvent)
    .where(ConsultEvent.consult_id == bindparam("consult_id"))
    .options(joinedload(ConsultEvent.actor), joinedload(ConsultEvent.subject))
    .order_by(ConsultEvent.id)
)


def visible_consult(user: User, consult_id: int, with_timeline=False) -> Consult:
    """The consult, or NotFound if it does not exist or the user may not see it;
    `with_timeline`: as an action reads it (above)."""
    if with_timeline:
        consult = (
            db.session.scalars(_FOR_ACTION, {"consult_id": consult_id}).unique().first()
        )
    else:
        consult = db.session.get(Consult, consult_id, options=WITH_PEOPLE)
    if consult is None or not access.can_see(user, consult):
        raise NotFound(NOT_FOUND)
    if with_timeline:
        set_committed_value(consult, "events", timeline(consult))
    return consult


def timeline(consult: Consult) -> list[ConsultEvent]:
    """The consult's events, oldest first (as read with it, if they were)."""
    if "events" in consult.__dict__:
        return list(consult.events)
    return list(db.session.scalars(_TIMELINE, {"consult_id": consult.id}))


@dataclass(frozen=True)
class ConsultFilter:
    department: str | None = None
    status: str | None = None
    owner_is_me: bool = False
    requester_is_me: bool = False
    overdue: bool | None = None
    updated_since: datetime | None = None


def overdue_clause():
    at = clock.now()
    return or_(
        and_(Consult.status == Status.PENDING, Consult.claim_due_at <= at),
        and_(Consult.status == Status.CLAIMED, Consult.answer_due_at <= at),
    )


def visible_consults(user: User, wanted: ConsultFilter) -> Select:
    """A SELECT of the consults the user may see that match the filter, newest first."""
    query = (
        select(Consult)
        .where(access.visible_consults_clause(user))
        .options(*WITH_PEOPLE)
    )
    if wanted.department:
        department_id = select(Department.id).where(
            Department.slug == wanted.department
        )
        query = query.where(Consult.department_id == department_id.scalar_subquery())
    if wanted.status:
        query = query.where(Consult.status == wanted.status)
    if wanted.owner_is_me:
        query = query.where(Consult.owner_id == user.id)
    if wanted.requester_is_me:
        query = query.where(Consult.requester_id == user.id)
    if wanted.updated_since is not None:
        query = query.where(Consult.updated_at >= wanted.updated_since - RESYNC_MARGIN)
    if wanted.overdue is True:
        query = query.where(overdue_clause())
    elif wanted.overdue is False:
        query = query.where(~overdue_clause())
    return query.order_by(Consult.created_at.desc(), Consult.id.desc())


# The queue's order: stat first, then urgent, then routine; within each, the
# deadline now running (to claim while pending, to answer once claimed) first.
URGENCY_FIRST = case(
    {Urgency.STAT.value: 0, Urgency.URGENT.value: 1}, value=Consult.urgency, else_=2
)
RUNNING_DEADLINE = case(
    (Consult.status == Status.PENDING.value, Consult.claim_due_at),
    else_=Consult.answer_due_at,
)


@dataclass(frozen=True)
class QueueFilter:
    """What a queue shows of the department's open consults; None or False: all."""

    urgency: str | None = None
    status: str | None = None
    owner: User | None = None  # "mine": owned by, or offered to, this user
    escalated: bool = False

    def clauses(self) -> list:
        found = []
        if self.urgency in {u.value for u in Urgency}:
            found.append(Consult.urgency == self.urgency)
        if self.status in {s.value for s in OPEN_STATUSES}:
            found.append(Consult.status == self.status)
        if self.owner is not None:
            found.append(
                or_(
                    Consult.owner_id == self.owner.id,
                    Consult.handoff_to_id == self.owner.id,
                )
            )
        if self.escalated:
            found.append(Consult.escalation_level > 0)
        return found


def department_queue(
    department: Department, wanted: QueueFilter = QueueFilter()
) -> list[Consult]:
    """The department's open consults in the queue's order, with their people loaded."""
    return list(
        db.session.scalars(
            select(Consult)
            .where(
                Consult.department_id == department.id,
                Consult.status.in_(OPEN_STATUSES),
                *wanted.clauses(),
            )
            .options(*WITH_PEOPLE)
            .order_by(URGENCY_FIRST, RUNNING_DEADLINE, Consult.id)
        )
    )
