"""A synthetic consult history: `flask --app wsgi generate --consults N --days D`.

For reports and benchmarks. The history is reproducible (the same seed and end
give the same rows) and reads like a hospital's: consults arrive mostly in the
day and on weekdays, routine ones outnumber urgent and stat ones, claims and
answers take log-normal times scaled per urgency so most meet the deadlines and
a tail does not (and escalates), and a share of consults is handed off,
redirected, followed up, cancelled, closed with a rating or closed automatically.

Each consult's life is played out as the domain functions and the sweep would
have written it (broker/consults/actions.py, broker/consults/escalation.py):
the same events with the same actors, bodies and details, the same columns and
report facts, escalations and automatic closes at the sweep instants (every 30
seconds) after the rung times. The history stops at `end`: whatever had not
happened by then has not happened, so the consults of the last hours and days
are still open, a few of them overdue, with their escalation rungs still to fire.

It is written in bulk, not through the ORM: ids are allocated from the current
maxima, the rows go in batches (COPY on PostgreSQL, executemany elsewhere), one
commit per batch. Generated users share one password hash of a random password
nobody knows, so none of them can sign in. Notifications are not generated.
"""

import bisect
import math
import queue
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import func, insert, select
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.security import generate_password_hash

from broker import accounts, clock
from broker.consults.deadlines import DEFAULT_MINUTES
from broker.extensions import db
from broker.models import (
    Consult,
    ConsultEvent,
    Department,
    EventKind,
    Membership,
    Status,
    Urgency,
    User,
)

DOMAIN = "gen.example"
BATCH_CONSULTS = 10_000

SECOND = 1_000_000  # times are whole microseconds since the epoch while generating
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
SWEEP_EVERY = 30 * SECOND  # the service's default sweep interval
EPOCH = datetime(1970, 1, 1)
AWARE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# slug, name, share of consults, consultants besides the chief,
# (stat, urgent, routine) weights, departments a misdirected consult goes to
DEPARTMENTS = [
    ("radiology", "Radiology", 30, 13, (10, 30, 60), ("cardiology", "neurology", "gastroenterology")),
    ("pathology", "Pathology", 12, 8, (3, 22, 75), ("hematology", "gastroenterology")),
    ("cardiology", "Cardiology", 14, 10, (14, 34, 52), ("radiology", "nephrology")),
    ("neurology", "Neurology", 10, 8, (15, 30, 55), ("radiology", "psychiatry")),
    ("infectious-diseases", "Infectious Diseases", 9, 7, (6, 30, 64), ("hematology", "gastroenterology")),
    ("gastroenterology", "Gastroenterology", 8, 7, (8, 30, 62), ("radiology", "infectious-diseases")),
    ("nephrology", "Nephrology", 7, 6, (8, 30, 62), ("cardiology",)),
    ("hematology", "Hematology", 6, 6, (8, 28, 64), ("pathology", "infectious-diseases")),
    ("psychiatry", "Psychiatry", 4, 5, (6, 30, 64), ("neurology",)),
]  # fmt: skip
REQUESTERS = 300
URGENCIES = (Urgency.STAT.value, Urgency.URGENT.value, Urgency.ROUTINE.value)

# Relative arrivals by hour of day (UTC, taken as the hospital's time) and weekday.
HOURLY = [0.25, 0.2, 0.18, 0.16, 0.16, 0.2, 0.35, 0.7, 1.2, 1.6, 1.75, 1.7,
          1.45, 1.55, 1.65, 1.55, 1.35, 1.05, 0.8, 0.65, 0.55, 0.45, 0.38, 0.3]  # fmt: skip
WEEKDAYS = [1.1, 1.05, 1.0, 1.0, 0.95, 0.5, 0.42]  # Monday first

# Behaviour, in minutes, per urgency: median time to claim and median work from
# claim to answer, with their log-normal spreads. Scaled on the spec's default
# deadlines, whatever a department's policy says: people do not speed up because
# a deadline moved, they miss it.
CLAIM_MEDIAN = {"stat": 4.0, "urgent": 14.0, "routine": 90.0}
CLAIM_SIGMA = {"stat": 0.7, "urgent": 0.8, "routine": 0.9}
WORK_MEDIAN = {"stat": 14.0, "urgent": 50.0, "routine": 300.0}
WORK_SIGMA = {"stat": 0.6, "urgent": 0.7, "routine": 1.0}
NEGLECTED = 0.012  # a consult forgotten in the queue, or by its owner, for a while

