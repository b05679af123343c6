"""Every action on a consult. These functions are the only writers of consult state.

Each action is one transaction: check state, check permission, change the
consult, append one timeline event, commit. Any error rolls everything back,
so a refused action leaves the consult and its timeline exactly as they were.
A race between two writers is settled by the database through the consult's
version column: the second UPDATE matches no row and becomes a Conflict.
"""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import attributes

from broker import clock
from broker.consults import access
from broker.consults.changes import mark_changed, mark_departed
from broker.consults.deadlines import (
    due_times,
    end_ladder,
    followup_answer_due,
    start_answer_ladder,
    start_claim_ladder,
)
from broker.consults.errors import Conflict, Invalid, NotAllowed
from broker.consults.notifications import describe, notify
from broker.consults.oncall import on_call_now
from broker.consults.transactions import transaction
from broker.extensions import db
from broker.models import (
    OPEN_STATUSES,
    OWNED_STATUSES,
    Consult,
    ConsultEvent,
    Department,
    EventKind,
    Status,
    Urgency,
    User,
)


def _record(
    consult: Consult,
    kind: EventKind,
    actor: User | None,
    body: str | None = None,
    subject: User | None = None,
    detail: str | None = None,
) -> ConsultEvent:
    """Append the timeline event and touch the consult, so its version moves on."""
    at = clock.now()
    consult.updated_at = at
    attributes.flag_modified(consult, "updated_at")
    event = ConsultEvent(
        consult=consult,
        kind=kind.value,
        actor=actor,
        at=at,
        body=body,
        subject=subject,
        detail=detail,
    )
    db.session.add(event)
    db.session.flush()
    mark_changed(db.session, consult.id)
    return event


def _required_text(field: str, value: str | None) -> str:
    text = (value or "").strip()
    if not text:
        raise Invalid(field, f"{field.replace('_', ' ').capitalize()} is required.")
    return text


def _require_status(consult: Consult, allowed, doing: str) -> None:
    if consult.status not in allowed:
        raise Conflict(f"A {consult.status} consult cannot be {doing}.")


def _require_owner(consult: Consult, user: User, doing: str) -> None:
    if consult.owner_id != user.id:
        raise NotAllowed(f"Only the consult's owner may {doing} it.")


def _require_member(consult: Consult, user: User, doing: str) -> None:
    if not access.is_member(user, consult.department_id):
        raise NotAllowed(f"Only members of {consult.department.name} may {doing}.")


def _colleague(consult: Consult, user: User, field: str) -> User:
    if not access.is_member(user, consult.department_id):
        raise Invalid(field, f"Choose a member of {consult.department.name}.")
    return user


def _withdraw_handoff(consult: Consult) -> None:
    consult.handoff_to = None
    consult.handoff_note = None
    consult.handoff_offered_at = None


def _department_by_slug(slug: str | None, field: str = "department") -> Department:
    department = db.session.scalar(select(Department).where(Department.slug == slug))
    if department is None:
        raise Invalid(field, "No such department.")
    return department


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
    target = _department_by_slug(department)
    if urgency not in set(Urgency):
        raise Invalid("urgency", "Urgency must be stat, urgent or routine.")
    at = clock.now()
    claim_due_at, answer_due_at = due_times(target, urgency, at)
    consult = Consult(
        department=target,
        urgency=urgency,
        status=Status.PENDING.value,
        requester=requester,
        patient_ref=_required_text("patient_ref", patient_ref),
        question=_required_text("question", question),
        study_ref=(study_ref or "").strip() or None,
        request_key=request_key,
        created_at=at,
        routed_at=at,
        updated_at=at,
        claim_due_at=claim_due_at,
        answer_due_at=answer_due_at,
    )
    start_claim_ladder(consult)
    db.session.add(consult)
    _record(consult, EventKind.CREATED, requester)
    _alert_primary(consult, "new_consult", f"New {describe(consult)} awaits a claim.")
    return consult


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
    asked = (
        _required_text("patient_ref", fields.get("patient_ref")),
        _required_text("question", fields.get("question")),
    )
    if (made.patient_ref, made.question) != asked:
        raise Conflict("This request key was already used for another consult.")
    return made, False


