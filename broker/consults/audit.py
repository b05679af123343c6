"""The access audit: who was shown which consults' patient data, when, and through what.

Every answer, page and push that shows a consult's patient reference or question
records one row per consult shown, all of one disclosure written by one INSERT
(a queue page of 50 consults is one statement), in its own small transaction
after the read; an action's answer in the action's transaction (registry.py).
Rows are never changed or deleted (the database refuses it).
Its chiefs (their departments' consults) and administrators search it.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Select, insert, select, text
from sqlalchemy.orm import selectinload

from broker import clock
from broker.consults import access
from broker.consults.errors import Invalid, NotAllowed
from broker.consults.transactions import transaction
from broker.extensions import db
from broker.models import Consult, ConsultRead, Membership, User

# How a consult was shown: the API's consult, list and action answers; the consult,
# queue and my-consults pages; a `watch` answer and a live push.
VIAS = [
    "api",
    "api-list",
    "api-action",
    "page",
    "page-queue",
    "page-my-consults",
    "live",
    "live-push",
]


def rows_for(user_ids, consult_ids, via: str, at: datetime | None = None) -> list:
    at = at or clock.now()
    return [
        {"consult_id": c, "user_id": u, "at": at, "via": via}
        for u in user_ids
        for c in consult_ids
    ]


# PostgreSQL: the rows as four arrays, one statement with four parameters however many
# rows (an executemany would bind every row's values one by one).
_INSERT_ARRAYS = text(
    "INSERT INTO consult_reads (consult_id, user_id, at, via) SELECT * FROM unnest("
    "CAST(:consult_ids AS integer[]), CAST(:user_ids AS integer[]), "
    "CAST(:ats AS timestamp[]), CAST(:vias AS varchar[]))"
)


_INSERT_ROWS = insert(ConsultRead.__table__).inline()


def write(rows: list[dict]) -> None:
    """One INSERT for all the rows (nothing for none); one row as a plain VALUES."""
    if not rows:
        return
    if len(rows) == 1 or db.session.get_bind().dialect.name != "postgresql":
        db.session.execute(_INSERT_ROWS, rows[0] if len(rows) == 1 else rows)
        return
    db.session.execute(
        _INSERT_ARRAYS,
        {
            "consult_ids": [r["consult_id"] for r in rows],
            "user_ids": [r["user_id"] for r in rows],
            "ats": [r["at"].astimezone(UTC).replace(tzinfo=None) for r in rows],
            "vias": [r["via"] for r in rows],
        },
    )


# PostgreSQL: one disclosure (one person, one way, one instant) as the consult ids'
# array, the rest given once.
_INSERT_SHOWN = text(
    "INSERT INTO consult_reads (consult_id, user_id, at, via) SELECT "
    "unnest(CAST(:consult_ids AS integer[])), CAST(:user_id AS integer), "
    "CAST(:at AS timestamp), CAST(:via AS varchar)"
)


@transaction
def record_shown(user: User, consults, via: str) -> None:
    """`user` was shown these consults through `via`: one write, its own transaction."""
    consult_ids = [c.id for c in consults]
    if not consult_ids:
        return
    if db.session.get_bind().dialect.name != "postgresql":
        write(rows_for([user.id], consult_ids, via))
        return
    at = clock.now().astimezone(UTC).replace(tzinfo=None)
    db.session.execute(
        _INSERT_SHOWN,
        {"consult_ids": consult_ids, "user_id": user.id, "at": at, "via": via},
    )


def record_read(consult: Consult, user: User, via: str) -> None:
    record_shown(user, [consult], via)


def access_log(user: User, consult: Consult) -> Select:
    """Who was shown the consult, newest first: for its department's chiefs and admins."""
    if not access.can_manage_department(user, consult.department):
        raise NotAllowed(
            f"Only a chief of {consult.department.name} or an admin may see who read it."
        )
    return (
        select(ConsultRead)
        .where(ConsultRead.consult_id == consult.id)
        .options(selectinload(ConsultRead.user))
        .order_by(ConsultRead.id.desc())
    )


@dataclass
class AuditQuery:
    patient_ref: str | None = None
    user_id: int | None = None
    consult_id: int | None = None
    start: datetime | None = None
    end: datetime | None = None


def search(user: User, wanted: AuditQuery) -> Select:
    """The audit rows matching every given filter, newest first, in [start, end).

    An administrator searches everything; a chief the consults now in the
    departments they lead; anyone else is refused.
    """
    if wanted.start and wanted.end and wanted.end <= wanted.start:
        raise Invalid("to", "The end must be after the start.")
    query = (
        select(ConsultRead)
        .join(Consult, Consult.id == ConsultRead.consult_id)
        .options(selectinload(ConsultRead.user))
        .order_by(ConsultRead.at.desc(), ConsultRead.id.desc())
    )
    if not user.is_admin:
        led = select(Membership.department_id).where(
            Membership.user_id == user.id, Membership.is_chief
        )
        if not db.session.scalars(led).first():
            raise NotAllowed(
                "Only a department's chief or an admin may search the audit."
            )
        query = query.where(Consult.department_id.in_(led.scalar_subquery()))
    if wanted.patient_ref is not None:
        query = query.where(Consult.patient_ref == wanted.patient_ref)
    if wanted.user_id is not None:
        query = query.where(ConsultRead.user_id == wanted.user_id)
    if wanted.consult_id is not None:
        query = query.where(ConsultRead.consult_id == wanted.consult_id)
    if wanted.start is not None:
        query = query.where(ConsultRead.at >= wanted.start)
    if wanted.end is not None:
        query = query.where(ConsultRead.at < wanted.end)
    return query
