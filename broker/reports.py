"""Turnaround and escalation reports for chiefs (the contract; see SPEC.md "Reports for chiefs").

Every report reads the facts kept on each consult (claim_seconds, answer_seconds,
claimed_in_time, answered_in_time, followup_count, handoff_count, redirect_count,
max_escalation_level, rating): one scan of the consults in the period, no
timeline joins. Percentiles are linear interpolation between closest ranks
(PostgreSQL's percentile_cont), computed so that SQLite and PostgreSQL give the
same numbers.
"""

import csv
import io
import math
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    Date,
    Float,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, array

from broker.consults import access
from broker.consults.errors import Invalid
from broker.consults.queries import overdue_clause
from broker.extensions import db
from broker.models import (
    OPEN_STATUSES,
    Consult,
    ConsultEvent,
    Department,
    EventKind,
    Status,
    User,
)

GROUPINGS = ("department", "consultant", "urgency", "week")
PERCENTILES = (0.5, 0.9)
UNCLAIMED = "(unclaimed)"
TURNAROUND_COLUMNS = (
    "group",
    "count",
    "claim_p50_minutes",
    "claim_p90_minutes",
    "answer_p50_minutes",
    "answer_p90_minutes",
    "claimed_in_time_share",
    "answered_in_time_share",
    "escalated",
    "followups",
    "handoffs",
    "redirects",
    "mean_rating",
)
DURATIONS = ("claim", "answer")
# Databases whose percentile_cont(...) WITHIN GROUP does the percentiles in one sort;
# elsewhere window functions rank the durations (the numbers are the same).
ORDERED_SET_DIALECTS = {"postgresql"}
# percentile_cont sorts each group's durations in work_mem, and in temporary files
# beyond it. PostgreSQL's default (4 MB) holds about 175,000 of them: a busy
# department's year (300,000 consults in a history of 1,000,000) went to disk.
# The grouped query gets this much, for itself only (over a million per sort).
SORT_WORK_MEM = "32MB"


@dataclass(frozen=True)
class Period:
    """[start, end): consults created in it are reported."""

    start: datetime
    end: datetime


def turnaround(
    user: User,
    period: Period,
    department: str | None = None,
    group_by: str = "department",
) -> list[dict]:
    """One row per group, ordered by group:

    {group, count, claim_p50_minutes, claim_p90_minutes, answer_p50_minutes,
     answer_p90_minutes, claimed_in_time_share, answered_in_time_share, escalated,
     followups, handoffs, redirects, mean_rating}

    Chiefs see their own departments, admins all; anyone else NotAllowed.
    """
    if group_by not in GROUPINGS:
        raise Invalid("group_by", "Group by department, consultant, urgency or week.")
    scope = _departments_in_scope(user, department)
    _check_period(period)
    base = _base(group_by, period, scope)
    groups, seconds = _grouped(base)
    labels = _labels(group_by, [g.grp for g in groups])
    rows = [
        (labels[g.grp], str(g.grp), _turnaround_row(g, labels[g.grp], seconds))
        for g in groups
    ]
    return [row for *_, row in sorted(rows, key=lambda r: r[:2])]


def _grouped(base) -> tuple[list, dict]:
    """The facts per group, and {(group, "claim" | "answer"): (p50, p90) seconds}."""
    b = base.c
    facts = [
        func.count().label("consults"),
        func.count(b.claimed_in_time).label("claimed"),
        _count_true(b.claimed_in_time).label("claimed_in_time"),
        func.count(b.answered_in_time).label("answered"),
        _count_true(b.answered_in_time).label("answered_in_time"),
        _count_true(b.max_escalation_level > 0).label("escalated"),
        func.sum(b.followup_count).label("followups"),
        func.sum(b.handoff_count).label("handoffs"),
        func.sum(b.redirect_count).label("redirects"),
        func.sum(b.rating).label("rating_sum"),
        func.count(b.rating).label("rated"),
    ]
    if _dialect() not in ORDERED_SET_DIALECTS:
        grouped = select(b.grp, *facts).group_by(b.grp)
        return db.session.execute(grouped).all(), _percentiles_by_rank(base)
    facts += [_ordered_set_percentiles(b[name]).label(name) for name in DURATIONS]
    previous = _raise_work_mem(SORT_WORK_MEM)
    groups = db.session.execute(select(b.grp, *facts).group_by(b.grp)).all()
    _set_work_mem(previous)
    seconds = {
        (g.grp, name): getattr(g, name) or [None] * len(PERCENTILES)
        for g in groups
        for name in DURATIONS
    }
    return groups, seconds


