"""Every action on a consult. These functions are the only writers of consult state.

Each is declared to the registry (`@consult_action`: name, predicate, input,
words) and runs as one transaction: the predicate of `access.py` is enforced,
the input checked against `limits.py`, then the function changes the consult
and appends one timeline event, and the whole commits. Any error rolls everything back,
so a refused action leaves the consult and its timeline exactly as they were.
A race between two writers is settled by the database through the consult's
version column: the second UPDATE matches no row and becomes a Conflict.
"""

from sqlalchemy import bindparam, insert, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import attributes, joinedload, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from broker import clock
from broker.consults import access, limits
from broker.consults.changes import (
    mark_changed,
    mark_departed,
    mark_written,
    written_outside_the_session,
)
from broker.consults.deadlines import (
    by_deadline,
    due_times,
    end_ladder,
    followup_answer_due,
    start_answer_ladder,
    start_claim_ladder,
)
from broker.consults.errors import Conflict, Invalid
from broker.consults.notifications import describe, notify
from broker.consults.oncall import primary_id_at, primary_id_now
from broker.consults.queries import WITH_PEOPLE
from broker.consults.registry import Field, consult_action
from broker.consults.transactions import transaction
from broker.extensions import db
from broker.models import (
    Consult,
    ConsultEvent,
    Department,
    EventKind,
    Status,
    User,
)


def _record(
    consult: Consult,
    kind: EventKind,
    actor: User | None,
    body: str | None = None,
    subject: User | None = None,
    detail: str | None = None,
) -> None:
    """Append the timeline event and touch the consult, so its version moves on.

    The consult's change is written first: a new consult (not yet in the session)
    as one plain INSERT, then in the session as read from it (`_insert_new`); a
    consult read from the session by its UPDATE, checked against its version, in
    the session's flush. The event, which is only ever inserted, then goes as one
    plain INSERT, not through the session's unit of work, and joins the consult's
    timeline in memory (a new consult's, or one read with its timeline).
    """
    at = clock.now()
    consult.updated_at = at
    is_new = inspect(consult).transient
    if is_new:
        _insert_new(consult)
    else:
        attributes.flag_modified(consult, "updated_at")
        db.session.flush()
    values = {
        "consult_id": consult.id,
        "kind": kind.value,
        "actor_id": actor and actor.id,
        "at": at,
        "body": body,
        "subject_id": subject and subject.id,
        "detail": detail,
    }
    event_id = db.session.execute(_INSERT_EVENT, values).scalar_one()
    if is_new or "events" in consult.__dict__:
        event = ConsultEvent(id=event_id, **values)
        for relation, value in (
            ("consult", consult),
            ("actor", actor),
            ("subject", subject),
        ):
            set_committed_value(event, relation, value)
        _as_read(event)
        timeline = [] if is_new else consult.events
        set_committed_value(consult, "events", [*timeline, event])
    mark_changed(db.session, consult.id)


_INSERT_EVENT = insert(ConsultEvent.__table__).returning(ConsultEvent.__table__.c.id)

_CONSULTS = Consult.__table__
_INSERT_CONSULT = insert(_CONSULTS).returning(_CONSULTS.c.id)
# Every column of a new consult but its id and version: (attribute, its Python-side
# default if the ORM would write one, else None: the unit of work writes NULL).
_NEW_CONSULT_COLUMNS = [
    (c.key, c.default.arg if c.default is not None and c.default.is_scalar else None)
    for c in _CONSULTS.c
    if c.key not in ("id", "version")
]
assert all(c.default is None or c.default.is_scalar for c in _CONSULTS.c), (
    "a callable default on consults: _insert_new must call it"
)
_FIRST_VERSION = Consult.__mapper__.version_id_generator(None)
# Its people are known in memory; its owner and handoff are nobody yet.
_NOBODY = ("owner", "handoff_to")