def _made_with(requester: User, request_key: str) -> Consult | None:
    return db.session.scalar(
        select(Consult).where(
            Consult.requester_id == requester.id, Consult.request_key == request_key
        )
    )


def _alert_primary(consult: Consult, kind: str, message: str) -> None:
    """The department's primary on call hears of a consult entering the queue."""
    primary = on_call_now(consult.department).primary
    if primary is not None:
        notify([primary.id], consult, kind, message)


def _seconds_since_routing(consult: Consult, at) -> int:
    return int((at - consult.routed_at).total_seconds())


def _record_first_claim(consult: Consult) -> None:
    """The first claim in this department is what the turnaround reports measure."""
    if consult.claimed_at is None:
        at = clock.now()
        consult.claimed_at = at
        consult.claim_seconds = _seconds_since_routing(consult, at)
        consult.claimed_in_time = at < consult.claim_due_at


@transaction
def claim(consult: Consult, user: User) -> Consult:
    """A department member takes ownership of a pending consult."""
    if consult.status in OWNED_STATUSES:
        raise Conflict(f"Already claimed by {consult.owner.name}.")
    _require_status(consult, [Status.PENDING], "claimed")
    _require_member(consult, user, "claim this consult")
    consult.status = Status.CLAIMED.value
    consult.owner = user
    _record_first_claim(consult)
    start_answer_ladder(consult)
    _record(consult, EventKind.CLAIMED, user)
    return consult


@transaction
def release(consult: Consult, user: User, reason: str) -> Consult:
    """The owner gives a claimed consult back to the queue; deadlines keep running."""
    _require_status(consult, [Status.CLAIMED], "released")
    _require_owner(consult, user, "release")
    reason = _required_text("reason", reason)
    consult.status = Status.PENDING.value
    consult.owner = None
    _withdraw_handoff(consult)
    start_claim_ladder(consult)
    _record(consult, EventKind.RELEASED, user, body=reason)
    _alert_primary(consult, "released", f"Back in the queue: {describe(consult)}.")
    return consult


@transaction
def assign(consult: Consult, user: User, assignee: User) -> Consult:
    """A chief (or admin) gives ownership by authority, to a member of the department."""
    _require_status(consult, [Status.PENDING, Status.CLAIMED], "assigned")
    if not access.can_manage_department(user, consult.department):
        raise NotAllowed(
            f"Only a chief of {consult.department.name} or an admin may assign."
        )
    assignee = _colleague(consult, assignee, "user_id")
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
            f"{user.name} reassigned {describe(consult)} to {assignee.name}.",
        )
    return consult


@transaction
def hand_off(consult: Consult, user: User, to_user: User, note: str) -> Consult:
    """The owner offers the consult to a colleague; nothing changes until accepted.

    A new offer replaces one still open: the owner may change their mind.
    """
    _require_status(consult, OWNED_STATUSES, "handed off")
    _require_owner(consult, user, "hand off")
    to_user = _colleague(consult, to_user, "to_user_id")
    if to_user.id == user.id:
        raise Invalid("to_user_id", "Choose a colleague other than yourself.")
    note = _required_text("note", note)
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


def _require_offer_to(consult: Consult, user: User) -> None:
    if consult.handoff_to_id is None:
        raise Conflict("No handoff is on offer for this consult.")
    if consult.handoff_to_id != user.id:
        raise NotAllowed("Only the colleague offered the handoff may answer it.")


@transaction
def accept_handoff(consult: Consult, user: User) -> Consult:
    """The offered colleague becomes the owner; deadlines are unchanged."""
    _require_offer_to(consult, user)
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


@transaction
def decline_handoff(consult: Consult, user: User, reason: str) -> Consult:
    """The offered colleague says no; the owner stays the owner."""
    _require_offer_to(consult, user)
    reason = _required_text("reason", reason)
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


