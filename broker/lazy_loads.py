"""RAISE_ON_LAZY_LOAD (the tests set it): reading a consult's, a timeline event's or
a shift's people or department lazily, with a SELECT of its own, raises.

A page or a list reading each row's requester or owner lazily costs one SELECT
per row (an N+1). The queries name what they show (joinedload, queries.WITH_PEOPLE);
with the setting, a lazy load from one of these rows fails the test that made it
instead of reading. (A lazy load that finds its object already in the session
runs no SELECT, and is allowed.)
"""

from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from broker.models import Consult, ConsultEvent, Shift

WATCHED = (Consult, ConsultEvent, Shift)


class LazyLoad(RuntimeError):
    """A row's relation was read with a SELECT of its own (see the module)."""


@event.listens_for(Session, "do_orm_execute")
def _refuse_lazy_loads(state: ORMExecuteState) -> None:
    if not (state.is_select and state.is_relationship_load):
        return
    parent = state.lazy_loaded_from
    if (
        parent is not None
        and isinstance(parent.obj(), WATCHED)
        and has_app_context()
        and current_app.config.get("RAISE_ON_LAZY_LOAD")
    ):
        raise LazyLoad(
            f"{type(parent.obj()).__name__} read a relation lazily: "
            f"load it with the query ({state.statement})"
        )