CANCELLED = 0.04
REDIRECTED = 0.03
HANDED_OFF = 0.055
HANDOFF_DECLINED = 0.15
FOLLOWED_UP = 0.10
FOLLOWED_UP_AGAIN = 0.15
CLOSED_BY_REQUESTER = 0.82
RATED = 0.92
COMMENTED = 0.3
RATINGS = (1, 2, 3, 4, 5)
RATING_WEIGHTS = (3, 4, 10, 28, 55)
RATING_WEIGHTS_LATE = (8, 12, 20, 30, 30)

FIRST_NAMES = [
    "Ada", "Ben", "Chloe", "Omar", "Priya", "Lena", "Marcus", "Sam", "Jordan", "Aisha",
    "Mateo", "Hana", "Ivan", "Grace", "Kwame", "Elena", "Tomas", "Yuki", "Nadia", "Felix",
    "Ines", "Ravi", "Sofia", "David", "Amara", "Lucas", "Mei", "Noah", "Zara", "Erik",
    "Fatima", "Hugo", "Leila", "Oscar", "Rosa", "Sanjay", "Tessa", "Victor", "Wen", "Yara",
]  # fmt: skip
LAST_NAMES = [
    "Abara", "Bergstrom", "Chen", "Dubois", "Eze", "Ferreira", "Gupta", "Hansen", "Ibrahim",
    "Jensen", "Kowalski", "Larsen", "Moreau", "Nakamura", "Osei", "Petrov", "Quinn", "Rossi",
    "Schmidt", "Tanaka", "Usman", "Varga", "Weber", "Xu", "Yilmaz", "Zhou", "Alvarez",
    "Becker", "Costa", "Dimitrov", "Evans", "Fontaine", "Garcia", "Horvat", "Ito", "Jovanovic",
    "Kim", "Lindqvist", "Mensah", "Novak", "Okoye", "Park", "Reyes", "Silva", "Torres",
    "Ueda", "Vasquez", "Wong", "Yamada", "Zanetti",
]  # fmt: skip
REQUESTER_TITLES = ["Dr. {}", "Dr. {}", "Dr. {}", "Dr. {}", "{}, NP", "{}, PA"]

QUESTIONS = {
    "radiology": [
        "CT abdomen from this morning: is there a drainable collection?",
        "Chest X-ray: new right basal opacity, effusion or consolidation?",
        "MRI spine: any cord compression to explain the new leg weakness?",
        "Ultrasound requested for suspected DVT of the left leg: can it be done today?",
        "Head CT after a fall on anticoagulation: any bleed?",
    ],
    "pathology": [
        "Please review margins on yesterday's colectomy specimen.",
        "Frozen section result for this morning's breast lumpectomy?",
        "Bone marrow aspirate: blasts or reactive change?",
        "Liver biopsy: is this autoimmune hepatitis or drug injury?",
    ],
    "cardiology": [
        "New atrial fibrillation with rate 130 after surgery: rate or rhythm control?",
        "Troponin rising with lateral ST depression: can someone see the patient today?",
        "Pre-operative assessment: is it safe to proceed with hip surgery?",
        "Echo shows reduced ejection fraction: how to start heart-failure treatment?",
    ],
    "neurology": [
        "Sudden left-sided weakness, last seen well 40 minutes ago: thrombolysis?",
        "First seizure in a 30-year-old: start an antiepileptic?",
        "Confusion and headache with fever: need a lumbar puncture first?",
    ],
    "infectious-diseases": [
        "MRSA bacteraemia: how long to treat and is an echo needed?",
        "Fever in a neutropenic patient on piperacillin: escalate antibiotics?",
        "Diabetic foot infection with osteomyelitis: oral switch possible?",
    ],
    "gastroenterology": [
        "Melaena with haemoglobin 78: endoscopy today or tomorrow?",
        "Rising bilirubin after cholecystectomy: ERCP needed?",
        "Refractory ascites: is a TIPS an option?",
    ],
    "nephrology": [
        "Creatinine doubled in 48 hours on vancomycin: dialysis indication?",
        "Potassium 6.8 despite treatment: can you review urgently?",
        "Nephrotic-range proteinuria: biopsy or treat empirically?",
    ],
    "hematology": [
        "Platelets 18 with petechiae: ITP or something else?",
        "Heparin-induced thrombocytopenia suspected: which anticoagulant now?",
        "Unexplained pancytopenia: marrow needed?",
    ],
    "psychiatry": [
        "Agitated delirium on the ward: help with medication?",
        "Patient refusing treatment: can you assess capacity today?",
        "Low mood after stroke: start an antidepressant?",
    ],
}
ANSWERS = [
    "Reviewed. Findings and recommendation are in the report; happy to discuss.",
    "Yes, this needs action today: plan agreed with the team, details in the note.",
    "No acute finding. Continue the current plan and re-consult if things change.",
    "Likely benign. Suggest a repeat in six weeks; no change in management now.",
    "Seen and examined. Recommendations written in the chart, will follow up tomorrow.",
]
FOLLOWUPS = [
    "Thanks. Does this change the timing of surgery?",
    "Could you clarify the dose you suggest?",
    "New result back since: does it alter your advice?",
    "Family asks about prognosis: anything to add?",
]
FOLLOWUP_ANSWERS = [
    "No change to the advice: proceed as planned.",
    "Dose and timing clarified in the note.",
    "Yes, with the new result I would treat now; updated the plan.",
]
HANDOFF_NOTES = [
    "End of my shift; prior imaging is linked.",
    "Called to theatre; this needs someone free now.",
    "Subspecialty question: you know these cases best.",
]
DECLINE_REASONS = [
    "In a procedure for the next two hours.",
    "Not my subspecialty, sorry.",
]
REDIRECT_REASONS = [
    "This needs a different specialty, not us.",
    "Question is for the service that manages this condition.",
]
CANCEL_REASONS = [
    "Patient discharged before the consult was needed.",
    "Question answered on the ward round.",
    "Surgery postponed; will send a new request.",
    "Sent to the wrong patient record.",
]
RATING_COMMENTS = [
    "Clear and quick, thank you.",
    "Very helpful.",
    "Took a while but the answer was thorough.",
    "Would have liked a phone call given the urgency.",
]


