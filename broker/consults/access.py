"""Who may see and do what. Every permission rule of the broker lives here."""

from sqlalchemy import ColumnElement, false, or_, select

from broker.consults.errors import NotAllowed
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


def department_ids(user: User) -> set[int]:
    return {m.department_id for m in user.memberships}


def is_member(user: User, department: Department | int) -> bool:
    dept_id = department if isinstance(department, int) else department.id
    return dept_id in department_ids(user)


def is_chief(user: User, department: Department) -> bool:
    return any(
        m.department_id == department.id and m.is_chief for m in user.memberships
    )


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


def can_manage_department(user: User, department: Department) -> bool:
    """Chiefs of the department and admins set its deadlines, shifts and assignments."""
    return user.is_admin or is_chief(user, department)


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
    if not can_manage_department(user, department):
        raise NotAllowed(
            f"Only a chief of {department.name} or an admin may see its reports."
        )
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


def available_actions(user: User, consult: Consult) -> set[str]:
    """The actions this user may take on this consult now: what a page offers as buttons.

    The same rules the actions enforce, read as a whole; the property test in
    tests/ checks the two agree.
    """
    status = consult.status
    member = is_member(user, consult.department_id)
    owner = consult.owner_id == user.id
    requester = consult.requester_id == user.id
    open_ = status in OPEN_STATUSES
    actions = set()
    if status == Status.PENDING and member:
        actions.add("claim")
    if status == Status.CLAIMED and owner:
        actions |= {"answer", "release"}
    if status in OWNED_STATUSES and owner:
        actions.add("handoff")
    if consult.handoff_to_id == user.id:
        actions |= {"accept", "decline"}
    if status in (Status.PENDING, Status.CLAIMED):
        if can_manage_department(user, consult.department):
            actions.add("assign")
        if member:
            actions.add("redirect")
    if open_ and (requester or member):
        actions.add("message")
    if status == Status.ANSWERED and (requester or user.is_admin):
        actions.add("close")
    if open_ and requester:
        actions.add("cancel")
    return actions
