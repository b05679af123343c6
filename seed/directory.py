"""The generated departments and people, under @gen.example: made once, reused after."""

import random
import secrets
from datetime import datetime

from flask import current_app
from sqlalchemy import insert, select
from werkzeug.security import generate_password_hash

from broker import accounts
from broker.consults.deadlines import minutes_for
from broker.extensions import db
from broker.models import Department, Membership, User
from seed.hospital import (
    DEPARTMENTS,
    FIRST_NAMES,
    LAST_NAMES,
    REQUESTER_TITLES,
    REQUESTERS,
    URGENCIES,
)

DOMAIN = "gen.example"


def cumulative(weights) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


class Dept:
    """A department as the generator needs it: ids, policy minutes, who works there."""

    def __init__(self, row, department: Department, members, chiefs):
        slug, _, share, _, urgency_weights, redirects_to = row
        self.id = department.id
        self.slug = slug
        self.share = share
        self.urgency_cum = cumulative(urgency_weights)
        self.redirects_to = redirects_to
        self.members = members  # consultant ids, chief(s) included
        self.chiefs = chiefs
        self.consultants = [m for m in members if m not in chiefs] or members
        self.minutes = {u: minutes_for(department, u) for u in URGENCIES}


def people() -> tuple[list, list]:
    """The generated staff and requesters: always the same names and emails."""
    rng = random.Random(20_260_101)
    names = [(f, s) for f in FIRST_NAMES for s in LAST_NAMES]
    rng.shuffle(names)
    staff, requesters = [], []
    n = 0
    for slug, _, _, consultants, _, _ in DEPARTMENTS:
        for k in range(consultants + 1):
            first, last = names[n]
            n += 1
            email = f"{first}.{last}@{DOMAIN}".lower()
            staff.append((email, f"Dr. {first} {last}", slug, k == 0))
    for _ in range(REQUESTERS):
        first, last = names[n]
        n += 1
        title = REQUESTER_TITLES[rng.randrange(len(REQUESTER_TITLES))]
        requesters.append(
            (f"{first}.{last}@{DOMAIN}".lower(), title.format(f"{first} {last}"))
        )
    return staff, requesters


def directory(joined: datetime) -> tuple[dict, list, int, int]:
    """Create what is missing of the generated departments, users and memberships.

    New users are dated `joined`, before the history they take part in. Returns
    ({slug: Dept}, requester ids, users created, departments created).
    """
    by_slug, departments_created = _departments()
    staff, requesters = people()
    ids, users_created = _users(staff + requesters, joined)
    _memberships(staff, ids, by_slug)
    db.session.commit()
    departments = {}
    for row in DEPARTMENTS:
        slug = row[0]
        members = [ids[e] for e, _, s, _ in staff if s == slug]
        chiefs = [ids[e] for e, _, s, chief in staff if s == slug and chief]
        departments[slug] = Dept(row, by_slug[slug], members, chiefs)
    requester_ids = [ids[email] for email, _ in requesters]
    return departments, requester_ids, users_created, departments_created


def _departments() -> tuple[dict[str, Department], int]:
    created = 0
    by_slug = {}
    for slug, name, *_ in DEPARTMENTS:
        department = db.session.scalar(
            select(Department).where(Department.slug == slug)
        )
        if department is None:
            department = accounts.create_department(slug, name)
            created += 1
        by_slug[slug] = department
    return by_slug, created


def _user_ids() -> dict[str, int]:
    query = select(User.email, User.id).where(User.email.like(f"%@{DOMAIN}"))
    return dict(db.session.execute(query).all())


def _users(people: list, joined: datetime) -> tuple[dict[str, int], int]:
    """{email: id} of everyone in `people`, and how many were created now."""
    existing = _user_ids()
    # One hash of a random password nobody is told: generated users cannot sign in.
    password_hash = generate_password_hash(
        secrets.token_urlsafe(32), method=current_app.config["PASSWORD_HASH_METHOD"]
    )
    new_users = [
        {
            "email": email,
            "name": name,
            "password_hash": password_hash,
            "is_admin": False,
            "created_at": joined,
        }
        for email, name, *_ in people
        if email not in existing
    ]
    if new_users:
        db.session.execute(insert(User.__table__), new_users)
        existing = _user_ids()
    return existing, len(new_users)


def _memberships(staff: list, ids: dict[str, int], by_slug: dict) -> None:
    memberships = set(
        db.session.execute(select(Membership.user_id, Membership.department_id)).all()
    )
    new_memberships = [
        {
            "user_id": ids[email],
            "department_id": by_slug[slug].id,
            "is_chief": is_chief,
        }
        for email, _, slug, is_chief in staff
        if (ids[email], by_slug[slug].id) not in memberships
    ]
    if new_memberships:
        db.session.execute(insert(Membership.__table__), new_memberships)