def _turnaround_row(g, label: str, seconds: dict) -> dict:
    row = {"group": label, "count": g.consults}
    for name in DURATIONS:
        p50, p90 = seconds.get((g.grp, name), (None, None))
        row[f"{name}_p50_minutes"] = _minutes(p50)
        row[f"{name}_p90_minutes"] = _minutes(p90)
    return row | {
        "claimed_in_time_share": _share(g.claimed_in_time, g.claimed),
        "answered_in_time_share": _share(g.answered_in_time, g.answered),
        "escalated": g.escalated,
        "followups": g.followups,
        "handoffs": g.handoffs,
        "redirects": g.redirects,
        "mean_rating": round(g.rating_sum / g.rated, 2) if g.rated else None,
    }


def _base(group_by: str, period: Period, scope: list[int] | None):
    """The facts of the consults in the period, each with its group key (`grp`)."""
    return (
        select(
            _group_key(group_by).label("grp"),
            Consult.claim_seconds.label("claim"),
            Consult.answer_seconds.label("answer"),
            Consult.claimed_in_time,
            Consult.answered_in_time,
            Consult.max_escalation_level,
            Consult.followup_count,
            Consult.handoff_count,
            Consult.redirect_count,
            Consult.rating,
        )
        .where(*_created_in(period, scope))
        .subquery("base")
    )