@transaction
def answer(consult: Consult, user: User, body: str) -> Consult:
    """Only the owner answers; an answer ends the answer escalation ladder."""
    _require_status(consult, [Status.CLAIMED], "answered")
    _require_owner(consult, user, "answer")
    body = _required_text("body", body)
    at = clock.now()
    consult.status = Status.ANSWERED.value
    consult.answered_at = at
    if consult.first_answered_at is None:
        consult.first_answered_at = at
        consult.answer_seconds = _seconds_since_routing(consult, at)
        consult.answered_in_time = at < consult.answer_due_at
    end_ladder(consult, reset_level=True)
    _record(consult, EventKind.ANSWERED, user, body=body)
    notify(
        [consult.requester_id],
        consult,
        "answered",
        f"{user.name} answered {describe(consult)}.",
    )
    return consult


@transaction
def post_message(consult: Consult, user: User, body: str) -> Consult:
    """A message on the thread.

    From the requester on an answered consult it is a follow-up: back to
    `claimed`, same owner, new answer deadline. From the owner it is a message;
    from another member of the department (a covering colleague) a note.
    """
    _require_status(consult, OPEN_STATUSES, "written to")
    body = _required_text("body", body)
    if user.id == consult.requester_id:
        if consult.status == Status.ANSWERED:
            consult.status = Status.CLAIMED.value
            consult.answer_due_at = followup_answer_due(
                consult.department, consult.urgency, clock.now()
            )
            start_answer_ladder(consult)
            consult.followup_count += 1
            kind = EventKind.FOLLOWUP
        else:
            kind = EventKind.MESSAGE
        reader = consult.owner_id
    elif user.id == consult.owner_id:
        kind = EventKind.MESSAGE
        reader = consult.requester_id
    elif access.is_member(user, consult.department_id):
        kind = EventKind.NOTE
        reader = None
    else:
        raise NotAllowed("Only the requester and the department's members may write.")
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


@transaction
def redirect(consult: Consult, user: User, department: str, reason: str) -> Consult:
    """Send a consult that belongs elsewhere to another department's queue."""
    _require_status(consult, [Status.PENDING, Status.CLAIMED], "redirected")
    _require_member(consult, user, "redirect this consult")
    target = _department_by_slug(department)
    if target.id == consult.department_id:
        raise Invalid("department", "Choose a different department.")
    reason = _required_text("reason", reason)
    origin = consult.department
    mark_departed(db.session, consult.id, origin.id)
    at = clock.now()
    consult.department = target
    consult.status = Status.PENDING.value
    consult.owner = None
    _withdraw_handoff(consult)
    consult.routed_at = at
    # The receiving department's turnaround is measured afresh from routed_at.
    consult.claimed_at = None
    consult.claim_seconds = None
    consult.claimed_in_time = None
    consult.first_answered_at = None
    consult.answer_seconds = None
    consult.answered_in_time = None
    consult.redirect_count += 1
    consult.claim_due_at, consult.answer_due_at = due_times(target, consult.urgency, at)
    start_claim_ladder(consult)
    _record(
        consult,
        EventKind.REDIRECTED,
        user,
        body=reason,
        detail=f"{origin.slug} → {target.slug}",
    )
    notify(
        [consult.requester_id],
        consult,
        "redirected",
        f"{user.name} redirected your consult #{consult.id} from {origin.name} to {target.name}.",
    )
    _alert_primary(consult, "new_consult", f"New {describe(consult)} awaits a claim.")
    return consult


@transaction
def close(
    consult: Consult, user: User, rating: int | None = None, comment: str | None = None
) -> Consult:
    """The requester (or an admin) closes an answered consult, with an optional rating."""
    _require_status(consult, [Status.ANSWERED], "closed")
    if not (user.id == consult.requester_id or user.is_admin):
        raise NotAllowed("Only the requester or an admin may close a consult.")
    if rating is not None and not 1 <= rating <= 5:
        raise Invalid("rating", "Rating must be from 1 to 5.")
    comment = (comment or "").strip() or None
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


@transaction
def cancel(consult: Consult, user: User, reason: str) -> Consult:
    """The requester withdraws a consult that is not yet closed."""
    _require_status(consult, OPEN_STATUSES, "cancelled")
    if user.id != consult.requester_id:
        raise NotAllowed("Only the requester may cancel a consult.")
    reason = _required_text("reason", reason)
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
