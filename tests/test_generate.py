"""`flask --app wsgi generate`: a synthetic history that reads as the broker would have written it.

Every generated consult is replayed from its timeline and checked against its
columns and report facts; the real sweep, run at the history's end, must find
nothing left to escalate or close; the same seed gives the same rows.
"""

import hashlib
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from helpers import assert_cli_refused
from sqlalchemy import select, text

from broker.consults.escalation import sweep
from broker.consults.queries import WITH_PEOPLE
from broker.extensions import db
from broker.models import (
    Consult,
    ConsultEvent,
    DeadlinePolicy,
    Department,
    Membership,
    User,
)
from seed.generate import DOMAIN, generate_history

END = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # a Monday noon


@pytest.fixture
def history(app):
    """history(n, days, seed=7) -> the counts; generated up to END."""

    def make(consults, days, seed=7):
        with app.app_context():
            return generate_history(consults, days, seed, end=END)

    return make


def _empty_database():
    if db.engine.dialect.name == "postgresql":
        tables = ", ".join(t.name for t in db.metadata.sorted_tables)
        db.session.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        db.session.commit()
    else:
        db.session.remove()
        db.drop_all()
        db.create_all()


def _digest() -> str:
    """Every column of every consult and event, in id order."""
    digest = hashlib.sha256()
    for table in (Consult.__table__, ConsultEvent.__table__):
        for row in db.session.execute(select(table).order_by(table.c.id)):
            digest.update(repr(tuple(row)).encode())
    return digest.hexdigest()


def _timelines() -> dict[int, list[ConsultEvent]]:
    timelines = defaultdict(list)
    for event in db.session.scalars(select(ConsultEvent).order_by(ConsultEvent.id)):
        timelines[event.consult_id].append(event)
    return timelines


# --- the command ----------------------------------------------------------------


def test_generate_command_makes_consults_and_says_what_and_how_long(flask, app):
    result = flask("generate", "--consults", "300", "--days", "30", "--seed", "7")

    assert result.exit_code == 0, result.output
    assert "300 consults" in result.output
    assert " s" in result.output  # how long it took
    with app.app_context():
        assert db.session.scalar(select(db.func.count(Consult.id))) == 300
        events = db.session.scalar(select(db.func.count(ConsultEvent.id)))
        assert events >= 3 * 300
        assert db.session.scalar(select(db.func.count(Department.id))) >= 6
        # Created now: the newest consult is from the last day.
        newest = db.session.scalar(select(db.func.max(Consult.created_at)))
        assert datetime.now(UTC) - newest < timedelta(days=1)


@pytest.mark.parametrize(
    "args",
    [
        ["--consults", "0", "--days", "30"],
        ["--consults", "-5", "--days", "30"],
        ["--consults", "300", "--days", "0"],
        ["--consults", "300", "--days", "-1"],
        ["--consults", "many", "--days", "30"],
        ["--consults", "300"],
        ["--days", "30"],
        ["--consults", "300", "--days", "30", "--seed", "x"],
        ["--consults", "300", "--days", "30", "--end", "last week"],
    ],
)
def test_bad_arguments_are_refused_in_one_line(flask, app, args):
    result = flask("generate", *args)

    assert_cli_refused(result)
    with app.app_context():
        assert db.session.scalar(select(db.func.count(Consult.id))) == 0


def test_the_same_seed_gives_the_same_history(flask, app, history):
    args = ["--consults", "300", "--days", "30", "--seed", "7"]
    result = flask("generate", *args, "--end", END.isoformat())
    assert result.exit_code == 0, result.output
    with app.app_context():
        first = _digest()
        _empty_database()
    history(300, 30, seed=7)
    with app.app_context():
        assert _digest() == first
        _empty_database()
    history(300, 30, seed=8)
    with app.app_context():
        assert _digest() != first


def test_a_second_run_adds_to_the_history_and_reuses_people(app, history):
    first = history(200, 10)
    second = history(100, 10, seed=9)

    assert first["users_created"] > 300 and first["departments_created"] >= 6
    assert second["users_created"] == 0 and second["departments_created"] == 0
    assert second["first_consult_id"] == 201
    with app.app_context():
        assert db.session.scalar(select(db.func.count(Consult.id))) == 300
        emails = db.session.scalars(select(User.email)).all()
        assert len(emails) == len(set(emails))


def test_an_existing_department_is_reused_with_its_own_deadlines(app, history):
    with app.app_context():
        from broker import accounts

        radiology = accounts.create_department("radiology", "Radiology")
        for policy in radiology.policies:
            policy.claim_minutes *= 2
            policy.answer_minutes *= 2
        db.session.commit()
        minutes = {p.urgency: p.claim_minutes for p in radiology.policies}

    history(300, 10)

    with app.app_context():
        rows = db.session.execute(
            select(Consult.urgency, Consult.routed_at, Consult.claim_due_at)
            .join(Department)
            .where(Department.slug == "radiology")
        ).all()
        assert rows
        for urgency, routed_at, claim_due_at in rows:
            assert claim_due_at - routed_at == timedelta(minutes=minutes[urgency])


