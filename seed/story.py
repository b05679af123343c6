"""The stories the generated consults live through: who asks whom, when, and what follows.

Each consult is created, then claimed (perhaps after a redirect, or cancelled
before), perhaps handed off, answered, perhaps followed up, and closed by its
requester or by the sweep; whatever has not happened by the end has not
happened. The draws come from one seeded random generator in a fixed order, so
the same seed and end tell the same stories.
"""

import bisect
import math
import random

from broker.consults.deadlines import DEFAULT_MINUTES
from broker.consults.escalation import AUTO_CLOSED
from broker.models import EventKind, Status, Urgency
from seed.directory import cumulative
from seed.hospital import (
    ANSWERS,
    CANCEL_REASONS,
    CANCELLED,
    CLAIM_MEDIAN,
    CLAIM_SIGMA,
    CLOSED_BY_REQUESTER,
    COMMENTED,
    DECLINE_REASONS,
    FOLLOWED_UP,
    FOLLOWED_UP_AGAIN,
    FOLLOWUP_ANSWERS,
    FOLLOWUPS,
    HANDED_OFF,
    HANDOFF_DECLINED,
    HANDOFF_NOTES,
    HOURLY,
    NEGLECTED,
    QUESTIONS,
    RATED,
    RATING_COMMENTS,
    RATING_WEIGHTS,
    RATING_WEIGHTS_LATE,
    RATINGS,
    REDIRECT_REASONS,
    REDIRECTED,
    URGENCIES,
    WEEKDAYS,
    WORK_MEDIAN,
    WORK_SIGMA,
)
from seed.life import Life
from seed.times import DAY, HOUR, MINUTE, SECOND, next_sweep, weekday, year


