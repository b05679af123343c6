"""Who may see and do what. Every permission rule of the broker lives here, once.

Each action has one predicate `may_<action>(user, consult) -> Verdict`: allowed,
or the refusal with its reason (a `Conflict` when the consult's state does not
allow it, `NotAllowed` when this person may not). The action enforces it
(`verdict.enforce()`), and the pages ask the same predicate which buttons to
show (`registry.available_actions`), so the two cannot disagree.
"""

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, or_, select

from broker.consults.errors import Conflict, DomainError, NotAllowed
from broker.extensions import db
from broker.models import (
    OPEN_STATUSES,
    OWNED_STATUSES,
    Consult,
    Department,
    Membership,
    Status,
    User,
)


@dataclass(frozen=True)
class Verdict:
    """Allowed (truthy), or refused with the error an attempt would raise."""

    refusal: DomainError | None = None

    def __bool__(self) -> bool:
        return self.refusal is None

    @property
    def reason(self) -> str | None:
        return self.refusal.message if self.refusal else None

    def enforce(self) -> None:
        if self.refusal is not None:
            raise type(self.refusal)(self.refusal.message)


ALLOWED = Verdict()


def _state(message: str) -> Verdict:
    return Verdict(Conflict(message))


def _person(message: str) -> Verdict:
    return Verdict(NotAllowed(message))


# Membership and the two department-wide rules


def department_ids(user: User) -> set[int]:
    return {m.department_id for m in user.memberships}


def is_member(user: User, department: Department | int) -> bool:
    dept_id = department if isinstance(department, int) else department.id
    return dept_id in department_ids(user)


def is_chief(user: User, department: Department | int) -> bool:
    dept_id = department if isinstance(department, int) else department.id
    return any(m.department_id == dept_id and m.is_chief for m in user.memberships)


def may_see_department(user: User, department: Department) -> Verdict:
    """Its members and admins see a department's queue, schedule and staff."""
    if user.is_admin or is_member(user, department):
        return ALLOWED
    return _person(f"Only members of {department.name} may see this.")


def may_manage_department(user: User, department: Department) -> Verdict:
    """Its chiefs and admins set its deadlines and shifts, assign, and read its reports."""
    if user.is_admin or is_chief(user, department):
        return ALLOWED
    return _person(f"Only a chief of {department.name} or an admin may do this.")


def can_manage_department(user: User, department: Department) -> bool:
    return bool(may_manage_department(user, department))


def roles_of(user: User) -> list[str]:
    """requester (everyone), consultant (a member), chief, admin: as SPEC.md names them."""
    roles = ["requester"]
    if user.memberships:
        roles.append("consultant")
    if any(m.is_chief for m in user.memberships):
        roles.append("chief")
    if user.is_admin:
        roles.append("admin")
    return roles


# Seeing consults


def can_see(user: User, consult: Consult) -> bool:
    """Admins see all; a requester their own; a member their departments' consults."""
    return (
        user.is_admin
        or consult.requester_id == user.id
        or is_member(user, consult.department_id)
    )


def visible_consults_clause(user: User) -> ColumnElement[bool]:
    """The same rule as can_see, as a SQL condition for listings."""
    if user.is_admin:
        return Consult.id.is_not(None)
    departments = department_ids(user)
    return or_(
        Consult.requester_id == user.id,
        Consult.department_id.in_(departments) if departments else false(),
    )


def reportable_department_ids(
    user: User, department: Department | None
) -> list[int] | None:
    """Reports are for chiefs (their own departments) and admins (all: None).

    Raises NotAllowed for anyone else, or for a department the chief does not lead.
    """
    led = [m.department_id for m in user.memberships if m.is_chief]
    if not (user.is_admin or led):
        raise NotAllowed("Reports are for the chiefs of departments and admins.")
    if department is None:
        return None if user.is_admin else led
    may_manage_department(user, department).enforce()
    return [department.id]


def members_of(department: Department) -> list[tuple[Membership, User]]:
    """The department's memberships with their users, by name."""
    return list(
        db.session.execute(
            select(Membership, User)
            .join(User, Membership.user_id == User.id)
            .where(Membership.department_id == department.id)
            .order_by(User.name)
        )
    )


# One predicate per consult action


def _in_status(consult: Consult, allowed, doing: str) -> Verdict:
    if consult.status in allowed:
        return ALLOWED
    return _state(f"A {consult.status} consult cannot be {doing}.")


