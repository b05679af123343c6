"""A synthetic consult history: `flask --app wsgi generate --consults N --days D`.

For reports and benchmarks. The history is reproducible (the same seed and end
give the same rows) and reads like a hospital's: consults arrive mostly in the
day and on weekdays, routine ones outnumber urgent and stat ones, claims and
answers take log-normal times scaled per urgency so most meet the deadlines and
a tail does not (and escalates), and a share of consults is handed off,
redirected, followed up, cancelled, closed with a rating or closed automatically.

Each consult's life is played out as the domain functions and the sweep would
have written it (broker/consults/actions.py, broker/consults/escalation.py),
with the deadlines and ladders of broker/consults/deadlines.py: the same events
with the same actors, bodies and details, the same columns and report facts,
escalations and automatic closes at the sweep instants (every 30 seconds) after
the rung times. The history stops at `end`: whatever had not happened by then
has not happened, so the consults of the last hours and days are still open, a
few of them overdue, with their escalation rungs still to fire.

Here: what is made, in batches. seed/hospital.py holds the hospital's shape and
words, seed/directory.py its people, seed/story.py and seed/life.py the
consults' lives, seed/writers.py the bulk writing: ids are allocated from the
current maxima, the rows go in batches (COPY on PostgreSQL, executemany
elsewhere), one commit per batch. Generated users share one password hash of a
random password nobody knows, so none of them can sign in. Notifications are
not generated.
"""

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import func, select

from broker import clock
from broker.extensions import db
from broker.models import Consult, ConsultEvent
from seed.directory import DOMAIN, directory
from seed.story import History
from seed.times import micros
from seed.writers import BATCH_CONSULTS, WriteFailed, writer

__all__ = ["DOMAIN", "WriteFailed", "generate_history"]


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
    departments, requesters, users_created, departments_created = directory(
        joined=start - timedelta(days=1)
    )
    out = writer(consults, progress)
    history = History(
        departments,
        requesters,
        seed,
        micros(end),
        days,
        auto_close=timedelta(hours=current_app.config["AUTO_CLOSE_HOURS"]),
        dt=out.dt,
    )
    first_id = (db.session.scalar(select(func.max(Consult.id))) or 0) + 1
    history.next_event = (db.session.scalar(select(func.max(ConsultEvent.id))) or 0) + 1
    db.session.commit()
    made = _tell(history, consults, first_id, out)
    return {
        "consults": consults,
        "departments_created": departments_created,
        "users_created": users_created,
        "first_consult_id": first_id,
        "last_consult_id": first_id + consults - 1,
        **made,
        "start": start,
        "end": end,
    }


def _tell(history: History, consults: int, first_id: int, out) -> dict:
    """Every consult's life, written batch by batch; the counts of what happened."""
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
                    first_id + i, arrivals[i], left_open.get(i)
                )
                rows.append(row)
                event_rows += life_events
                _count(row, statuses, totals)
            events += len(event_rows)
            out.submit(rows, event_rows)
    finally:
        out.finish()
    return {"events": events, "statuses": dict(statuses), **dict(totals)}


def _count(row: tuple, statuses: Counter, totals: Counter) -> None:
    """Tally one consults row (writers.CONSULT_COLUMNS order) into the summary."""
    statuses[row[4]] += 1
    totals["escalated"] += row[34] > 0
    totals["followed_up"] += row[31] > 0
    totals["handed_off"] += row[32] > 0
    totals["redirected"] += row[33] > 0
