"""Staff come and go: every change to users, departments and memberships.

The pattern of the consult actions: one function per change, each one
transaction, each checked by one predicate (`may_administer`,
`may_manage_members`) and written to the administrative log (`AdminEvent`).
`actor` None is the command line (or the system), which may do all.

Leaving never orphans a consult (SPEC rules 1 and 7): a user deactivated, or
removed from a department, in the same transaction loses their API tokens
(`_end_access`), their shifts not yet over (the chiefs are alerted of the gap)
and the handoffs offered to them; each open consult they own there goes to the
department's primary on call at that moment, or else a chief, as an assignment
by the system with the reason on its timeline, deadlines unchanged. A
department's last member or last chief cannot leave it.
"""

import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from broker import accounts, clock, sessions
from broker.consults import actions, limits
from broker.consults.access import ALLOWED, Verdict, is_chief
from broker.consults.deadlines import default_policies
from broker.consults.errors import Conflict, Invalid, NotAllowed
from broker.consults.notifications import alert
from broker.consults.oncall import on_call_now
from broker.consults.queries import WITH_PEOPLE
from broker.consults.transactions import transaction
from broker.extensions import db
from broker.models import (
    OWNED_STATUSES,
    AdminEvent,
    Consult,
    Department,
    Membership,
    Shift,
    User,
)

# Predicates


def may_administer(actor: User | None) -> Verdict:
    """Administrators manage users and departments."""
    if actor is None or actor.is_admin:
        return ALLOWED
    return Verdict(NotAllowed("Only an administrator may do this."))


def may_manage_members(actor: User | None, department: Department) -> Verdict:
    """A department's chiefs (and administrators) add and remove its members and chiefs."""
    if actor is None or actor.is_admin or is_chief(actor, department):
        return ALLOWED
    return Verdict(
        NotAllowed(
            f"Only a chief of {department.name} or an administrator may do this."
        )
    )


def _log(
    actor: User | None,
    kind: str,
    detail: str,
    user: User | None = None,
    department: Department | None = None,
) -> None:
    db.session.add(
        AdminEvent(
            at=clock.now(),
            kind=kind,
            actor=actor,
            user=user,
            department=department,
            detail=detail[:300],
        )
    )


def _end_access(user: User, keeping: sessions.Credential | None = None) -> None:
    """The one place a user's access ends: every session and token (but `keeping`,
    the one asking), in the caller's transaction; their sockets close once it commits."""
    sessions.end_all_in_transaction(user, keeping)


# Users


def _user_input(email, name, password=None, *, password_required=False) -> dict:
    checks = {
        "email": (limits.EMAIL, email),
        "name": (limits.PERSON_NAME, name),
    }
    if password is not None or password_required:
        checks["password"] = (limits.PASSWORD.for_email(email), password)
    given = limits.clean_all(**checks)
    given["email"] = accounts.normalise_email(given["email"])
    return given


def _email_free(email: str, user: User | None = None) -> None:
    taken = accounts.user_by_email(email)
    if taken is not None and taken is not user:
        raise Conflict(f"A user with email {email} already exists.")


@transaction
def create_user(
    actor: User | None,
    email: str,
    name: str,
    password: str | None = None,
    admin: bool = False,
) -> User:
    """A new user, in no department (a chief adds them).

    Without a password they sign in through the identity provider, or after a reset.
    """
    may_administer(actor).enforce()
    given = _user_input(email, name, password)
    _email_free(given["email"])
    user = User(email=given["email"], name=given["name"], is_admin=admin)
    if password is None:
        user.password_hash = ""
    else:
        user.set_password(password, current_app.config["PASSWORD_HASH_METHOD"])
    db.session.add(user)
    db.session.flush()
    role = " (administrator)" if admin else ""
    _log(actor, "user_created", f"{user.name} <{user.email}>{role}", user=user)
    return user