def _insert_new(consult: Consult) -> None:
    """INSERT a new consult (transient, with its department and requester) as the
    unit of work would, every column it would write, and put it in the session as
    read from it, at its first version.

    Its department and requester are the given objects; a duplicate request key
    raises the INSERT's IntegrityError here, as the flush would.
    """
    given = consult.__dict__
    given["department_id"] = consult.department.id
    given["requester_id"] = consult.requester.id
    for key, default in _NEW_CONSULT_COLUMNS:
        if key not in given:
            given[key] = default
    values = {key: given[key] for key, _ in _NEW_CONSULT_COLUMNS}
    values["version"] = _FIRST_VERSION
    given["id"] = db.session.execute(_INSERT_CONSULT, values).scalar_one()
    given["version"] = _FIRST_VERSION
    for relation in _NOBODY:
        set_committed_value(consult, relation, None)
    _as_read(consult)
    mark_written(db.session, consult)


def _as_read(obj) -> None:
    """Put an object just written by a plain INSERT (its id set) in the session as
    if read from it; a rollback takes it out again, as it does the unit of work's
    inserts."""
    make_transient_to_detached(obj)
    db.session.add(obj)
    written_outside_the_session(db.session, obj)


def _withdraw_handoff(consult: Consult) -> None:
    consult.handoff_to = None
    consult.handoff_note = None
    consult.handoff_offered_at = None


# All a new consult needs of its department, in one SELECT built once: the
# department, its deadline policies, and the id of its primary on call at :at.
_DEPARTMENT_FOR_NEW_CONSULT = (
    select(Department, primary_id_at(Department.id, bindparam("at")))
    .where(Department.slug == bindparam("slug"), Department.archived_at.is_(None))
    .options(joinedload(Department.policies))
)


def _department_by_slug(slug: str | None, at) -> tuple[Department, int | None]:
    """The department with its policies, and its primary on call at `at` (or None)."""
    found = (
        db.session.execute(_DEPARTMENT_FOR_NEW_CONSULT, {"slug": slug, "at": at})
        .unique()
        .first()
    )
    if found is None:
        raise Invalid("department", "No such department.")
    department, primary_id = found
    return department, primary_id


def _colleague_choices(leaving_out):
    """(id, name) of the department's members, but the one `leaving_out` names."""

    def choices(consult: Consult, user: User) -> list[tuple[int, str]]:
        return [
            (u.id, u.name)
            for u in access.colleagues(consult, leaving_out(consult, user))
        ]

    return choices


def _department_choices(consult: Consult, user: User) -> list[tuple[str, str]]:
    return [(d.slug, d.name) for d in access.other_departments(consult)]


@transaction
def create(
    requester: User,
    department: str,
    urgency: str,
    patient_ref: str,
    question: str,
    study_ref: str | None = None,
    request_key: str | None = None,
) -> Consult:
    """A new consult enters the department's queue with its deadlines running.

    `request_key` is stored with it: see `create_once`.
    """
    given = _new_consult_input(department, urgency, patient_ref, question, study_ref)
    at = clock.now()
    target, primary_id = _department_by_slug(given["department"], at)
    claim_due_at, answer_due_at = due_times(target, given["urgency"], at)
    consult = Consult(
        department=target,
        urgency=given["urgency"],
        status=Status.PENDING.value,
        requester=requester,
        patient_ref=given["patient_ref"],
        question=given["question"],
        study_ref=given["study_ref"],
        request_key=request_key
        and limits.REQUEST_KEY.clean("request_key", request_key),
        created_at=at,
        routed_at=at,
        updated_at=at,
        claim_due_at=claim_due_at,
        answer_due_at=answer_due_at,
    )
    start_claim_ladder(consult)
    _record(consult, EventKind.CREATED, requester)
    _alert_primary(
        consult, primary_id, "new_consult", f"New {describe(consult)} awaits a claim."
    )
    return consult


# The new consult's input: field -> limit (the form and the schema read it too).
NEW_CONSULT = {
    "department": limits.DEPARTMENT,
    "urgency": limits.URGENCY,
    "patient_ref": limits.PATIENT_REF,
    "question": limits.QUESTION,
    "study_ref": limits.STUDY_REF,
}


