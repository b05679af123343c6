"""Reading consults: one at a time or as a filtered list, always within what the user may see."""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Result, Select, and_, bindparam, case, or_, select
from sqlalchemy.orm import aliased, joinedload
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


# A consult is read with statements built once (their cache keys computed once).
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
_WITH_PEOPLE_BY_ID = (
    select(Consult).where(Consult.id == bindparam("consult_id")).options(*WITH_PEOPLE)
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
        consult = db.session.scalars(
            _WITH_PEOPLE_BY_ID, {"consult_id": consult_id}
        ).first()
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
    return _matching(select(Consult).options(*WITH_PEOPLE), user, wanted)


def visible_consult_views(user: User, wanted: ConsultFilter) -> Select:
    """The same consults as `visible_consults`, as the columns and people a list
    shows (LISTED): read them with `consult_views`."""
    return _matching(_views_select(LISTED, with_department=True), user, wanted)


def _matching(query: Select, user: User, wanted: ConsultFilter) -> Select:
    query = query.where(access.visible_consults_clause(user))
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


# Consults read to be shown, not changed: lists and the queue page read dozens to
# hundreds at a time, and making each an ORM object (identity map, instance state,
# joined loaders) cost more than running the SELECT. A view is the row's values
# as plain attributes, with its people; it has the consult's `overdue` and
# `handoff` (the same properties), and nothing to save.


class View:
    """Values read from a row, as attributes."""

    def __init__(self, values: dict):
        self.__dict__ = values


class ConsultView(View):
    overdue = Consult.overdue
    handoff = Consult.handoff


# The columns a consult in the API's lists shows (ConsultSchema), and in a queue
# page's row (templates/_queue.html), besides its people.
LISTED = (
    Consult.id,
    Consult.urgency,
    Consult.status,
    Consult.patient_ref,
    Consult.question,
    Consult.study_ref,
    Consult.handoff_note,
    Consult.handoff_offered_at,
    Consult.created_at,
    Consult.routed_at,
    Consult.claimed_at,
    Consult.answered_at,
    Consult.closed_at,
    Consult.updated_at,
    Consult.claim_due_at,
    Consult.answer_due_at,
    Consult.escalation_level,
    Consult.rating,
    Consult.version,
)
QUEUED = (
    Consult.id,
    Consult.urgency,
    Consult.status,
    Consult.patient_ref,
    Consult.question,
    Consult.routed_at,
    Consult.claimed_at,
    Consult.claim_due_at,
    Consult.answer_due_at,
    Consult.escalation_level,
)

# A view's relations are read in its row, each column labelled "<relation>__<column>".
_PEOPLE = {
    "requester": aliased(User, name="requester"),
    "owner": aliased(User, name="owner"),
    "handoff_to": aliased(User, name="handoff_to"),
}


@cache
def _views_select(columns, with_department: bool) -> Select:
    """Made once (a Select is immutable): what each request adds makes a new one."""
    related = [
        getattr(person, c).label(f"{relation}__{c}")
        for relation, person in _PEOPLE.items()
        for c in ("id", "name", "email")
    ]
    if with_department:
        related += [
            getattr(Department, c).label(f"department__{c}")
            for c in ("id", "slug", "name")
        ]
    query = (
        select(*columns, *related)
        .select_from(Consult)
        .join(_PEOPLE["requester"], Consult.requester)
        .outerjoin(_PEOPLE["owner"], Consult.owner)
        .outerjoin(_PEOPLE["handoff_to"], Consult.handoff_to)
    )
    if with_department:
        query = query.join(Department, Consult.department)
    return query


def consult_views(query: Select) -> list[ConsultView]:
    """The views of the consults `query` (a `*_views` SELECT) reads, in its order.

    Run as a Core statement on the session's connection: its rows are plain rows.
    """
    return views_of(db.session.connection().execute(query))


def views_of(result: Result) -> list[ConsultView]:
    keys = list(result.keys())
    own = [key for key in keys if "__" not in key]  # the consult's, first
    relations: dict[str, tuple[int, list]] = {}  # relation: (its first index, columns)
    for i, key in enumerate(keys[len(own) :], len(own)):
        relation, column = key.split("__")
        relations.setdefault(relation, (i, []))[1].append(column)
    spans = [
        (relation, start, start + len(columns), columns, relation == "department")
        for relation, (start, columns) in relations.items()
    ]
    # One view per person or department however many rows name them.
    seen: dict[tuple, View] = {}
    views = []
    for row in result.all():  # fetched at once, not row by row
        values = dict(zip(own, row, strict=False))  # the relations' columns follow
        for relation, start, end, columns, is_department in spans:
            key = (is_department, row[start])  # its id: None when the row has none
            if key[1] is None:
                values[relation] = None
                continue
            found = seen.get(key)
            if found is None:
                found = seen[key] = View(
                    dict(zip(columns, row[start:end], strict=True))
                )
            values[relation] = found
        views.append(ConsultView(values))
    return views


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
) -> list[ConsultView]:
    """The department's open consults in the queue's order, as views with their people."""
    return consult_views(
        _views_select(QUEUED, with_department=False)
        .where(
            Consult.department_id == department.id,
            Consult.status.in_(OPEN_STATUSES),
            *wanted.clauses(),
        )
        .order_by(URGENCY_FIRST, RUNNING_DEADLINE, Consult.id)
    )