@transaction
def edit_user(
    actor: User | None,
    user: User,
    name: str | None = None,
    email: str | None = None,
    admin: bool | None = None,
) -> User:
    """Change a user's name, e-mail or administrator role."""
    may_administer(actor).enforce()
    given = _user_input(
        user.email if email is None else email, user.name if name is None else name
    )
    changes = []
    if given["email"] != user.email:
        _email_free(given["email"], user)
        changes.append(f"e-mail {user.email} → {given['email']}")
        user.email = given["email"]
    if given["name"] != user.name:
        changes.append(f"name {user.name} → {given['name']}")
        user.name = given["name"]
    if admin is not None and admin != user.is_admin:
        if not admin:
            _keep_an_administrator(user)
        changes.append("made administrator" if admin else "no longer administrator")
        user.is_admin = admin
    if changes:
        _log(actor, "user_edited", f"{user.name}: {'; '.join(changes)}", user=user)
    return user


def _keep_an_administrator(user: User) -> None:
    others = db.session.scalar(
        select(User.id).where(User.is_admin, User.active, User.id != user.id).limit(1)
    )
    if user.is_admin and others is None:
        raise Conflict(f"{user.name} is the last active administrator.")


@transaction
def deactivate_user(actor: User | None, user: User) -> User:
    """The user leaves the hospital: out of every department (see `_leave`), signed
    out everywhere, and unable to sign in until reactivated."""
    may_administer(actor).enforce()
    if not user.active:
        raise Conflict(f"{user.name} is already deactivated.")
    _keep_an_administrator(user)
    departments = sorted((m.department for m in user.memberships), key=lambda d: d.name)
    for department in departments:
        _may_leave(user, department)
    reason = f"{user.name}'s account was deactivated"
    for department in departments:
        _leave(user, department, reason)
    user.active = False
    _end_access(user)
    left = ", ".join(d.slug for d in departments) or "no department"
    _log(actor, "user_deactivated", f"{user.name} (left {left})", user=user)
    return user


@transaction
def reactivate_user(actor: User | None, user: User) -> User:
    """The user may sign in again; they are in no department until a chief adds them."""
    may_administer(actor).enforce()
    if user.active:
        raise Conflict(f"{user.name} is active.")
    user.active = True
    _log(actor, "user_reactivated", user.name, user=user)
    return user


@transaction
def reset_password(actor: User | None, user: User) -> str:
    """A temporary password, shown once to the administrator: the user must set a
    new one at their next sign-in. Their tokens end."""
    may_administer(actor).enforce()
    temporary = secrets.token_urlsafe(12)
    user.set_password(temporary, current_app.config["PASSWORD_HASH_METHOD"])
    user.must_change_password = True
    _end_access(user)
    _log(actor, "password_reset", user.name, user=user)
    return temporary


@transaction
def change_password(
    user: User, current: str, new: str, keeping: sessions.Credential | None = None
) -> User:
    """The user sets their own password (the current one required). Every other
    token (all but `keeping`, the one asking) ends."""
    errors = {}
    if not user.check_password(current or ""):
        errors["current_password"] = ["Wrong password."]
    if why := limits.PASSWORD.for_email(user.email).problem(new):
        errors["new_password"] = [why]
    elif user.check_password(new):
        errors["new_password"] = ["Choose a password other than the current one."]
    if errors:
        raise Invalid.of(errors)
    user.set_password(new, current_app.config["PASSWORD_HASH_METHOD"])
    user.must_change_password = False
    _end_access(user, keeping)
    _log(user, "password_changed", user.name, user=user)
    return user


@transaction
def make_token(user: User, name: str, days: int) -> str:
    """A personal API token with a name and an expiry (for users without a password)."""
    given = limits.clean_all(
        name=(limits.TOKEN_NAME, name), days=(limits.TOKEN_DAYS, days)
    )
    _log(user, "token_created", f"{user.name}: {given['name']}", user=user)
    return accounts.issue_token(
        user, name=given["name"], lifetime=timedelta(days=given["days"])
    )


# Departments