def _new_consult_input(department, urgency, patient_ref, question, study_ref) -> dict:
    given = locals()
    return limits.clean_all(
        **{k: (limit, given[k]) for k, limit in NEW_CONSULT.items()}
    )


def create_once(requester: User, request_key: str, **fields) -> tuple[Consult, bool]:
    """`create`, unless this requester's `request_key` already made a consult.

    A request retried after a lost answer (a dropped connection, a 503 after the
    commit, a double click) then gets the consult it made, not a second one in the
    queue. Answers (consult, whether it was created now). The same key for another
    patient or question is a conflict.
    """
    made = _made_with(requester, request_key)
    if made is None:
        try:
            return create(requester, request_key=request_key, **fields), True
        except IntegrityError:  # the same request, committed meanwhile by a retry
            made = _made_with(requester, request_key)
            if made is None:
                raise
    asked = limits.clean_all(
        patient_ref=(limits.PATIENT_REF, fields.get("patient_ref")),
        question=(limits.QUESTION, fields.get("question")),
    )
    if (made.patient_ref, made.question) != (asked["patient_ref"], asked["question"]):
        raise Conflict("This request key was already used for another consult.")
    return made, False


def _made_with(requester: User, request_key: str) -> Consult | None:
    return db.session.scalar(
        select(Consult)
        .where(Consult.requester_id == requester.id, Consult.request_key == request_key)
        .options(*WITH_PEOPLE)
    )


def _alert_primary(
    consult: Consult, primary_id: int | None, kind: str, message: str
) -> None:
    """The department's primary on call (`primary_id`, None if nobody) hears of a
    consult entering the queue."""
    if primary_id is not None:
        notify([primary_id], consult, kind, message)


def _seconds_since_routing(consult: Consult, at) -> int:
    return int((at - consult.routed_at).total_seconds())


def _record_first_claim(consult: Consult) -> None:
    """The first claim in this department is what the turnaround reports measure."""
    if consult.claimed_at is None:
        at = clock.now()
        consult.claimed_at = at
        consult.claim_seconds = _seconds_since_routing(consult, at)
        consult.claimed_in_time = by_deadline(at, consult.claim_due_at)


@consult_action(
    "claim",
    may=access.may_claim,
    done="You own this consult now.",
    button="Claim: I own this",
    emphasis="primary",
)
def claim(consult: Consult, user: User) -> Consult:
    """A department member takes ownership of a pending consult."""
    consult.status = Status.CLAIMED.value
    consult.owner = user
    _record_first_claim(consult)
    start_answer_ladder(consult)
    _record(consult, EventKind.CLAIMED, user)
    return consult


@consult_action(
    "release",
    may=access.may_release,
    inputs=(Field("reason", limits.REASON),),
    done="Released back to the queue.",
    button="Release",
    placement="more",
    title="Release to the queue",
)
def release(consult: Consult, user: User, reason: str) -> Consult:
    """The owner gives a claimed consult back to the queue; deadlines keep running."""
    consult.status = Status.PENDING.value
    consult.owner = None
    _withdraw_handoff(consult)
    start_claim_ladder(consult)
    _record(consult, EventKind.RELEASED, user, body=reason)
    _alert_primary(
        consult,
        primary_id_now(consult.department),
        "released",
        f"Back in the queue: {describe(consult)}.",
    )
    return consult


