"""One consult as the actions and the sweep would leave it, played forward in time.

Its deadlines and escalation ladders come from broker/consults/deadlines.py,
counted in microseconds; its escalations and automatic close are stamped at the
instants the sweep (broker/consults/escalation.py, every 30 seconds) would fire
them, with the sweep's words.
"""

from broker.consults.deadlines import (
    by_deadline,
    due_from,
    end_ladder,
    followup_due_from,
    rungs,
)
from broker.consults.escalation import escalated_detail
from broker.models import EventKind, Status
from seed.times import MINUTE, SECOND, next_sweep


class Life:
    """A consult's columns while its story is told; `row()` is the consults row."""

    __slots__ = (
        "story", "id", "events", "dept", "urgency", "minutes", "requester", "status",
        "owner", "routed_at", "claim_due_at", "answer_due_at", "ladder_from",
        "escalation_level", "level1_escalation_at", "level2_escalation_at",
        "max_level", "claimed_at", "claim_seconds", "claimed_in_time",
        "first_answered", "answer_seconds", "answered_in_time", "answered_at",
        "closed_at", "followups", "handoffs", "redirects", "handoff_to",
        "handoff_note", "handoff_at", "rating", "comment",
    )  # fmt: skip

    def __init__(self, story, consult_id, dept, urgency, requester):
        self.story = story  # the event ids, the end, and the writer's `dt`
        self.id = consult_id
        self.events = []
        self.dept = dept
        self.urgency = urgency
        self.requester = requester
        self.status = Status.PENDING.value
        self.owner = None
        self.escalation_level = self.max_level = 0
        self.claimed_at = self.claim_seconds = self.claimed_in_time = None
        self.first_answered = self.answer_seconds = self.answered_in_time = None
        self.answered_at = self.closed_at = None
        self.followups = self.handoffs = self.redirects = 0
        self.handoff_to = self.handoff_note = self.handoff_at = None
        self.rating = self.comment = None
        self.level1_escalation_at = self.level2_escalation_at = None

    def emit(self, kind, actor, at, body=None, subject=None, detail=None):
        story = self.story
        self.events.append(
            (
                story.next_event,
                self.id,
                kind,
                actor,
                story.dt(at),
                body,
                subject,
                detail,
            )
        )
        story.next_event += 1

    def happens(self, at: int) -> bool:
        """Let the sweeps before `at` fire; then: does an action at `at` come before the end?"""
        end = self.story.end
        while (rung := self._next_rung()) is not None:
            level, rung_at = rung
            # The first sweep after both the rung time and the action that set it.
            swept = next_sweep(max(rung_at, self.ladder_from + 1))
            if swept >= at or swept > end:
                break
            self._escalate(level, swept)
        return at <= end

    def _next_rung(self) -> tuple[int, int] | None:
        if self.level1_escalation_at is not None:
            return 1, self.level1_escalation_at
        if self.level2_escalation_at is not None:
            return 2, self.level2_escalation_at
        return None

    def _escalate(self, level: int, swept: int) -> None:
        if level == 1:
            self.level1_escalation_at = None
        else:
            self.level2_escalation_at = None
        self.escalation_level = level
        self.max_level = max(self.max_level, level)
        detail = escalated_detail(level, self.status)
        self.emit(EventKind.ESCALATED.value, None, swept, detail=detail)

    def route(self, dept, at):
        """Into a department's queue: deadlines from now, the claim ladder running."""
        self.dept = dept
        self.minutes = dept.minutes[self.urgency]
        self.routed_at = at
        self.claim_due_at, self.answer_due_at = due_from(self.minutes, at, MINUTE)
        self.status = Status.PENDING.value
        self.owner = None
        self._start_ladder(self.claim_due_at, at)

    def _start_ladder(self, due, at):
        self.ladder_from = at
        self.escalation_level = 0
        self.level1_escalation_at, self.level2_escalation_at = rungs(
            self.minutes, due, MINUTE
        )

    def end_ladder(self, reset_level: bool):
        end_ladder(self, reset_level)

    def withdraw_handoff(self):
        self.handoff_to = self.handoff_note = self.handoff_at = None

    def take(self, user, at):
        """Claimed (or assigned): the owner's answer ladder starts."""
        self.status = Status.CLAIMED.value
        self.owner = user
        if self.claimed_at is None:
            self.claimed_at = at
            self.claim_seconds, self.claimed_in_time = self._turnaround(
                at, self.claim_due_at
            )
        self._start_ladder(self.answer_due_at, at)

    def _turnaround(self, at, due) -> tuple[int, bool]:
        """A first claim's or answer's report facts: seconds since routing, and in time.

        In time is by the deadline, at or before it, as SPEC defines it.
        """
        return (at - self.routed_at) // SECOND, by_deadline(at, due)

    def ask_again(self, at, body):
        """A follow-up question: claimed again, the answer due anew."""
        self.status = Status.CLAIMED.value
        self.answer_due_at = followup_due_from(self.minutes, at, MINUTE)
        self._start_ladder(self.answer_due_at, at)
        self.followups += 1
        self.emit(EventKind.FOLLOWUP.value, self.requester, at, body)

    def answer(self, at, body):
        self.status = Status.ANSWERED.value
        self.answered_at = at
        if self.first_answered is None:
            self.first_answered = at
            self.answer_seconds, self.answered_in_time = self._turnaround(
                at, self.answer_due_at
            )
        self.end_ladder(reset_level=True)
        self.emit(EventKind.ANSWERED.value, self.owner, at, body)

    def row(self, question, patient_ref, study_ref, created):
        """The consults row, in writers.CONSULT_COLUMNS order."""
        dt = self.story.dt
        open_ladder = self.status in (Status.PENDING, Status.CLAIMED)

        def maybe(at):
            return None if at is None else dt(at)

        def rung(at):
            return maybe(at) if open_ladder else None

        return (
            self.id,
            len(self.events),  # every write bumped the version once, from 1
            self.dept.id,
            self.urgency,
            self.status,
            self.requester,
            self.owner,
            patient_ref,
            question,
            study_ref,
            self.handoff_to,
            self.handoff_note,
            maybe(self.handoff_at),
            dt(created),
            dt(self.routed_at),
            maybe(self.claimed_at),
            maybe(self.answered_at),
            maybe(self.first_answered),
            maybe(self.closed_at),
            self.events[-1][4],
            dt(self.claim_due_at),
            dt(self.answer_due_at),
            self.escalation_level,
            rung(self.level1_escalation_at),
            rung(self.level2_escalation_at),
            self.rating,
            self.comment,
            self.claim_seconds,
            self.answer_seconds,
            self.claimed_in_time,
            self.answered_in_time,
            self.followups,
            self.handoffs,
            self.redirects,
            self.max_level,
        )