@transaction
def create_department(actor: User | None, slug: str, name: str) -> Department:
    may_administer(actor).enforce()
    given = limits.clean_all(
        slug=(limits.SLUG, (slug or "").strip().lower() or slug),
        name=(limits.DEPARTMENT_NAME, name),
    )
    if db.session.scalar(select(Department).where(Department.slug == given["slug"])):
        raise Conflict(f"A department with slug {given['slug']} already exists.")
    department = Department(
        slug=given["slug"], name=given["name"], policies=default_policies()
    )
    db.session.add(department)
    db.session.flush()
    _log(actor, "department_created", department.name, department=department)
    return department


@transaction
def rename_department(
    actor: User | None, department: Department, name: str
) -> Department:
    may_administer(actor).enforce()
    given = limits.clean_all(name=(limits.DEPARTMENT_NAME, name))
    if given["name"] != department.name:
        _log(
            actor,
            "department_renamed",
            f"{department.name} → {given['name']}",
            department=department,
        )
        department.name = given["name"]
    return department


@transaction
def archive_department(actor: User | None, department: Department) -> Department:
    """An archived department takes no new consults; one with open consults cannot be."""
    may_administer(actor).enforce()
    if department.archived_at is not None:
        raise Conflict(f"{department.name} is archived already.")
    still_open = db.session.scalar(
        select(Consult.id)
        .where(
            Consult.department_id == department.id,
            Consult.status.in_(("pending", *OWNED_STATUSES)),
        )
        .limit(1)
    )
    if still_open is not None:
        raise Conflict(
            f"{department.name} has open consults: redirect or close them first."
        )
    department.archived_at = clock.now()
    _log(actor, "department_archived", department.name, department=department)
    return department


# Members


@transaction
def set_membership(
    actor: User | None, department: Department, user: User, chief: bool = False
) -> Membership:
    """Add the user to the department, or change whether they are its chief."""
    may_manage_members(actor, department).enforce()
    if not user.active:
        raise Conflict(f"{user.name} is deactivated: reactivate them first.")
    if department.archived_at is not None:
        raise Conflict(f"{department.name} is archived.")
    membership = db.session.get(Membership, (user.id, department.id))
    if membership is None:
        membership = Membership(user=user, department=department, is_chief=chief)
        db.session.add(membership)
        role = "chief" if chief else "member"
        _log(actor, "member_added", f"{user.name} as {role}", user, department)
    elif membership.is_chief != chief:
        if not chief:
            _keep_a_chief(department, user)
        membership.is_chief = chief
        what = "made chief" if chief else "no longer chief"
        _log(actor, "member_changed", f"{user.name} {what}", user, department)
    db.session.flush()
    return membership


@transaction
def remove_member(actor: User | None, department: Department, user: User) -> None:
    """The user leaves the department (see `_leave`)."""
    may_manage_members(actor, department).enforce()
    if db.session.get(Membership, (user.id, department.id)) is None:
        raise Conflict(f"{user.name} is not a member of {department.name}.")
    _may_leave(user, department)
    _leave(user, department, f"{user.name} left {department.name}")
    _end_access(user)
    _log(actor, "member_removed", user.name, user, department)


def _others(department: Department, user: User) -> list[Membership]:
    return [m for m in department.memberships if m.user_id != user.id]


def _keep_a_chief(department: Department, user: User) -> None:
    if not any(m.is_chief for m in _others(department, user)):
        raise Conflict(
            f"{user.name} is the last chief of {department.name}: "
            "make another member chief first."
        )


def _may_leave(user: User, department: Department) -> None:
    """Refused (409) when the department would be left without members or chief."""
    if department.archived_at is not None:
        return
    if not _others(department, user):
        raise Conflict(
            f"{user.name} is the last member of {department.name}: "
            "add another member first (or archive it)."
        )
    if is_chief(user, department):
        _keep_a_chief(department, user)