@consult_action(
    "assign",
    may=access.may_assign,
    inputs=(
        Field(
            "user_id",
            limits.ASSIGNEE,
            param="assignee",
            choices=_colleague_choices(lambda consult, user: consult.owner),
        ),
    ),
    done="Assigned.",
    button="Assign",
    placement="more",
    title="Assign (chief)",
)
def assign(consult: Consult, user: User, assignee: User) -> Consult:
    """A chief (or admin) gives ownership by authority, to a member of the department.

    An open handoff offer is withdrawn: the consult has a new owner, whom it
    never concerned. The previous owner is told at once (SPEC rule 7).
    """
    if consult.owner_id == assignee.id:
        raise Conflict(f"{assignee.name} already owns this consult.")
    previous_owner = consult.owner
    consult.status = Status.CLAIMED.value
    consult.owner = assignee
    _record_first_claim(consult)
    if previous_owner is None:
        start_answer_ladder(consult)
    _withdraw_handoff(consult)
    _record(
        consult,
        EventKind.ASSIGNED,
        user,
        subject=assignee,
        detail=f"from {previous_owner.name}" if previous_owner else None,
    )
    notify(
        [assignee.id],
        consult,
        "assigned",
        f"{user.name} assigned you {describe(consult)}.",
    )
    if previous_owner is not None:
        notify(
            [previous_owner.id],
            consult,
            "reassigned",
            f"{user.name} reassigned {describe(consult)} to {assignee.name}: "
            "it is no longer yours.",
        )
    return consult


@consult_action(
    "handoff",
    may=access.may_hand_off,
    inputs=(
        Field(
            "to_user_id",
            limits.HANDOFF_TO,
            param="to_user",
            choices=_colleague_choices(lambda consult, user: user),
        ),
        Field("note", limits.HANDOFF_NOTE, label="Note for your colleague"),
    ),
    done="Handoff offered. You stay the owner until it is accepted.",
    button="Offer handoff",
    placement="more",
    title="Hand off to a colleague",
)
def hand_off(consult: Consult, user: User, to_user: User, note: str) -> Consult:
    """The owner offers the consult to a colleague; nothing changes until accepted.

    A new offer replaces one still open: the owner may change their mind.
    """
    if to_user.id == user.id:
        raise Invalid("to_user_id", "Choose a colleague other than yourself.")
    consult.handoff_to = to_user
    consult.handoff_note = note
    consult.handoff_offered_at = clock.now()
    _record(consult, EventKind.HANDOFF_OFFERED, user, body=note, subject=to_user)
    notify(
        [to_user.id],
        consult,
        "handoff_offered",
        f"{user.name} offers you {describe(consult)}. Accept or decline it.",
    )
    return consult


@consult_action(
    "accept",
    path="handoff/accept",
    may=access.may_accept_handoff,
    done="Handoff accepted: you own this consult now.",
    button="Accept: I own this",
    placement="offer",
    emphasis="primary",
)
def accept_handoff(consult: Consult, user: User) -> Consult:
    """The offered colleague becomes the owner; deadlines are unchanged."""
    previous_owner = consult.owner
    consult.owner = user
    consult.handoff_count += 1
    _withdraw_handoff(consult)
    _record(consult, EventKind.HANDOFF_ACCEPTED, user, subject=previous_owner)
    notify(
        [previous_owner.id],
        consult,
        "handoff_accepted",
        f"{user.name} accepted {describe(consult)}: it is theirs now.",
    )
    return consult


@consult_action(
    "decline",
    path="handoff/decline",
    may=access.may_decline_handoff,
    inputs=(Field("reason", limits.REASON),),
    done="Handoff declined.",
    button="Decline",
    placement="offer",
)
def decline_handoff(consult: Consult, user: User, reason: str) -> Consult:
    """The offered colleague says no; the owner stays the owner."""
    owner = consult.owner
    _withdraw_handoff(consult)
    _record(consult, EventKind.HANDOFF_DECLINED, user, body=reason, subject=owner)
    notify(
        [owner.id],
        consult,
        "handoff_declined",
        f"{user.name} declined {describe(consult)}: you remain its owner.",
    )
    return consult


@consult_action(
    "answer",
    may=access.may_answer,
    inputs=(Field("body", limits.ANSWER, label="Your answer"),),
    done="Answer sent.",
    button="Send answer",
    title="Answer",
    emphasis="primary",
)
def answer(consult: Consult, user: User, body: str) -> Consult:
    """Only the owner answers; an answer ends the answer escalation ladder."""
    at = clock.now()
    consult.status = Status.ANSWERED.value
    consult.answered_at = at
    if consult.first_answered_at is None:
        consult.first_answered_at = at
        consult.answer_seconds = _seconds_since_routing(consult, at)
        consult.answered_in_time = by_deadline(at, consult.answer_due_at)
    end_ladder(consult, reset_level=True)
    _record(consult, EventKind.ANSWERED, user, body=body)
    notify(
        [consult.requester_id],
        consult,
        "answered",
        f"{user.name} answered {describe(consult)}.",
    )
    return consult


