"""A new consult is written by a plain INSERT, then put in the session as read
(broker/consults/actions.py `_insert_new`): it must be what the unit of work's
INSERT left, and leave the session on a rollback as the unit of work's would."""

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from broker.consults import actions
from broker.extensions import db
from broker.models import Consult, User
from tests.conftest import NEW_CONSULT


def _patel() -> User:
    return db.session.scalar(select(User).where(User.email == "patel@h.test"))


def test_new_consult_is_in_the_session_as_read(app, hospital):
    with app.app_context():
        consult = actions.create(_patel(), **NEW_CONSULT, request_key="k1")
        state = inspect(consult)
        assert state.persistent
        assert not state.expired_attributes and not state.unloaded
        assert consult.version == 1 and consult.status == "pending"
        assert [e.kind for e in consult.events] == ["created"]
        assert consult.owner is None and consult.handoff_to is None
        assert consult.department.slug == "radiology"
        stored = select(Consult.version).where(Consult.id == consult.id)
        assert db.session.scalar(stored) == 1
        made, created = actions.create_once(_patel(), "k1", **NEW_CONSULT)
        assert made is consult and not created


def test_a_rollback_after_the_insert_takes_it_out_of_the_session(
    app, hospital, monkeypatch
):
    with app.app_context():
        inserted = []  # held: the session's identity map holds its objects weakly

        def fails(consult, *args):
            inserted.append(consult)
            raise RuntimeError("after the INSERT")

        monkeypatch.setattr(actions, "_alert_primary", fails)
        with pytest.raises(RuntimeError):
            actions.create(_patel(), **NEW_CONSULT)
        assert inserted and inserted[0] not in db.session
        assert not [o for o in db.session if isinstance(o, Consult)]
        monkeypatch.undo()
        # SQLite may give the next consult the id of the rolled-back one.
        assert actions.create(_patel(), **NEW_CONSULT).version == 1


def test_a_duplicate_request_key_raises_from_the_insert(app, hospital, monkeypatch):
    with app.app_context():
        first = actions.create(_patel(), **NEW_CONSULT, request_key="dup")
        with pytest.raises(IntegrityError):
            actions.create(_patel(), **NEW_CONSULT, request_key="dup")
        looked = []
        made_with = actions._made_with

        def misses_first(*args):  # a retry committed it meanwhile
            looked.append(args)
            return None if len(looked) == 1 else made_with(*args)

        monkeypatch.setattr(actions, "_made_with", misses_first)
        made, created = actions.create_once(_patel(), "dup", **NEW_CONSULT)
        assert made.id == first.id and not created and len(looked) == 2