def turnaround_csv(rows: list[dict]) -> str:
    """The turnaround table as CSV: a header of the row keys, then one line per group."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(TURNAROUND_COLUMNS)
    for row in rows:
        writer.writerow([_csv_cell(row[column]) for column in TURNAROUND_COLUMNS])
    return out.getvalue()


def escalations(
    user: User, period: Period, department: str | None = None, limit: int | None = None
) -> list[dict]:
    """The consults that escalated: {consult_id, department, urgency, created_at,
    max_level, reasons: [detail...], status, ended_at}.

    Newest first; `limit` keeps only the newest ones. ended_at is when it was closed
    or cancelled (None while it is open).
    """
    scope = _departments_in_scope(user, department)
    _check_period(period)
    newest_first = (Consult.created_at.desc(), Consult.id.desc())
    wanted = select(Consult.id).where(
        *_created_in(period, scope), Consult.max_escalation_level > 0
    )
    if limit is not None:
        wanted = wanted.order_by(*newest_first).limit(limit)
    consults = db.session.execute(
        select(
            Consult.id,
            Department.slug,
            Consult.urgency,
            Consult.created_at,
            Consult.max_escalation_level,
            Consult.status,
            Consult.closed_at,
        )
        .join(Department, Department.id == Consult.department_id)
        .where(Consult.id.in_(wanted.scalar_subquery()))
        .order_by(*newest_first)
    ).all()
    reasons, cancelled_at = _escalation_events(wanted, [c.id for c in consults])
    return [
        {
            "consult_id": c.id,
            "department": c.slug,
            "urgency": c.urgency,
            "created_at": c.created_at,
            "max_level": c.max_escalation_level,
            "reasons": reasons[c.id],
            "status": c.status,
            "ended_at": c.closed_at
            if c.status == Status.CLOSED
            else cancelled_at.get(c.id),
        }
        for c in consults
    ]


def _escalation_events(wanted, consult_ids: list[int]) -> tuple[dict, dict]:
    """({consult id: [escalation details]}, {consult id: cancelled at})."""
    reasons: dict[int, list[str]] = {consult_id: [] for consult_id in consult_ids}
    cancelled_at = {}
    events = db.session.execute(
        select(
            ConsultEvent.consult_id,
            ConsultEvent.kind,
            ConsultEvent.detail,
            ConsultEvent.at,
        )
        .where(
            ConsultEvent.consult_id.in_(wanted.scalar_subquery()),
            ConsultEvent.kind.in_(
                [EventKind.ESCALATED.value, EventKind.CANCELLED.value]
            ),
        )
        .order_by(ConsultEvent.id)
    )
    for event in events:
        if event.kind == EventKind.ESCALATED:
            reasons[event.consult_id].append(event.detail)
        else:
            cancelled_at[event.consult_id] = event.at
    return reasons, cancelled_at


def open_and_overdue_by_owner(user: User, department: str | None = None) -> list[dict]:
    """Now: {owner (user or None for the unclaimed), department, open, overdue} per owner.

    Open: pending, claimed or answered; overdue by the rule of the consult lists.
    Ordered by department, the unclaimed first, then owners by name.
    """
    scope = _departments_in_scope(user, department)
    query = select(
        Consult.department_id,
        Consult.owner_id,
        func.count().label("open"),
        _count_true(overdue_clause()).label("overdue"),
    ).where(Consult.status.in_([s.value for s in OPEN_STATUSES]))
    if scope is not None:
        query = query.where(Consult.department_id.in_(scope))
    counts = db.session.execute(
        query.group_by(Consult.department_id, Consult.owner_id)
    ).all()
    slugs = _slugs({c.department_id for c in counts})
    owners = {
        u.id: u
        for u in db.session.scalars(
            select(User).where(User.id.in_({c.owner_id for c in counts} - {None}))
        )
    }
    rows = [
        {
            "owner": owners.get(c.owner_id),
            "department": slugs[c.department_id],
            "open": c.open,
            "overdue": c.overdue,
        }
        for c in counts
    ]
    return sorted(
        rows,
        key=lambda r: (
            r["department"],
            r["owner"] is not None,
            r["owner"].name if r["owner"] else "",
            r["owner"].id if r["owner"] else 0,
        ),
    )


def _departments_in_scope(user: User, department: str | None) -> list[int] | None:
    """The ids of the departments the report covers; None for all (an admin)."""
    target = None
    if department is not None:
        target = db.session.scalar(
            select(Department).where(Department.slug == department)
        )
        if target is None:
            raise Invalid("department", "No such department.")
    return access.reportable_department_ids(user, target)


def _check_period(period: Period) -> None:
    if period.end <= period.start:
        raise Invalid("to", "The end of the period must be after its start.")


def _created_in(period: Period, scope: list[int] | None) -> list:
    conditions = [Consult.created_at >= period.start, Consult.created_at < period.end]
    if scope is not None:
        conditions.append(Consult.department_id.in_(scope))
    return conditions


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _group_key(group_by: str):
    if group_by == "department":
        return Consult.department_id
    if group_by == "consultant":
        return Consult.owner_id
    if group_by == "urgency":
        return Consult.urgency
    return _week_start(Consult.created_at)


def _week_start(instant):
    """The Monday (UTC) of the ISO week of a stored instant, as a date."""
    if _dialect() == "postgresql":
        return cast(func.date_trunc("week", instant), Date)
    return func.date(instant, "weekday 0", "-6 days")


def _count_true(condition):
    return func.sum(case((condition, 1), else_=0))


def _ordered_set_percentiles(column):
    """PostgreSQL: p50 and p90 of the column in one sort, as an array of seconds."""
    return (
        func.percentile_cont(array(PERCENTILES)).within_group(column).cast(ARRAY(Float))
    )


def _raise_work_mem(size: str) -> str | None:
    """PostgreSQL: work_mem up to `size` for this transaction; the previous value,
    or None when it was already as large (then nothing changes)."""
    previous, smaller = db.session.execute(
        text(
            "SELECT current_setting('work_mem'), "
            "pg_size_bytes(current_setting('work_mem')) < pg_size_bytes(:size)"
        ),
        {"size": size},
    ).one()
    if not smaller:
        return None
    _set_work_mem(size)
    return previous


def _set_work_mem(size: str | None) -> None:
    """SET LOCAL work_mem (set_config(..., true)): it ends with the transaction anyway.

    Not called after a failed statement: the transaction is then rolled back, and
    the setting with it."""
    if size is not None:
        db.session.execute(
            text("SELECT set_config('work_mem', :size, true)"), {"size": size}
        )


def _percentiles_by_rank(base) -> dict[tuple, list[float | None]]:
    """Any SQL database with window functions: the same numbers as percentile_cont.

    The database ranks each group's durations and returns only the rows around
    p*(n-1) for each percentile (a handful per group); the interpolation between
    the two closest ranks is done here, with percentile_cont's arithmetic.
    """
    ranked = []
    for name in DURATIONS:
        column = base.c[name]
        window = (
            select(
                literal(name).label("duration"),
                base.c.grp,
                column.label("secs"),
                func.row_number()
                .over(partition_by=base.c.grp, order_by=column)
                .label("rn"),
                func.count().over(partition_by=base.c.grp).label("n"),
            )
            .where(column.is_not(None))
            .subquery()
        )
        w = window.c
        near = [func.abs(w.rn - 1 - (w.n - 1) * p) <= 1 for p in PERCENTILES]
        ranked.append(select(w.duration, w.grp, w.rn, w.n, w.secs).where(or_(*near)))
    values: dict[tuple, dict[int, int]] = {}
    sizes: dict[tuple, int] = {}
    for row in db.session.execute(union_all(*ranked)):
        key = (row.grp, row.duration)
        values.setdefault(key, {})[row.rn - 1] = row.secs
        sizes[key] = row.n
    return {
        key: [_interpolated(p, sizes[key], ranks.__getitem__) for p in PERCENTILES]
        for key, ranks in values.items()
    }


def _interpolated(p: float, n: int, value_at) -> float:
    """PostgreSQL's percentile_cont over n sorted values, value_at(rank) 0-based.

    The same floating-point steps as PostgreSQL (orderedsetaggs.c), so both
    databases report the same numbers to the last bit.
    """
    position = p * (n - 1)
    first, second = math.floor(position), math.ceil(position)
    low = float(value_at(first))
    if second == first:
        return low
    return low + (position - first) * (float(value_at(second)) - low)


def _labels(group_by: str, keys: list) -> dict:
    if group_by == "department":
        return _slugs(set(keys))
    if group_by == "consultant":
        names = dict(
            db.session.execute(
                select(User.id, User.name).where(User.id.in_(set(keys) - {None}))
            ).all()
        )
        return {key: names.get(key, UNCLAIMED) for key in keys}
    if group_by == "week":
        return {
            key: key.isoformat() if hasattr(key, "isoformat") else str(key)[:10]
            for key in keys
        }
    return {key: key for key in keys}


def _slugs(department_ids: set[int]) -> dict[int, str]:
    return dict(
        db.session.execute(
            select(Department.id, Department.slug).where(
                Department.id.in_(department_ids)
            )
        ).all()
    )


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


# What a spreadsheet takes as the start of a formula, the full-width forms included
# (some spreadsheets read ＝ as =).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def _csv_cell(value) -> str:
    """Numbers as they are; text that a spreadsheet would run as a formula is quoted."""
    if value is None:
        return ""
    text = str(value)
    if isinstance(value, str) and text[:1] in FORMULA_STARTS:
        return "'" + text
    return text


THANKS_MIN_CONSULTS = 3


def thank_you_board(by_consultant: list[dict]) -> list[dict]:
    """The five to thank: consultants with at least THANKS_MIN_CONSULTS answers in the
    period (rows of `turnaround(..., group_by="consultant")`), fastest median answer
    first, then best rated."""
    eligible = [
        row
        for row in by_consultant
        if row["group"] != "(unclaimed)"
        and row["count"] >= THANKS_MIN_CONSULTS
        and row["answer_p50_minutes"] is not None
    ]
    return sorted(
        eligible,
        key=lambda r: (r["answer_p50_minutes"], -(r["mean_rating"] or 0)),
    )[:5]