def _message_kind(consult: Consult, user: User) -> EventKind:
    """What a message from this person is: a follow-up, a message, or a note."""
    if user.id == consult.requester_id:
        if consult.status == Status.ANSWERED:
            return EventKind.FOLLOWUP
        return EventKind.MESSAGE
    if user.id == consult.owner_id:
        return EventKind.MESSAGE
    return EventKind.NOTE


MESSAGE_LABELS = {
    EventKind.FOLLOWUP: "Follow-up question (goes back to the same owner)",
    EventKind.MESSAGE: "Message",
    EventKind.NOTE: "Note (you are not the owner: a note does not answer)",
}
MESSAGE_BUTTONS = {
    EventKind.FOLLOWUP: "Ask follow-up",
    EventKind.MESSAGE: "Send message",
    EventKind.NOTE: "Add note",
}


@consult_action(
    "message",
    path="messages",
    may=access.may_post_message,
    inputs=(
        Field(
            "body",
            limits.MESSAGE,
            label=lambda consult, user: MESSAGE_LABELS[_message_kind(consult, user)],
        ),
    ),
    done="Sent.",
    button=lambda consult, user: MESSAGE_BUTTONS[_message_kind(consult, user)],
)
def post_message(consult: Consult, user: User, body: str) -> Consult:
    """A message on the thread.

    From the requester on an answered consult it is a follow-up: back to
    `claimed`, same owner, new answer deadline. From the owner it is a message;
    from another member of the department (a covering colleague) a note.
    """
    kind = _message_kind(consult, user)
    if kind == EventKind.FOLLOWUP:
        consult.status = Status.CLAIMED.value
        consult.answer_due_at = followup_answer_due(
            consult.department, consult.urgency, clock.now()
        )
        start_answer_ladder(consult)
        consult.followup_count += 1
    if kind == EventKind.NOTE:
        reader = None
    elif user.id == consult.requester_id:
        reader = consult.owner_id
    else:
        reader = consult.requester_id
    _record(consult, kind, user, body=body)
    if reader is not None:
        what = (
            "a follow-up question on" if kind == EventKind.FOLLOWUP else "a message on"
        )
        notify(
            [reader],
            consult,
            kind.value,
            f"{user.name} wrote {what} {describe(consult)}.",
        )
    return consult


@consult_action(
    "redirect",
    may=access.may_redirect,
    inputs=(
        Field("department", limits.REDIRECT_TO, choices=_department_choices),
        Field("reason", limits.REASON, label="Why it belongs there"),
    ),
    done="Redirected.",
    button="Redirect",
    placement="more",
    title="Redirect to another department",
)
def redirect(
    consult: Consult, user: User, department: Department, reason: str
) -> Consult:
    """Send a consult that belongs elsewhere to another department's queue.

    The requester is told, and so is the owner it is taken from (SPEC rules 5, 7).
    """
    origin, previous_owner = consult.department, consult.owner
    mark_departed(db.session, consult.id, origin.id)
    at = clock.now()
    consult.department = department
    consult.status = Status.PENDING.value
    consult.owner = None
    _withdraw_handoff(consult)
    consult.routed_at = at
    _forget_turnaround(consult)
    consult.redirect_count += 1
    consult.claim_due_at, consult.answer_due_at = due_times(
        department, consult.urgency, at
    )
    start_claim_ladder(consult)
    _record(
        consult,
        EventKind.REDIRECTED,
        user,
        body=reason,
        detail=f"{origin.slug} → {department.slug}",
    )
    moved = f"consult #{consult.id} from {origin.name} to {department.name}"
    notify(
        [consult.requester_id],
        consult,
        "redirected",
        f"{user.name} redirected your {moved}.",
    )
    if previous_owner is not None and previous_owner.id != user.id:
        notify(
            [previous_owner.id],
            consult,
            "redirected_away",
            f"{user.name} redirected {moved}: it is no longer yours.",
        )
    _alert_primary(
        consult,
        primary_id_now(department),
        "new_consult",
        f"New {describe(consult)} awaits a claim.",
    )
    return consult


