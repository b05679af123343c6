"""On-call coverage: the shift schedule of each department and who covers now."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ScalarSelect, Select, select
from sqlalchemy.orm import joinedload

from broker import clock
from broker.consults import access, limits
from broker.consults.errors import Conflict, Invalid, NotFound
from broker.consults.transactions import transaction
from broker.extensions import db
from broker.models import Department, Shift, ShiftRole, User


@dataclass
class Coverage:
    """Who is on call in a department at one instant."""

    primary: User | None = None
    backups: list[User] = field(default_factory=list)

    @property
    def backup(self) -> User | None:
        return self.backups[0] if self.backups else None


def _covering(department_id, at: datetime) -> tuple:
    """The shifts of the department (an id, or a column) under way at `at`."""
    return (
        Shift.department_id == department_id,
        Shift.starts_at <= at,
        Shift.ends_at > at,
    )


def primary_id_at(department_id, at: datetime) -> ScalarSelect:
    """The id of the department's primary on call at `at`, NULL if none: a scalar
    subquery, to read with the department (or alone, `primary_id_now`)."""
    return (
        select(Shift.user_id)
        .where(*_covering(department_id, at), Shift.role == ShiftRole.PRIMARY.value)
        .order_by(Shift.starts_at.desc())
        .limit(1)
        .scalar_subquery()
    )


def primary_id_now(department: Department) -> int | None:
    """Who to alert of a consult entering the queue: only their id, one small read."""
    return db.session.scalar(select(primary_id_at(department.id, clock.now())))


def coverage_at(department_id: int, at: datetime) -> Coverage:
    shifts = db.session.scalars(
        select(Shift)
        .where(*_covering(department_id, at))
        .options(joinedload(Shift.user, innerjoin=True))
        .order_by(Shift.starts_at)
    )
    coverage = Coverage()
    for shift in shifts:
        if shift.role == ShiftRole.PRIMARY:
            coverage.primary = shift.user
        else:
            coverage.backups.append(shift.user)
    return coverage


def on_call_now(department: Department) -> Coverage:
    return coverage_at(department.id, clock.now())


def shifts_between(
    department: Department, start: datetime | None, end: datetime | None
) -> Select:
    """Shifts overlapping [start, end); by default those not yet over."""
    query = select(Shift).where(Shift.department_id == department.id)
    query = query.where(Shift.ends_at > (start or clock.now()))
    if end is not None:
        query = query.where(Shift.starts_at < end)
    query = query.options(joinedload(Shift.user, innerjoin=True))
    return query.order_by(Shift.starts_at, Shift.id)


@transaction
def add_shift(
    actor: User,
    department: Department,
    user: User,
    role: str,
    starts_at: datetime,
    ends_at: datetime,
) -> Shift:
    """Schedule a shift. Refused for a non-member, or a primary overlapping another primary."""
    access.may_manage_department(actor, department).enforce()
    given = _shift_input(department, user, role, starts_at, ends_at)
    role, starts_at, ends_at = given["role"], given["starts_at"], given["ends_at"]
    # Lock the department row (PostgreSQL) so two overlapping primaries
    # cannot both pass the check below.
    db.session.execute(
        select(Department.id).where(Department.id == department.id).with_for_update()
    )
    if role == ShiftRole.PRIMARY:
        clash = db.session.scalar(
            select(Shift)
            .where(
                Shift.department_id == department.id,
                Shift.role == ShiftRole.PRIMARY.value,
                Shift.starts_at < ends_at,
                Shift.ends_at > starts_at,
            )
            .options(joinedload(Shift.user, innerjoin=True))
        )
        if clash is not None:
            raise Conflict(
                f"{clash.user.name} is already primary from "
                f"{clash.starts_at:%Y-%m-%d %H:%M} to {clash.ends_at:%Y-%m-%d %H:%M} UTC."
            )
    shift = Shift(
        department=department,
        user=user,
        role=role,
        starts_at=starts_at,
        ends_at=ends_at,
    )
    db.session.add(shift)
    return shift


def _shift_input(department, user, role, starts_at, ends_at) -> dict:
    """Every bad field of a new shift at once (see limits.py)."""
    errors = {}
    if user is None or not access.is_member(user, department):
        errors["user_id"] = [f"Choose a member of {department.name}."]
    try:
        given = limits.clean_all(
            role=(limits.SHIFT_ROLE, role),
            starts_at=(limits.SHIFT_START, starts_at),
            ends_at=(limits.SHIFT_END, ends_at),
        )
    except Invalid as error:
        errors.update(error.errors)
        given = {}
    if "starts_at" in given and "ends_at" in given:
        length = given["ends_at"] - given["starts_at"]
        if length <= timedelta(0):
            errors["ends_at"] = ["A shift must end after it starts."]
        elif length > limits.LONGEST_SHIFT:
            errors["ends_at"] = [
                f"A shift lasts at most {limits.LONGEST_SHIFT.days} days."
            ]
    if errors:
        raise Invalid.of(errors)
    return given


@transaction
def remove_shift(actor: User, department: Department, shift_id: int) -> None:
    access.may_manage_department(actor, department).enforce()
    shift = db.session.get(Shift, shift_id)
    if shift is None or shift.department_id != department.id:
        raise NotFound("No such shift.")
    db.session.delete(shift)