# --- every consult as the broker would have written it --------------------------


def _policies() -> dict[tuple[int, str], DeadlinePolicy]:
    return {
        (p.department_id, p.urgency): p
        for p in db.session.scalars(select(DeadlinePolicy))
    }


def _check(consult: Consult, timeline, members, policies, auto_close: timedelta):
    """Replay one timeline: each step allowed where it happens, the columns what it left."""
    kinds = [e.kind for e in timeline]
    first = timeline[0]
    assert first.kind == "created" and first.actor_id == consult.requester_id
    assert first.at == consult.created_at
    assert all(a.at <= b.at for a, b in zip(timeline, timeline[1:], strict=False))
    assert consult.version == len(timeline)
    assert consult.updated_at == timeline[-1].at

    status, owner, offered_to, department = "pending", None, None, None
    routed_at = consult.created_at
    claimed_at = first_answer = last_answer = closed_at = None
    level = max_level = 0
    for event in timeline[1:]:
        kind, actor = event.kind, event.actor_id
        if kind in ("claimed", "assigned"):
            assert status == "pending"
            status = "claimed"
            owner = actor if kind == "claimed" else event.subject_id
            claimed_at = claimed_at or event.at
            level = 0
        elif kind == "handoff_offered":
            assert status in ("claimed", "answered") and actor == owner
            assert event.subject_id != owner and event.body
            offered_to = event.subject_id
        elif kind in ("handoff_accepted", "handoff_declined"):
            assert actor == offered_to and event.subject_id == owner
            if kind == "handoff_accepted":
                owner = actor
            offered_to = None
        elif kind == "answered":
            assert status == "claimed" and actor == owner and event.body
            status = "answered"
            first_answer = first_answer or event.at
            last_answer = event.at
            level = 0
        elif kind == "followup":
            assert status == "answered" and actor == consult.requester_id
            status = "claimed"
            level = 0
        elif kind == "redirected":
            assert status in ("pending", "claimed") and event.body
            origin, target = event.detail.split(" → ")
            assert origin != target
            status, owner, offered_to = "pending", None, None
            routed_at, claimed_at, level = event.at, None, 0
            department = target
        elif kind == "escalated":
            assert actor is None and status in ("pending", "claimed")
            waiting = "claimed" if status == "pending" else "answered"
            assert event.detail == f"level {level + 1}: not {waiting} by its deadline"
            level += 1
            max_level = max(max_level, level)
        elif kind == "closed":
            assert status == "answered"
            status, closed_at, offered_to = "closed", event.at, None
            if actor is None:
                assert (
                    event.detail
                    == "closed automatically: no follow-up after the answer"
                )
                assert event.at >= last_answer + auto_close
                assert consult.rating is None
            else:
                assert actor == consult.requester_id
                rated = f"rated {consult.rating}/5" if consult.rating else None
                assert event.detail == rated
                assert event.body == consult.rating_comment
        elif kind == "cancelled":
            assert status in ("pending", "claimed", "answered")
            assert actor == consult.requester_id and event.body
            status, offered_to = "cancelled", None
        else:
            raise AssertionError(f"unexpected event {kind}")

    assert consult.status == status
    if status in ("claimed", "answered", "closed"):
        assert consult.owner_id == owner
        assert owner in members[consult.department_id]
    if status == "pending":
        assert consult.owner_id is None
    assert consult.handoff_to_id == offered_to
    assert (consult.handoff_offered_at is None) == (offered_to is None)
    if department is not None:
        assert consult.department.slug == department
    assert consult.routed_at == routed_at
    assert consult.claimed_at == claimed_at
    assert consult.first_answered_at == first_answer
    assert consult.answered_at == last_answer
    assert consult.closed_at == closed_at
    assert consult.escalation_level == level
    assert consult.max_escalation_level == max_level

    # The report facts.
    policy = policies[(consult.department_id, consult.urgency)]
    assert consult.claim_due_at == routed_at + timedelta(minutes=policy.claim_minutes)
    if claimed_at is None:
        assert consult.claim_seconds is None and consult.claimed_in_time is None
    else:
        assert consult.claim_seconds == int((claimed_at - routed_at).total_seconds())
        assert consult.claimed_in_time == (claimed_at <= consult.claim_due_at)
    if first_answer is None:
        assert consult.answer_seconds is None and consult.answered_in_time is None
    else:
        assert consult.answer_seconds == int((first_answer - routed_at).total_seconds())
        first_due = routed_at + timedelta(minutes=policy.answer_minutes)
        assert consult.answered_in_time == (first_answer <= first_due)
    assert consult.followup_count == kinds.count("followup")
    assert consult.handoff_count == kinds.count("handoff_accepted")
    assert consult.redirect_count == kinds.count("redirected")
    assert (consult.max_escalation_level > 0) == ("escalated" in kinds)
    if consult.rating is not None:
        assert 1 <= consult.rating <= 5 and status == "closed"

    # The ladder: what is still to fire, as start_claim/answer_ladder left it.
    if status in ("pending", "claimed"):
        due = consult.claim_due_at if status == "pending" else consult.answer_due_at
        step = timedelta(minutes=policy.claim_minutes)
        assert consult.level1_escalation_at == (due if level == 0 else None)
        assert consult.level2_escalation_at == (due + step if level < 2 else None)
    else:
        assert consult.level1_escalation_at is None
        assert consult.level2_escalation_at is None


