"""Deadline policy: how many minutes a department allows, and the due times that follow."""

from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from broker.consults import access, limits
from broker.consults.errors import Invalid
from broker.consults.transactions import transaction
from broker.extensions import db
from broker.models import Consult, DeadlinePolicy, Department, Urgency, User


@dataclass(frozen=True)
class Minutes:
    claim: int
    answer: int
    followup: int


# The three numbers of a policy, by name: ("claim", "answer", "followup").
PARTS = tuple(f.name for f in fields(Minutes))


# SPEC.md defaults for claim/answer. The spec gives no follow-up default: a
# follow-up answer gets the same time as a first answer.
DEFAULT_MINUTES = {
    Urgency.STAT: Minutes(claim=15, answer=60, followup=60),
    Urgency.URGENT: Minutes(claim=60, answer=240, followup=240),
    Urgency.ROUTINE: Minutes(claim=480, answer=2880, followup=2880),
}


def default_policies() -> list[DeadlinePolicy]:
    """One policy row per urgency with the defaults, for a new department."""
    return [
        DeadlinePolicy(
            urgency=urgency.value,
            claim_minutes=m.claim,
            answer_minutes=m.answer,
            followup_minutes=m.followup,
        )
        for urgency, m in DEFAULT_MINUTES.items()
    ]


def minutes_for(department: Department, urgency: str) -> Minutes:
    # Reading the policies flushes nothing: an action's changes so far are written
    # once, with its timeline event (one UPDATE, one version bump).
    with db.session.no_autoflush:
        policies = department.policies
    for policy in policies:
        if policy.urgency == urgency:
            return Minutes(
                policy.claim_minutes, policy.answer_minutes, policy.followup_minutes
            )
    return DEFAULT_MINUTES[Urgency(urgency)]


MINUTE = timedelta(minutes=1)


def due_from(m: Minutes, routed_at, minute=MINUTE):
    """(claim due, answer due), both counted from the moment of routing.

    Pure, like `followup_due_from` and `rungs`: the instants are datetimes, or any
    numbers whose `minute` is given (the history generator counts microseconds).
    """
    return routed_at + m.claim * minute, routed_at + m.answer * minute


def followup_due_from(m: Minutes, asked_at, minute=MINUTE):
    """A follow-up's answer is due its own interval after the question."""
    return asked_at + m.followup * minute


def rungs(m: Minutes, due, minute=MINUTE):
    """A ladder's (level 1, level 2) times: the deadline, then one claim interval later.

    The same on both ladders: from claim_due_at while unclaimed, from
    answer_due_at (the owner first) once claimed.
    """
    return due, due + m.claim * minute


def due_times(
    department: Department, urgency: str, routed_at: datetime
) -> tuple[datetime, datetime]:
    """(claim_due_at, answer_due_at), both counted from the moment of routing."""
    return due_from(minutes_for(department, urgency), routed_at)


def by_deadline(at: datetime, due: datetime) -> bool:
    """SPEC's "within deadline": done at or before the due instant."""
    return at <= due


def followup_answer_due(
    department: Department, urgency: str, asked_at: datetime
) -> datetime:
    return followup_due_from(minutes_for(department, urgency), asked_at)


def _rungs(consult: Consult, due: datetime) -> tuple[datetime, datetime]:
    return rungs(minutes_for(consult.department, consult.urgency), due)


def start_claim_ladder(consult: Consult) -> None:
    """Unclaimed: level 1 at claim_due_at, level 2 one claim interval later."""
    consult.escalation_level = 0
    consult.level1_escalation_at, consult.level2_escalation_at = _rungs(
        consult, consult.claim_due_at
    )


def start_answer_ladder(consult: Consult) -> None:
    """Claimed: level 1 at answer_due_at (the owner first), level 2 one claim interval later."""
    consult.escalation_level = 0
    consult.level1_escalation_at, consult.level2_escalation_at = _rungs(
        consult, consult.answer_due_at
    )


def end_ladder(consult: Consult, reset_level: bool) -> None:
    """No deadline is running any more (answered, closed, cancelled)."""
    if reset_level:
        consult.escalation_level = 0
    consult.level1_escalation_at = None
    consult.level2_escalation_at = None


def check_policy(minutes: dict[str, Minutes]) -> None:
    """Every bad number at once, as the API names them:
    {urgency: {"claim_minutes" | "answer_minutes" | "followup_minutes": [why]}}."""
    errors: dict = {}
    for urgency, m in minutes.items():
        if (why := limits.URGENCY.problem(urgency)) is not None:
            errors[urgency] = [why]
            continue
        bad = {
            f"{part}_minutes": [why]
            for part in PARTS
            if (why := limits.MINUTES.problem(getattr(m, part))) is not None
        }
        if not bad and m.answer < m.claim:
            bad["answer_minutes"] = [
                "The time to answer cannot be shorter than to claim."
            ]
        if bad:
            errors[urgency] = bad
    if errors:
        raise Invalid.of(errors)


@transaction
def set_policy(user: User, department: Department, minutes: dict[str, Minutes]) -> None:
    """Replace the minutes for the urgencies given; consults already routed keep their deadlines."""
    access.may_manage_department(user, department).enforce()
    check_policy(minutes)
    by_urgency = {p.urgency: p for p in department.policies}
    for urgency, m in minutes.items():
        policy = by_urgency.get(urgency)
        if policy is None:
            policy = DeadlinePolicy(urgency=urgency)
            department.policies.append(policy)
        policy.claim_minutes = m.claim
        policy.answer_minutes = m.answer
        policy.followup_minutes = m.followup