def _only_owner(consult: Consult, user: User, doing: str) -> Verdict:
    if consult.owner_id == user.id:
        return ALLOWED
    owner = consult.owner.name if consult.owner else "its owner"
    return _person(f"Only the owner, {owner}, may {doing} this consult.")


# A Verdict is falsy when refused, so `a and b` is the first refusal, or b.


def may_claim(user: User, consult: Consult) -> Verdict:
    if consult.status in OWNED_STATUSES:
        return _state(f"Already claimed by {consult.owner.name}.")
    if not is_member(user, consult.department_id):
        in_department = _person(
            f"Only members of {consult.department.name} may claim it."
        )
    else:
        in_department = ALLOWED
    return _in_status(consult, [Status.PENDING], "claimed") and in_department


def may_release(user: User, consult: Consult) -> Verdict:
    return _in_status(consult, [Status.CLAIMED], "released") and _only_owner(
        consult, user, "release"
    )


def may_assign(user: User, consult: Consult) -> Verdict:
    return _in_status(
        consult, [Status.PENDING, Status.CLAIMED], "assigned"
    ) and may_manage_department(user, consult.department)


def may_hand_off(user: User, consult: Consult) -> Verdict:
    return _in_status(consult, OWNED_STATUSES, "handed off") and _only_owner(
        consult, user, "hand off"
    )


def _only_offered(user: User, consult: Consult) -> Verdict:
    if consult.handoff_to_id is None:
        return _state("No handoff is on offer for this consult.")
    if consult.handoff_to_id != user.id:
        offered = consult.handoff_to.name
        return _person(f"Only {offered}, who was offered the handoff, may answer it.")
    return ALLOWED


def may_accept_handoff(user: User, consult: Consult) -> Verdict:
    return _only_offered(user, consult)


def may_decline_handoff(user: User, consult: Consult) -> Verdict:
    return _only_offered(user, consult)


def may_answer(user: User, consult: Consult) -> Verdict:
    return _in_status(consult, [Status.CLAIMED], "answered") and _only_owner(
        consult, user, "answer"
    )


def may_post_message(user: User, consult: Consult) -> Verdict:
    if consult.requester_id == user.id or is_member(user, consult.department_id):
        writer = ALLOWED
    else:
        writer = _person("Only the requester and the department's members may write.")
    return _in_status(consult, OPEN_STATUSES, "written to") and writer


def may_redirect(user: User, consult: Consult) -> Verdict:
    """SPEC rule 5: a pending consult, any member; an owned one, its owner or a chief
    (else a covering colleague could end someone's ownership: rule 1)."""
    department = consult.department
    if consult.status == Status.PENDING:
        allowed = is_member(user, department.id)
        refusal = f"Only members of {department.name} may redirect it."
    else:
        allowed = consult.owner_id == user.id or is_chief(user, department.id)
        owner = consult.owner.name if consult.owner else "its owner"
        refusal = (
            f"Only the owner, {owner}, or a chief of {department.name} "
            "may redirect this consult."
        )
    person = ALLOWED if allowed else _person(refusal)
    return _in_status(consult, OPEN_STATUSES, "redirected") and person


def may_close(user: User, consult: Consult) -> Verdict:
    if user.id == consult.requester_id or user.is_admin:
        person = ALLOWED
    else:
        person = _person(
            f"Only the requester, {consult.requester.name}, or an admin may close it."
        )
    return _in_status(consult, [Status.ANSWERED], "closed") and person


def may_cancel(user: User, consult: Consult) -> Verdict:
    if user.id == consult.requester_id or user.is_admin:
        person = ALLOWED
    else:
        person = _person(
            f"Only the requester, {consult.requester.name}, or an admin may cancel it."
        )
    return _in_status(consult, OPEN_STATUSES, "cancelled") and person


# Whom a consult may go to


def colleagues(consult: Consult, leaving_out: User | None = None) -> list[User]:
    """Members of the consult's department, by name (a handoff or assign target)."""
    return [
        user
        for _, user in members_of(consult.department)
        if leaving_out is None or user.id != leaving_out.id
    ]


def other_departments(consult: Consult) -> list[Department]:
    """Where a consult may be redirected: every department but its own."""
    return list(
        db.session.scalars(
            select(Department)
            .where(Department.id != consult.department_id)
            .order_by(Department.name)
        )
    )