def generate_history(
    consults: int,
    days: int,
    seed: int,
    end: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Add `consults` consults created over the `days` days before `end` (default now).

    Departments and users under @gen.example are created, or reused when present.
    Returns the counts of what was made.
    """
    if consults < 1 or days < 1:
        raise ValueError("consults and days must be positive")
    end = (end or clock.now()).astimezone(UTC).replace(microsecond=0)
    start = end - timedelta(days=days)
    departments, requesters, users_created, departments_created = _directory(
        joined=start - timedelta(days=1)
    )
    writer = _writer(consults, progress)
    history = _History(
        departments,
        requesters,
        seed,
        end,
        days,
        auto_close=timedelta(hours=current_app.config["AUTO_CLOSE_HOURS"]),
        dt=writer.dt,
    )
    next_consult = (db.session.scalar(select(func.max(Consult.id))) or 0) + 1
    history.next_event = (db.session.scalar(select(func.max(ConsultEvent.id))) or 0) + 1
    db.session.commit()
    arrivals = history.arrivals(consults)
    left_open = history.left_open(arrivals)
    statuses: Counter = Counter()
    totals: Counter = Counter()
    events = 0
    try:
        for start in range(0, consults, BATCH_CONSULTS):
            rows, event_rows = [], []
            for i in range(start, min(start + BATCH_CONSULTS, consults)):
                row, life_events = history.life(
                    next_consult + i, arrivals[i], left_open.get(i)
                )
                rows.append(row)
                event_rows += life_events
                statuses[row[4]] += 1
                totals["escalated"] += row[34] > 0
                totals["followed_up"] += row[31] > 0
                totals["handed_off"] += row[32] > 0
                totals["redirected"] += row[33] > 0
            events += len(event_rows)
            writer.submit(rows, event_rows)
    finally:
        writer.finish()
    return {
        "consults": consults,
        "events": events,
        "departments_created": departments_created,
        "users_created": users_created,
        "first_consult_id": next_consult,
        "last_consult_id": next_consult + consults - 1,
        "statuses": dict(statuses),
        **dict(totals),
        "start": start,
        "end": end,
    }


CONSULT_COLUMNS = [
    "id", "version", "department_id", "urgency", "status", "requester_id", "owner_id",
    "patient_ref", "question", "study_ref", "handoff_to_id", "handoff_note",
    "handoff_offered_at", "created_at", "routed_at", "claimed_at", "answered_at",
    "first_answered_at", "closed_at", "updated_at", "claim_due_at", "answer_due_at",
    "escalation_level", "level1_escalation_at", "level2_escalation_at", "rating",
    "rating_comment", "claim_seconds", "answer_seconds", "claimed_in_time",
    "answered_in_time", "followup_count", "handoff_count", "redirect_count",
    "max_escalation_level",
]  # fmt: skip
EVENT_COLUMNS = [
    "id",
    "consult_id",
    "kind",
    "actor_id",
    "at",
    "body",
    "subject_id",
    "detail",
]


# --- the directory ------------------------------------------------------------


class _Dept:
    """A department as the generator needs it: ids, policy minutes, who works there."""

    def __init__(self, row, department: Department, members, chiefs):
        slug, _, share, _, urgency_weights, redirects_to = row
        self.id = department.id
        self.slug = slug
        self.share = share
        self.urgency_cum = _cumulative(urgency_weights)
        self.redirects_to = redirects_to
        self.members = members  # consultant ids, chief(s) included
        self.chiefs = chiefs
        self.consultants = [m for m in members if m not in chiefs] or members
        policies = {p.urgency: p for p in department.policies}
        self.minutes = {}  # urgency -> (claim, answer, follow-up) in microseconds
        for urgency in URGENCIES:
            p = policies.get(urgency)
            m = DEFAULT_MINUTES[Urgency(urgency)]
            claim, answer, followup = (
                (p.claim_minutes, p.answer_minutes, p.followup_minutes)
                if p
                else (m.claim, m.answer, m.followup)
            )
            self.minutes[urgency] = (claim * MINUTE, answer * MINUTE, followup * MINUTE)


def _people() -> tuple[list, list]:
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


def _directory(joined: datetime) -> tuple[dict, list, int, int]:
    """Create what is missing of the generated departments, users and memberships.

    New users are dated `joined`, before the history they take part in.
    """
    departments_created = 0
    by_slug = {}
    for slug, name, *_ in DEPARTMENTS:
        department = db.session.scalar(
            select(Department).where(Department.slug == slug)
        )
        if department is None:
            department = accounts.create_department(slug, name)
            departments_created += 1
        by_slug[slug] = department
    staff, requesters = _people()
    existing = {
        email: user_id
        for email, user_id in db.session.execute(
            select(User.email, User.id).where(User.email.like(f"%@{DOMAIN}"))
        )
    }
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
        for email, name, *_ in staff + requesters
        if email not in existing
    ]
    if new_users:
        db.session.execute(insert(User.__table__), new_users)
        existing = dict(
            db.session.execute(
                select(User.email, User.id).where(User.email.like(f"%@{DOMAIN}"))
            ).all()
        )
    memberships = set(
        db.session.execute(select(Membership.user_id, Membership.department_id)).all()
    )
    new_memberships = [
        {
            "user_id": existing[email],
            "department_id": by_slug[slug].id,
            "is_chief": is_chief,
        }
        for email, _, slug, is_chief in staff
        if (existing[email], by_slug[slug].id) not in memberships
    ]
    if new_memberships:
        db.session.execute(insert(Membership.__table__), new_memberships)
    db.session.commit()

    departments = {}
    for row in DEPARTMENTS:
        slug = row[0]
        ids = [existing[e] for e, _, s, _ in staff if s == slug]
        chiefs = [existing[e] for e, _, s, chief in staff if s == slug and chief]
        departments[slug] = _Dept(row, by_slug[slug], ids, chiefs)
    requester_ids = [existing[email] for email, _ in requesters]
    return departments, requester_ids, len(new_users), departments_created


def _cumulative(weights) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return out


# --- one consult's life -------------------------------------------------------


class _Life:
    """A consult as the actions and the sweep would leave it, played forward in time."""

    __slots__ = (
        "h", "id", "events", "dept", "urgency", "requester", "status", "owner",
        "routed", "claim_due", "answer_due", "claim_step", "l1", "l2", "ladder_from", "level",
        "max_level", "claimed_at", "claim_seconds", "claimed_in_time",
        "first_answered", "answer_seconds", "answered_in_time", "answered_at",
        "closed_at", "followups", "handoffs", "redirects", "handoff_to",
        "handoff_note", "handoff_at", "rating", "comment",
    )  # fmt: skip

    def __init__(self, history, consult_id, dept, urgency, requester):
        self.h = history
        self.id = consult_id
        self.events = []
        self.dept = dept
        self.urgency = urgency
        self.requester = requester
        self.status = Status.PENDING.value
        self.owner = None
        self.level = self.max_level = 0
        self.claimed_at = self.claim_seconds = self.claimed_in_time = None
        self.first_answered = self.answer_seconds = self.answered_in_time = None
        self.answered_at = self.closed_at = None
        self.followups = self.handoffs = self.redirects = 0
        self.handoff_to = self.handoff_note = self.handoff_at = None
        self.rating = self.comment = None
        self.l1 = self.l2 = None

    def emit(self, kind, actor, at, body=None, subject=None, detail=None):
        h = self.h
        self.events.append(
            (h.next_event, self.id, kind, actor, h.dt(at), body, subject, detail)
        )
        h.next_event += 1

    def happens(self, at: int) -> bool:
        """Let the sweeps before `at` fire; then: does an action at `at` come before the end?"""
        end = self.h.end
        while self.l1 is not None or self.l2 is not None:
            rung = self.l1 if self.l1 is not None else self.l2
            # The first sweep after both the rung time and the action that set it.
            swept = -(-max(rung, self.ladder_from + 1) // SWEEP_EVERY) * SWEEP_EVERY
            if swept >= at or swept > end:
                break
            level = 1 if self.l1 is not None else 2
            if level == 1:
                self.l1 = None
            else:
                self.l2 = None
            self.level = level
            self.max_level = max(self.max_level, level)
            waiting = "claimed" if self.status == Status.PENDING else "answered"
            self.emit(
                EventKind.ESCALATED.value,
                None,
                swept,
                detail=f"level {level}: not {waiting} by its deadline",
            )
        return at <= end

    def route(self, dept, at):
        """Into a department's queue: deadlines from now, the claim ladder running."""
        self.dept = dept
        self.routed = at
        claim, answer, _ = dept.minutes[self.urgency]
        self.claim_step = claim
        self.claim_due = at + claim
        self.answer_due = at + answer
        self.status = Status.PENDING.value
        self.owner = None
        self.level = 0
        self.l1 = self.claim_due
        self.l2 = self.claim_due + claim
        self.ladder_from = at

    def answer_ladder(self, at):
        self.ladder_from = at
        self.level = 0
        self.l1 = self.answer_due
        self.l2 = self.answer_due + self.claim_step

    def end_ladder(self, reset_level):
        if reset_level:
            self.level = 0
        self.l1 = self.l2 = None

    def withdraw_handoff(self):
        self.handoff_to = self.handoff_note = self.handoff_at = None

    def take(self, user, at):
        self.status = Status.CLAIMED.value
        self.owner = user
        if self.claimed_at is None:
            self.claimed_at = at
            self.claim_seconds = (at - self.routed) // SECOND
            self.claimed_in_time = at < self.claim_due
        self.answer_ladder(at)

    def answer(self, at, body):
        self.status = Status.ANSWERED.value
        self.answered_at = at
        if self.first_answered is None:
            self.first_answered = at
            self.answer_seconds = (at - self.routed) // SECOND
            self.answered_in_time = at < self.answer_due
        self.end_ladder(reset_level=True)
        self.emit(EventKind.ANSWERED.value, self.owner, at, body)

    def row(self, question, patient_ref, study_ref, created):
        dt = self.h.dt
        open_ladder = self.status in (Status.PENDING, Status.CLAIMED)
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
            None if self.handoff_at is None else dt(self.handoff_at),
            dt(created),
            dt(self.routed),
            None if self.claimed_at is None else dt(self.claimed_at),
            None if self.answered_at is None else dt(self.answered_at),
            None if self.first_answered is None else dt(self.first_answered),
            None if self.closed_at is None else dt(self.closed_at),
            self.events[-1][4],
            dt(self.claim_due),
            dt(self.answer_due),
            self.level,
            dt(self.l1) if open_ladder and self.l1 is not None else None,
            dt(self.l2) if open_ladder and self.l2 is not None else None,
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


class _History:
    def __init__(self, departments, requesters, seed, end, days, auto_close, dt):
        self.rng = random.Random(seed)
        self.requesters = requesters
        self.depts = departments
        self.dept_list = list(departments.values())
        self.dept_cum = _cumulative(d.share for d in self.dept_list)
        self.consultants = [(m, d.id) for d in self.dept_list for m in d.consultants]
        # A few requesters send most consults: a Zipf-like weight by a fixed rank.
        ranks = list(range(len(self.requesters)))
        random.Random(7).shuffle(ranks)
        self.requester_cum = _cumulative(1 / (rank + 5) ** 0.8 for rank in ranks)
        self.end = _micros(end)
        self.start = self.end - days * DAY
        self.auto_close = int(auto_close.total_seconds()) * SECOND
        self.dt = dt  # microseconds -> what the writer hands to the database
        self.next_event = 1

    # arrivals

    def arrivals(self, n: int) -> list[int]:
        """Creation instants, sorted: hours weighted by hour of day and weekday."""
        rng = self.rng
        hours = (self.end - self.start) // HOUR
        weights = []
        for k in range(hours):
            at = self.start + k * HOUR
            weights.append(HOURLY[(at // HOUR) % 24] * WEEKDAYS[_weekday(at)])
        cum = _cumulative(weights)
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

    # draws

    def lognormal(self, median_micros: float, sigma: float) -> int:
        return int(median_micros * math.exp(self.rng.gauss(0.0, sigma)))

    def slowness(self, at: int) -> float:
        """Nights and weekends are slower."""
        hour = (at // HOUR) % 24
        factor = 1.5 if hour < 7 or hour >= 21 else 1.0
        return factor * 1.3 if _weekday(at) >= 5 else factor

    def claim_delay(self, urgency, at) -> int:
        delay = self.lognormal(
            CLAIM_MEDIAN[urgency] * MINUTE * self.slowness(at), CLAIM_SIGMA[urgency]
        )
        if self.rng.random() < NEGLECTED:
            delay += int(
                DEFAULT_MINUTES[Urgency(urgency)].claim
                * MINUTE
                * self.rng.uniform(0.8, 2.5)
            )
        return max(delay, 20 * SECOND)

    def work(self, urgency, at) -> int:
        work = self.lognormal(
            WORK_MEDIAN[urgency] * MINUTE * self.slowness(at), WORK_SIGMA[urgency]
        )
        if self.rng.random() < NEGLECTED:
            work += int(
                DEFAULT_MINUTES[Urgency(urgency)].answer
                * MINUTE
                * self.rng.uniform(0.6, 1.6)
            )
        return max(work, 2 * MINUTE)

    def pick(self, items):
        return items[self.rng.randrange(len(items))]

    def colleague(self, dept, not_user):
        others = [m for m in dept.members if m != not_user]
        return self.pick(others)

    # the life

    def life(self, consult_id: int, created: int, left_open: str | None):
        rng = self.rng
        dept = self.dept_list[
            bisect.bisect_right(self.dept_cum, rng.random() * self.dept_cum[-1])
        ]
        urgency = URGENCIES[
            bisect.bisect_right(dept.urgency_cum, rng.random() * dept.urgency_cum[-1])
        ]
        if rng.random() < 0.1:  # a consultant of another department asks
            requester, home = self.pick(self.consultants)
            if home == dept.id:
                requester = None
        else:
            requester = None
        if requester is None:
            requester = self.requesters[
                bisect.bisect_right(
                    self.requester_cum, rng.random() * self.requester_cum[-1]
                )
            ]
        question = self.pick(QUESTIONS[dept.slug])
        patient_ref = f"MRN-{rng.randrange(10_000_000):07d}"
        study_ref = _study_ref(rng, dept.slug, created)

        life = _Life(self, consult_id, dept, urgency, requester)
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

    def _play(self, life: _Life, cancel, redirect, left_open):
        rng = self.rng
        while True:  # until claimed (a redirect goes round again)
            dept = life.dept
            claim_at = life.routed + self.claim_delay(life.urgency, life.routed)
            if redirect == "pending":
                at = life.routed + int((claim_at - life.routed) * rng.uniform(0.3, 0.9))
                if not life.happens(at):
                    return
                self._redirect(life, self.pick(dept.members), at)
                redirect = None
                continue
            if cancel == "pending":
                at = life.routed + int(
                    (claim_at - life.routed) * rng.uniform(0.2, 0.95)
                )
                if life.happens(at):
                    self._cancel(life, at)
                return
            if left_open == "unclaimed" or not life.happens(claim_at):
                return
            user = self.pick(dept.consultants)
            if life.level == 2 and dept.chiefs and rng.random() < 0.6:
                # The chief, alerted at level 2, assigns it.
                life.take(user, claim_at)
                life.emit(
                    EventKind.ASSIGNED.value,
                    self.pick(dept.chiefs),
                    claim_at,
                    subject=user,
                )
            else:
                life.take(user, claim_at)
                life.emit(EventKind.CLAIMED.value, user, claim_at)
            work = self.work(life.urgency, claim_at)
            if redirect == "claimed":
                at = claim_at + int(work * rng.uniform(0.1, 0.5))
                if not life.happens(at):
                    return
                self._redirect(life, life.owner, at)
                redirect = None
                continue
            break
        answer_at = claim_at + work
        if cancel == "claimed":
            at = claim_at + int(work * rng.uniform(0.2, 0.9))
            if life.happens(at):
                self._cancel(life, at)
            return
        if rng.random() < HANDED_OFF:
            offered = claim_at + int(work * rng.uniform(0.15, 0.6))
            if not life.happens(offered):
                return
            owner, to = life.owner, self.colleague(life.dept, life.owner)
            note = self.pick(HANDOFF_NOTES)
            life.handoff_to, life.handoff_note, life.handoff_at = to, note, offered
            life.emit(EventKind.HANDOFF_OFFERED.value, owner, offered, note, subject=to)
            replied = offered + max(self.lognormal(8 * MINUTE, 0.9), 30 * SECOND)
            if not life.happens(replied):
                return
            life.withdraw_handoff()
            if rng.random() < HANDOFF_DECLINED:
                life.emit(
                    EventKind.HANDOFF_DECLINED.value,
                    to,
                    replied,
                    self.pick(DECLINE_REASONS),
                    subject=owner,
                )
            else:
                life.owner = to
                life.handoffs += 1
                life.emit(EventKind.HANDOFF_ACCEPTED.value, to, replied, subject=owner)
                # The new owner reads the case before answering.
                answer_at = max(answer_at, replied + int(work * rng.uniform(0.2, 0.5)))
            answer_at = max(answer_at, replied + MINUTE)
        if left_open == "unanswered" or not life.happens(answer_at):
            return
        life.answer(answer_at, self.pick(ANSWERS))

        followup_chance = FOLLOWED_UP
        while True:  # answered: a follow-up, a close by the requester, or by the sweep
            auto_at = (
                -(-(life.answered_at + self.auto_close) // SWEEP_EVERY) * SWEEP_EVERY
            )
            if rng.random() < followup_chance:
                asked = life.answered_at + self.lognormal(45 * MINUTE, 1.0)
                if asked < auto_at:
                    if not life.happens(asked):
                        return
                    life.status = Status.CLAIMED.value
                    life.answer_due = asked + life.dept.minutes[life.urgency][2]
                    life.answer_ladder(asked)
                    life.followups += 1
                    life.emit(
                        EventKind.FOLLOWUP.value,
                        life.requester,
                        asked,
                        self.pick(FOLLOWUPS),
                    )
                    answered = asked + self.lognormal(
                        WORK_MEDIAN[life.urgency] * 0.4 * MINUTE, 0.8
                    )
                    if not life.happens(answered):
                        return
                    life.answer(answered, self.pick(FOLLOWUP_ANSWERS))
                    followup_chance = FOLLOWED_UP_AGAIN
                    continue
            break
        closing = (
            life.answered_at + self.lognormal(2 * HOUR, 1.1)
            if rng.random() < CLOSED_BY_REQUESTER
            else auto_at
        )
        if closing >= auto_at:
            if not life.happens(auto_at):
                return
            life.status = Status.CLOSED.value
            life.closed_at = auto_at
            life.withdraw_handoff()
            life.emit(
                EventKind.CLOSED.value,
                None,
                auto_at,
                detail="closed automatically: no follow-up after the answer",
            )
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
        life.emit(
            EventKind.CLOSED.value,
            life.requester,
            closing,
            life.comment,
            detail=f"rated {life.rating}/5" if life.rating else None,
        )

    def _redirect(self, life: _Life, user: int, at: int):
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

    def _cancel(self, life: _Life, at: int):
        life.status = Status.CANCELLED.value
        life.withdraw_handoff()
        life.end_ladder(reset_level=False)
        life.emit(
            EventKind.CANCELLED.value, life.requester, at, self.pick(CANCEL_REASONS)
        )


def _micros(instant: datetime) -> int:
    delta = instant.astimezone(UTC) - AWARE_EPOCH
    return (delta.days * 86_400 + delta.seconds) * SECOND + delta.microseconds


def _weekday(micros: int) -> int:
    return (micros // DAY + 3) % 7  # 1 January 1970 was a Thursday


def _study_ref(rng: random.Random, slug: str, created: int) -> str | None:
    if slug == "radiology" and rng.random() < 0.9:
        return f"ACC-{rng.randrange(10_000_000):07d}"
    if slug == "pathology" and rng.random() < 0.85:
        year = (EPOCH + timedelta(microseconds=created)).year % 100
        return f"S{year:02d}-{rng.randrange(100_000):05d}"
    if slug == "cardiology" and rng.random() < 0.3:
        return f"ECHO-{rng.randrange(1_000_000):06d}"
    return None


# --- writing ------------------------------------------------------------------
#
# A writer takes one batch at a time (its consults and their events) and commits
# it. It also decides how times are handed to the driver (`dt`).


def _writer(total: int, progress):
    name = db.engine.dialect.name
    if name == "postgresql":
        return _CopyWriter(total, progress)
    if name == "sqlite":
        return _SqliteWriter(total, progress)
    return _CoreWriter(total, progress)


class WriteFailed(Exception):
    """The database refused a batch. The batches before it stay committed."""


class _Progress:
    """Counts committed batches; reports about every tenth of the way."""

    def __init__(self, total: int, progress):
        self.total = total
        self.progress = progress
        self.every = max(
            BATCH_CONSULTS, math.ceil(total / 10 / BATCH_CONSULTS) * BATCH_CONSULTS
        )
        self.consults = self.events = 0
        self.started = time.monotonic()

    def committed(self, consults: int, events: int):
        self.consults += consults
        self.events += events
        if self.progress and (
            self.consults % self.every == 0 or self.consults == self.total
        ):
            self.progress(
                f"  {self.consults:,} of {self.total:,} consults written "
                f"({self.events:,} events, {time.monotonic() - self.started:.0f} s)"
            )

    def failed(self, error: BaseException) -> WriteFailed:
        """One line: the database's reason, and what was kept."""
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        return WriteFailed(
            f"The database refused a batch ({reason[0] if reason else type(error).__name__}); "
            f"{self.consults:,} consults were written before it."
        )


class _CoreWriter(_Progress):
    """Any database: Core INSERTs with lists of parameters (the driver's executemany)."""

    @staticmethod
    def dt(micros: int) -> datetime:
        return AWARE_EPOCH + timedelta(microseconds=micros)

    def submit(self, rows, event_rows):
        try:
            self._insert(rows, event_rows)
            db.session.commit()
        except SQLAlchemyError as error:
            db.session.rollback()
            raise self.failed(error) from error
        self.committed(len(rows), len(event_rows))

    def _insert(self, rows, event_rows):
        for table, columns, batch in (
            (Consult.__table__, CONSULT_COLUMNS, rows),
            (ConsultEvent.__table__, EVENT_COLUMNS, event_rows),
        ):
            if batch:
                parameters = [dict(zip(columns, row, strict=True)) for row in batch]
                db.session.execute(insert(table), parameters)

    def finish(self):
        pass


class _SqliteWriter(_CoreWriter):
    """SQLite: the driver's executemany with the times already in SQLAlchemy's format.

    SQLAlchemy stores a SQLite DATETIME as 'YYYY-MM-DD HH:MM:SS.ffffff'; handing the
    strings over directly skips a type conversion per value. SQLite's integer keys
    follow max(id) by themselves.
    """

    @staticmethod
    def dt(micros: int) -> str:
        return (EPOCH + timedelta(microseconds=micros)).isoformat(" ", "microseconds")

    def _insert(self, rows, event_rows):
        connection = db.session.connection()
        for table, columns, batch in (
            ("consults", CONSULT_COLUMNS, rows),
            ("consult_events", EVENT_COLUMNS, event_rows),
        ):
            if batch:
                statement = (
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})"
                )
                connection.exec_driver_sql(statement, batch)


class _CopyWriter(_Progress):
    """PostgreSQL: COPY FROM STDIN on a connection of its own, in a thread of its own.

    While the database takes in one batch (most of its time goes to checking the
    foreign keys of each row), the next one is generated. Each batch is one
    transaction that also moves the id sequences past the explicit ids, so a
    normal insert made later (or while it runs) does not collide.
    """

    @staticmethod
    def dt(micros: int) -> datetime:
        return EPOCH + timedelta(microseconds=micros)  # naive UTC, as the columns hold

    def __init__(self, total: int, progress):
        super().__init__(total, progress)
        self.engine = db.engine
        self.batches: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, name="generate-copy", daemon=True
        )
        self.thread.start()

    def submit(self, rows, event_rows):
        self._raise()
        self.batches.put((rows, event_rows))

    def finish(self):
        self.batches.put(None)
        self.thread.join()
        self._raise()

    def _raise(self):
        if self.error is not None:
            raise self.failed(self.error) from self.error

    def _run(self):
        ended = False
        try:
            with self.engine.connect() as connection:
                raw = connection.connection.driver_connection
                while (batch := self.batches.get()) is not None:
                    self._copy(raw, *batch)
                ended = True
                for table in ("consults", "consult_events"):
                    raw.execute(f"ANALYZE {table}")
                raw.commit()
        except BaseException as error:  # handed over to the generating thread
            self.error = error
            while not ended and self.batches.get() is not None:
                pass  # let the generating thread put its batches and stop

    def _copy(self, raw, rows, event_rows):
        with raw.cursor() as cursor:
            for table, columns, batch in (
                ("consults", CONSULT_COLUMNS, rows),
                ("consult_events", EVENT_COLUMNS, event_rows),
            ):
                if not batch:
                    continue
                statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                with cursor.copy(statement) as copy:
                    for row in batch:
                        copy.write_row(row)
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
        raw.commit()
        self.committed(len(rows), len(event_rows))
