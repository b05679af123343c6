"""The access audit: every read of a consult's details is recorded, and chiefs can see who read."""

from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from broker import clock
from broker.consults import access
from broker.consults.errors import NotAllowed
from broker.consults.transactions import transaction
from broker.extensions import db
from broker.models import Consult, ConsultRead, User


@transaction
def record_read(consult: Consult, user: User, via: str) -> None:
    """`via`: api, page or live (a watch). Its own small transaction, after the read."""
    db.session.add(
        ConsultRead(consult_id=consult.id, user_id=user.id, at=clock.now(), via=via)
    )


def access_log(user: User, consult: Consult) -> Select:
    """Who read the consult, newest first: for its department's chiefs and admins."""
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