def _forget_turnaround(consult: Consult) -> None:
    """The receiving department's turnaround is measured afresh from routed_at."""
    consult.claimed_at = None
    consult.claim_seconds = None
    consult.claimed_in_time = None
    consult.first_answered_at = None
    consult.answer_seconds = None
    consult.answered_in_time = None


@consult_action(
    "close",
    may=access.may_close,
    inputs=(
        Field("rating", limits.RATING, label="How helpful was the answer?"),
        Field("comment", limits.COMMENT),
    ),
    done="Consult closed. Thank you.",
    button="Close consult",
    title="Close and rate",
    emphasis="primary",
)
def close(
    consult: Consult, user: User, rating: int | None = None, comment: str | None = None
) -> Consult:
    """The requester (or an admin) closes an answered consult, with an optional rating."""
    consult.status = Status.CLOSED.value
    consult.closed_at = clock.now()
    consult.rating = rating
    consult.rating_comment = comment
    _withdraw_handoff(consult)
    end_ladder(consult, reset_level=False)
    _record(
        consult,
        EventKind.CLOSED,
        user,
        body=comment,
        detail=f"rated {rating}/5" if rating else None,
    )
    notify(
        [consult.owner_id],
        consult,
        "closed",
        f"{user.name} closed {describe(consult)}.",
    )
    return consult


@consult_action(
    "cancel",
    may=access.may_cancel,
    inputs=(Field("reason", limits.REASON),),
    done="Consult cancelled.",
    button="Cancel consult",
    placement="more",
    title="Cancel this consult",
    emphasis="danger",
)
def cancel(consult: Consult, user: User, reason: str) -> Consult:
    """The requester withdraws a consult that is not yet closed (or an admin, with a
    reason: one whose requester left)."""
    consult.status = Status.CANCELLED.value
    _withdraw_handoff(consult)
    end_ladder(consult, reset_level=False)
    _record(consult, EventKind.CANCELLED, user, body=reason)
    notify(
        [consult.owner_id],
        consult,
        "cancelled",
        f"{user.name} cancelled {describe(consult)}.",
    )
    return consult


# Changes the system makes when someone leaves (broker/staff.py): no one takes these
# actions, so they have no predicate; they run in the leaving's transaction.


def assign_by_system(consult: Consult, assignee: User, reason: str) -> None:
    """Ownership given by the system (SPEC rule 7): the previous owner left.

    An `assigned` event with no actor and the reason; the new owner is alerted;
    the deadlines are unchanged; any handoff offer is withdrawn.
    """
    previous_owner = consult.owner
    consult.owner = assignee
    _withdraw_handoff(consult)
    _record(
        consult,
        EventKind.ASSIGNED,
        None,
        body=reason,
        subject=assignee,
        detail=f"from {previous_owner.name}" if previous_owner else None,
    )
    notify(
        [assignee.id],
        consult,
        "assigned",
        f"{describe(consult)} is yours now: {reason}.",
    )


def withdraw_offer(consult: Consult, reason: str) -> None:
    """The handoff on offer ends unanswered (the offered colleague left); the owner stays."""
    offered, owner = consult.handoff_to, consult.owner
    _withdraw_handoff(consult)
    _record(consult, EventKind.HANDOFF_DECLINED, None, body=reason, subject=owner)
    notify(
        [owner.id],
        consult,
        "handoff_declined",
        f"The handoff of {describe(consult)} to {offered.name} was withdrawn "
        f"({reason}): you remain its owner.",
    )