def _leave(user: User, department: Department, reason: str) -> None:
    """The user leaves the department without orphaning anything (SPEC rules 1, 7)."""
    at = clock.now()
    gone = list(
        db.session.scalars(
            select(Shift)
            .where(
                Shift.user_id == user.id,
                Shift.department_id == department.id,
                Shift.ends_at > at,
            )
            .order_by(Shift.starts_at)
        )
    )
    for shift in gone:
        db.session.delete(shift)
    db.session.delete(db.session.get(Membership, (user.id, department.id)))
    db.session.flush()
    db.session.expire(department, ["memberships"])
    db.session.expire(user, ["memberships"])
    if gone:
        _alert_chiefs_of_gap(department, user, gone)
    in_department = (
        select(Consult)
        .where(Consult.department_id == department.id)
        .options(*WITH_PEOPLE)
    )
    for consult in db.session.scalars(
        in_department.where(Consult.handoff_to_id == user.id)
    ).all():
        actions.withdraw_offer(consult, reason)
    owned = db.session.scalars(
        in_department.where(
            Consult.owner_id == user.id, Consult.status.in_(OWNED_STATUSES)
        ).order_by(Consult.id)
    ).all()
    if owned:
        successor = _successor(department, user)
        for consult in owned:
            actions.assign_by_system(consult, successor, reason)


def _successor(department: Department, leaving: User) -> User:
    """Who takes a leaving owner's consults: the primary on call now, else a chief."""
    primary = on_call_now(department).primary
    members = {m.user_id: m for m in department.memberships}
    if primary is not None and primary.id != leaving.id and primary.id in members:
        return primary
    chiefs = sorted(
        (m.user for m in members.values() if m.is_chief and m.user_id != leaving.id),
        key=lambda u: u.name,
    )
    if not chiefs:
        raise Conflict(
            f"No one can take over {leaving.name}'s consults in {department.name}: "
            "no primary is on call now and it has no other chief."
        )
    return chiefs[0]


def _alert_chiefs_of_gap(department: Department, user: User, gone: list[Shift]) -> None:
    first = gone[0].starts_at
    message = (
        f"{user.name} left {department.name}: {len(gone)} shift(s) from "
        f"{first:%Y-%m-%d %H:%M} UTC are no longer covered."
    )
    alert(
        [
            {
                "user_id": m.user_id,
                "consult_id": None,
                "kind": "shift_gap",
                "message": message,
            }
            for m in department.memberships
            if m.is_chief and m.user_id != user.id
        ]
    )


def admin_log(limit: int = 200, before_id: int | None = None) -> list[AdminEvent]:
    """The administrative log, newest first."""
    query = select(AdminEvent).order_by(AdminEvent.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AdminEvent.id < before_id)
    return list(db.session.scalars(query))


@transaction
def identify(
    subject: str,
    email: str | None,
    email_verified: bool,
    name: str | None,
    create: bool,
) -> User:
    """The user the identity provider signed in: by its subject, else (the first time)
    by a verified e-mail, else made now when `create` (OIDC_CREATE_USERS). A
    deactivated user is refused whatever the provider says."""
    user = db.session.scalar(select(User).where(User.oidc_subject == subject))
    if user is None:
        if not (email and email_verified):
            raise NotAllowed(
                "Your identity provider has not verified your email address, so it "
                "cannot be matched to an account here. Ask an administrator."
            )
        user = accounts.user_by_email(email)
        if user is not None and user.oidc_subject is None:
            user.oidc_subject = subject
            _log(None, "identity_linked", f"{user.name} <{user.email}>", user=user)
        elif user is None and create:
            given = _user_input(email, name or email)
            user = User(
                email=given["email"],
                name=given["name"],
                password_hash="",
                oidc_subject=subject,
            )
            db.session.add(user)
            db.session.flush()
            _log(
                None,
                "user_created",
                f"{user.name} <{user.email}> at first sign-in",
                user=user,
            )
        else:
            raise NotAllowed(
                f"There is no account here for {email}. Ask an administrator to "
                "create one."
            )
    if not user.active:
        raise NotAllowed("Your account here is deactivated. Ask an administrator.")
    return user