class History:
    """Tells each consult's story in turn; the lives share the event ids and the end."""

    def __init__(self, departments, requesters, seed, end, days, auto_close, dt):
        self.rng = random.Random(seed)
        self.requesters = requesters
        self.depts = departments
        self.dept_list = list(departments.values())
        self.dept_cum = cumulative(d.share for d in self.dept_list)
        self.consultants = [(m, d.id) for d in self.dept_list for m in d.consultants]
        # A few requesters send most consults: a Zipf-like weight by a fixed rank.
        ranks = list(range(len(self.requesters)))
        random.Random(7).shuffle(ranks)
        self.requester_cum = cumulative(1 / (rank + 5) ** 0.8 for rank in ranks)
        self.end = end  # microseconds, as every instant here
        self.start = self.end - days * DAY
        self.auto_close = int(auto_close.total_seconds()) * SECOND
        self.dt = dt  # microseconds -> what the writer hands to the database
        self.next_event = 1

    # --- arrivals

    def arrivals(self, n: int) -> list[int]:
        """Creation instants, sorted: hours weighted by hour of day and weekday."""
        rng = self.rng
        hours = (self.end - self.start) // HOUR
        weights = []
        for k in range(hours):
            at = self.start + k * HOUR
            weights.append(HOURLY[(at // HOUR) % 24] * WEEKDAYS[weekday(at)])
        cum = cumulative(weights)
        picked = rng.choices(range(hours), cum_weights=cum, k=n)
        return sorted(self.start + k * HOUR + rng.randrange(HOUR) for k in picked)

    def left_open(self, arrivals: list[int]) -> dict[int, str]:
        """Some consults of the last two days left unclaimed or unanswered at the end.

        So that "open and overdue now" is never empty: each is created at least
        eight hours (the longest default claim time) before the end.
        """
        lo = bisect.bisect_left(arrivals, self.end - 2 * DAY)
        hi = bisect.bisect_right(arrivals, self.end - 8 * HOUR)
        candidates = list(range(lo, hi))
        k = min(len(candidates), max(3, len(arrivals) // 5000))
        chosen = self.rng.sample(candidates, k)
        return {
            i: ("unclaimed" if n % 2 == 0 else "unanswered")
            for n, i in enumerate(chosen)
        }

    # --- draws

    def lognormal(self, median_micros: float, sigma: float) -> int:
        return int(median_micros * math.exp(self.rng.gauss(0.0, sigma)))

    def slowness(self, at: int) -> float:
        """Nights and weekends are slower."""
        hour = (at // HOUR) % 24
        factor = 1.5 if hour < 7 or hour >= 21 else 1.0
        return factor * 1.3 if weekday(at) >= 5 else factor

    def _delay(self, median, sigma, at, neglected_minutes, neglected_range) -> int:
        """A log-normal time, slower at night; now and then neglected on top."""
        delay = self.lognormal(median * MINUTE * self.slowness(at), sigma)
        if self.rng.random() < NEGLECTED:
            delay += int(
                neglected_minutes * MINUTE * self.rng.uniform(*neglected_range)
            )
        return delay

    def claim_delay(self, urgency, at) -> int:
        """From routing to claim. Scaled on the spec's default deadlines (not the policy)."""
        default = DEFAULT_MINUTES[Urgency(urgency)].claim
        delay = self._delay(
            CLAIM_MEDIAN[urgency], CLAIM_SIGMA[urgency], at, default, (0.8, 2.5)
        )
        return max(delay, 20 * SECOND)

    def work(self, urgency, at) -> int:
        """From claim to answer."""
        default = DEFAULT_MINUTES[Urgency(urgency)].answer
        work = self._delay(
            WORK_MEDIAN[urgency], WORK_SIGMA[urgency], at, default, (0.6, 1.6)
        )
        return max(work, 2 * MINUTE)

    def pick(self, items):
        return items[self.rng.randrange(len(items))]

    def _weighted(self, items, cum):
        return items[bisect.bisect_right(cum, self.rng.random() * cum[-1])]

    def colleague(self, dept, not_user):
        others = [m for m in dept.members if m != not_user]
        return self.pick(others)

    def _requester(self, dept) -> int:
        """Mostly a requester; one consult in ten, a consultant of another department."""
        if self.rng.random() < 0.1:
            requester, home = self.pick(self.consultants)
            if home != dept.id:
                return requester
        return self._weighted(self.requesters, self.requester_cum)

    # --- the life

    def life(self, consult_id: int, created: int, left_open: str | None):
        """One consult's story: (its consults row, its event rows)."""
        rng = self.rng
        dept = self._weighted(self.dept_list, self.dept_cum)
        urgency = self._weighted(URGENCIES, dept.urgency_cum)
        requester = self._requester(dept)
        question = self.pick(QUESTIONS[dept.slug])
        patient_ref = f"MRN-{rng.randrange(10_000_000):07d}"
        study_ref = self._study_ref(dept.slug, created)

        life = Life(self, consult_id, dept, urgency, requester)
        life.emit(EventKind.CREATED.value, requester, created)
        life.route(dept, created)
        fate = rng.random()
        cancel = redirect = None
        if left_open is None and fate < CANCELLED:
            cancel = "pending" if rng.random() < 0.6 else "claimed"
        elif left_open is None and fate < CANCELLED + REDIRECTED:
            redirect = "pending" if rng.random() < 0.75 else "claimed"
        self._play(life, cancel, redirect, left_open)
        life.happens(
            self.end + 1
        )  # the sweeps up to the end, whatever stopped the story
        return life.row(question, patient_ref, study_ref, created), life.events

    def _study_ref(self, slug: str, created: int) -> str | None:
        rng = self.rng
        if slug == "radiology" and rng.random() < 0.9:
            return f"ACC-{rng.randrange(10_000_000):07d}"
        if slug == "pathology" and rng.random() < 0.85:
            return f"S{year(created) % 100:02d}-{rng.randrange(100_000):05d}"
        if slug == "cardiology" and rng.random() < 0.3:
            return f"ECHO-{rng.randrange(1_000_000):06d}"
        return None

    def _play(self, life: Life, cancel, redirect, left_open):
        """From the queue to the close; returns where the story stops (the end, or a cancel)."""
        claimed = self._until_claimed(life, cancel, redirect, left_open)
        if claimed is None:
            return
        claim_at, work = claimed
        if cancel == "claimed":
            at = claim_at + int(work * self.rng.uniform(0.2, 0.9))
            if life.happens(at):
                self._cancel(life, at)
            return
        answer_at = claim_at + work
        if self.rng.random() < HANDED_OFF:
            answer_at = self._hand_off(life, claim_at, work, answer_at)
            if answer_at is None:
                return
        if left_open == "unanswered" or not life.happens(answer_at):
            return
        life.answer(answer_at, self.pick(ANSWERS))
        auto_at = self._followups(life)
        if auto_at is not None:
            self._close(life, auto_at)

    def _until_claimed(self, life: Life, cancel, redirect, left_open):
        """Until someone takes it (a redirect goes round again): (claim instant, work).

        None when the story stops first: cancelled, left unclaimed, or the end.
        """
        rng = self.rng
        while True:
            routed = life.routed_at
            claim_at = routed + self.claim_delay(life.urgency, routed)
            if redirect == "pending":
                at = routed + int((claim_at - routed) * rng.uniform(0.3, 0.9))
                if not life.happens(at):
                    return None
                self._redirect(life, self.pick(life.dept.members), at)
                redirect = None
                continue
            if cancel == "pending":
                at = routed + int((claim_at - routed) * rng.uniform(0.2, 0.95))
                if life.happens(at):
                    self._cancel(life, at)
                return None
            if left_open == "unclaimed" or not life.happens(claim_at):
                return None
            self._take(life, claim_at)
            work = self.work(life.urgency, claim_at)
            if redirect == "claimed":
                at = claim_at + int(work * rng.uniform(0.1, 0.5))
                if not life.happens(at):
                    return None
                self._redirect(life, life.owner, at)
                redirect = None
                continue
            return claim_at, work

    def _take(self, life: Life, at: int):
        """A consultant claims it, or, alerted at level 2, the chief assigns it."""
        dept = life.dept
        user = self.pick(dept.consultants)
        assigned = (
            life.escalation_level == 2 and dept.chiefs and self.rng.random() < 0.6
        )
        life.take(user, at)
        if assigned:
            chief = self.pick(dept.chiefs)
            life.emit(EventKind.ASSIGNED.value, chief, at, subject=user)
        else:
            life.emit(EventKind.CLAIMED.value, user, at)

    def _hand_off(self, life: Life, claim_at: int, work: int, answer_at: int):
        """An offer to a colleague, declined or accepted: the new answer instant, or None."""
        rng = self.rng
        offered = claim_at + int(work * rng.uniform(0.15, 0.6))
        if not life.happens(offered):
            return None
        owner, to = life.owner, self.colleague(life.dept, life.owner)
        note = self.pick(HANDOFF_NOTES)
        life.handoff_to, life.handoff_note, life.handoff_at = to, note, offered
        life.emit(EventKind.HANDOFF_OFFERED.value, owner, offered, note, subject=to)
        replied = offered + max(self.lognormal(8 * MINUTE, 0.9), 30 * SECOND)
        if not life.happens(replied):
            return None
        life.withdraw_handoff()
        if rng.random() < HANDOFF_DECLINED:
            reason = self.pick(DECLINE_REASONS)
            kind = EventKind.HANDOFF_DECLINED.value
            life.emit(kind, to, replied, reason, subject=owner)
        else:
            life.owner = to
            life.handoffs += 1
            life.emit(EventKind.HANDOFF_ACCEPTED.value, to, replied, subject=owner)
            # The new owner reads the case before answering.
            answer_at = max(answer_at, replied + int(work * rng.uniform(0.2, 0.5)))
        return max(answer_at, replied + MINUTE)

    def _followups(self, life: Life):
        """Answered: follow-ups, each answered, before the sweep would close it.

        Returns when the sweep would close it after the last answer, or None when
        the story ends first.
        """
        chance = FOLLOWED_UP
        while True:
            auto_at = next_sweep(life.answered_at + self.auto_close)
            if self.rng.random() >= chance:
                return auto_at
            asked = life.answered_at + self.lognormal(45 * MINUTE, 1.0)
            if asked >= auto_at:
                return auto_at
            if not life.happens(asked):
                return None
            life.ask_again(asked, self.pick(FOLLOWUPS))
            median = WORK_MEDIAN[life.urgency] * 0.4 * MINUTE
            answered = asked + self.lognormal(median, 0.8)
            if not life.happens(answered):
                return None
            life.answer(answered, self.pick(FOLLOWUP_ANSWERS))
            chance = FOLLOWED_UP_AGAIN

    def _close(self, life: Life, auto_at: int):
        """Closed by the requester (mostly rated), or else by the sweep at `auto_at`."""
        rng = self.rng
        closing = (
            life.answered_at + self.lognormal(2 * HOUR, 1.1)
            if rng.random() < CLOSED_BY_REQUESTER
            else auto_at
        )
        if closing >= auto_at:
            if life.happens(auto_at):
                life.status = Status.CLOSED.value
                life.closed_at = auto_at
                life.withdraw_handoff()
                life.emit(EventKind.CLOSED.value, None, auto_at, detail=AUTO_CLOSED)
            return
        if not life.happens(closing):
            return
        if rng.random() < RATED:
            weights = RATING_WEIGHTS if life.answered_in_time else RATING_WEIGHTS_LATE
            life.rating = rng.choices(RATINGS, weights)[0]
            life.comment = (
                self.pick(RATING_COMMENTS) if rng.random() < COMMENTED else None
            )
        life.status = Status.CLOSED.value
        life.closed_at = closing
        life.withdraw_handoff()
        life.end_ladder(reset_level=False)
        rated = f"rated {life.rating}/5" if life.rating else None
        kind = EventKind.CLOSED.value
        life.emit(kind, life.requester, closing, life.comment, detail=rated)

    def _redirect(self, life: Life, user: int, at: int):
        origin = life.dept
        target = self.depts[self.pick(origin.redirects_to)]
        life.withdraw_handoff()
        life.claimed_at = life.claim_seconds = life.claimed_in_time = None
        life.redirects += 1
        life.route(target, at)
        life.emit(
            EventKind.REDIRECTED.value,
            user,
            at,
            self.pick(REDIRECT_REASONS),
            detail=f"{origin.slug} → {target.slug}",
        )

    def _cancel(self, life: Life, at: int):
        life.status = Status.CANCELLED.value
        life.withdraw_handoff()
        life.end_ladder(reset_level=False)
        reason = self.pick(CANCEL_REASONS)
        life.emit(EventKind.CANCELLED.value, life.requester, at, reason)