def test_every_consult_agrees_with_its_timeline(app, history):
    history(1500, 20)

    with app.app_context():
        members = defaultdict(set)
        for m in db.session.scalars(select(Membership)):
            members[m.department_id].add(m.user_id)
        policies = _policies()
        timelines = _timelines()
        auto_close = timedelta(hours=app.config["AUTO_CLOSE_HOURS"])
        consults = db.session.scalars(
            select(Consult).options(*WITH_PEOPLE).order_by(Consult.id)
        ).all()
        assert len(consults) == 1500
        for consult in consults:
            try:
                _check(consult, timelines[consult.id], members, policies, auto_close)
            except AssertionError as error:
                raise AssertionError(f"consult {consult.id}: {error}") from error
        # Nothing after the end.
        assert max(e.at for t in timelines.values() for e in t) <= END


def test_a_claim_or_answer_at_its_deadline_is_in_time(app, history, monkeypatch):
    """SPEC's "within deadline" is by the deadline: at the due instant still counts."""
    from broker.consults.deadlines import DEFAULT_MINUTES
    from broker.models import Urgency
    from seed.story import History
    from seed.times import MINUTE

    def minutes(urgency):  # the generated departments keep the default policy
        return DEFAULT_MINUTES[Urgency(urgency)]

    monkeypatch.setattr(  # claimed at claim_due_at
        History, "claim_delay", lambda self, u, at: minutes(u).claim * MINUTE
    )
    monkeypatch.setattr(  # and answered at answer_due_at
        History,
        "work",
        lambda self, u, at: (minutes(u).answer - minutes(u).claim) * MINUTE,
    )
    history(300, 30)

    with app.app_context():
        consults = db.session.scalars(select(Consult)).all()
        on_time_claims = [c for c in consults if c.claimed_at == c.claim_due_at]
        on_time_answers = [
            c for c in consults if c.first_answered_at == c.answer_due_at
        ]
        assert len(on_time_claims) > 100 and len(on_time_answers) > 100
        assert all(c.claimed_in_time for c in on_time_claims)
        assert all(c.answered_in_time for c in on_time_answers)


def test_the_sweep_at_the_end_finds_nothing_left_to_do(app, history):
    """Every rung due by the end has fired, every answer old enough has been closed."""
    history(1500, 20)

    with app.app_context():
        result = sweep(END, timedelta(hours=app.config["AUTO_CLOSE_HOURS"]))
        assert result.escalated == [] and result.closed == []
        # ... but later it would: the open consults' deadlines keep running.
        later = sweep(END + timedelta(days=4), timedelta(hours=72))
        assert later.escalated and later.closed


# --- a realistic mix ------------------------------------------------------------


