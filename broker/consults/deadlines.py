"""Deadline policy: how many minutes a department allows, and the due times that follow."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from broker.models import DeadlinePolicy, Department, Urgency


@dataclass(frozen=True)
class Minutes:
    claim: int
    answer: int
    followup: int


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
    for policy in department.policies:
        if policy.urgency == urgency:
            return Minutes(
                policy.claim_minutes, policy.answer_minutes, policy.followup_minutes
            )
    return DEFAULT_MINUTES[Urgency(urgency)]


def due_times(
    department: Department, urgency: str, routed_at: datetime
) -> tuple[datetime, datetime]:
    """(claim_due_at, answer_due_at), both counted from the moment of routing."""
    m = minutes_for(department, urgency)
    return routed_at + timedelta(minutes=m.claim), routed_at + timedelta(
        minutes=m.answer
    )


def followup_answer_due(
    department: Department, urgency: str, asked_at: datetime
) -> datetime:
    return asked_at + timedelta(minutes=minutes_for(department, urgency).followup)