def test_the_mix_reads_like_a_hospital(app, history):
    made = history(4000, 60)

    with app.app_context():
        consults = db.session.scalars(select(Consult)).all()
        urgency = Counter(c.urgency for c in consults)
        assert urgency["routine"] > urgency["urgent"] > urgency["stat"] > 0
        assert 0.5 < urgency["routine"] / len(consults) < 0.7

        # Day-time and weekday peaks.
        hours = Counter(c.created_at.hour for c in consults)
        assert sum(hours[h] for h in range(9, 17)) > 3 * sum(
            hours[h] for h in range(0, 8)
        )
        weekdays = Counter(c.created_at.weekday() for c in consults)
        assert min(weekdays[d] for d in range(5)) > 1.5 * max(weekdays[5], weekdays[6])

        def share(condition):
            return sum(1 for c in consults if condition(c)) / len(consults)

        assert 0.02 < share(lambda c: c.handoff_count > 0) < 0.09
        assert 0.015 < share(lambda c: c.redirect_count > 0) < 0.05
        assert 0.06 < share(lambda c: c.followup_count > 0) < 0.14
        assert 0.025 < share(lambda c: c.status == "cancelled") < 0.06
        assert 0.02 < share(lambda c: c.max_escalation_level > 0) < 0.15
        assert share(lambda c: c.max_escalation_level == 2) > 0
        assert share(lambda c: c.claimed_in_time) > 0.85
        assert share(lambda c: c.answered_in_time) > 0.85
        assert share(lambda c: c.handoff_to_id is not None) >= 0  # offers may be open

        closed = [c for c in consults if c.status == "closed"]
        assert len(closed) > 0.85 * len(consults)
        rated = [c.rating for c in closed if c.rating]
        assert len(rated) > 0.6 * len(closed)
        assert sum(r >= 4 for r in rated) > 0.7 * len(rated)
        assert any(c.rating is None for c in closed)  # some closed automatically
        # Most closed by the requester within hours of the answer.
        quick = [c for c in closed if c.closed_at - c.answered_at < timedelta(hours=12)]
        assert len(quick) > 0.6 * len(closed)

        # Still open at the end, some of them overdue.
        statuses = Counter(c.status for c in consults)
        assert statuses["pending"] and statuses["claimed"] and statuses["answered"]
        overdue = [
            c
            for c in consults
            if (c.status == "pending" and c.claim_due_at <= END)
            or (c.status == "claimed" and c.answer_due_at <= END)
        ]
        assert overdue
        assert made["statuses"] == dict(statuses)


def test_a_small_history_still_has_open_overdue_consults(app, history):
    history(300, 30)

    with app.app_context():
        overdue = db.session.scalar(
            select(db.func.count(Consult.id)).where(
                Consult.status == "pending", Consult.claim_due_at <= END
            )
        )
        assert overdue >= 1


# --- the people -----------------------------------------------------------------


def test_generated_users_cannot_sign_in(app, client, history):
    history(50, 5)

    with app.app_context():
        emails = db.session.scalars(
            select(User.email).where(User.email.like(f"%@{DOMAIN}")).limit(3)
        ).all()
        demo_emails = db.session.scalar(
            select(db.func.count(User.id)).where(User.email.like("%@demo.test"))
        )
    assert len(emails) == 3 and demo_emails == 0
    for email in emails:
        for password in (
            "",
            "consult-demo",
            "password",
            "correct horse battery",
            email,
        ):
            response = client.post(
                "/api/tokens", json={"email": email, "password": password}
            )
            assert response.status_code in (401, 422), (email, password)


def test_generated_people_have_departments_and_chiefs(app, history):
    history(50, 5)

    with app.app_context():
        for department in db.session.scalars(select(Department)):
            members = [m for m in department.memberships]
            assert len(members) >= 6
            assert sum(m.is_chief for m in members) == 1
        requesters = db.session.scalar(
            select(db.func.count(User.id)).where(~User.memberships.any())
        )
        assert requesters >= 200


def test_the_api_still_creates_consults_after_generation(flask, app, make_caller):
    assert flask("generate", "--consults", "300", "--days", "30").exit_code == 0
    patel = make_caller("patel@h.test", "Dr Patel")

    response = patel.post(
        "/api/consults",
        json={
            "department": "radiology",
            "urgency": "stat",
            "patient_ref": "MRN-TEST-1",
            "question": "Any bleed on this head CT?",
        },
    )

    assert response.status_code == 201, response.json
    assert response.json["id"] == 301
    timeline = patel.get(f"/api/consults/{response.json['id']}").json["timeline"]
    assert [e["kind"] for e in timeline] == ["created"]


# --- failures -------------------------------------------------------------------


def test_a_refused_batch_is_one_line_and_keeps_the_batches_before_it(
    flask, app, monkeypatch
):
    """A row the database refuses (here a rating of 9) ends the run cleanly."""
    from seed import generate, story

    monkeypatch.setattr(generate, "BATCH_CONSULTS", 100)
    life = story.History.life

    def a_bad_row_in_the_second_batch(self, consult_id, created, left_open):
        row, events = life(self, consult_id, created, left_open)
        if consult_id == 150:
            row = row[:25] + (9,) + row[26:]  # rating
        return row, events

    monkeypatch.setattr(story.History, "life", a_bad_row_in_the_second_batch)

    result = flask("generate", "--consults", "300", "--days", "30")

    assert_cli_refused(result)
    assert "rating_range" in result.stderr and "100 consults" in result.stderr
    with app.app_context():
        assert db.session.scalar(select(db.func.count(Consult.id))) == 100


def test_a_database_without_tables_is_refused_in_one_line(flask, app):
    with app.app_context():
        db.drop_all()
    try:
        result = flask("generate", "--consults", "10", "--days", "1")
        assert_cli_refused(result)
    finally:
        with app.app_context():
            db.session.remove()
            db.create_all()
