"""The settings page's on-call schedule: this week and next, a column per day."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from broker.consults import oncall
from broker.extensions import db
from broker.models import Department, Shift
from broker.web import local_time, web


@web.app_template_filter("local_when")
def local_when(instant: datetime | None) -> str:
    """'Fri 01 Jan 08:00 EST', with the year when it is not this year's."""
    if instant is None:
        return ""
    this_year = instant.astimezone(local_time.zone()).year == local_time.today().year
    return local_time.shown(
        instant, "%a %d %b %H:%M" if this_year else "%a %d %b %Y %H:%M"
    )


@dataclass
class Day:
    day: date
    is_today: bool
    blocks: list[dict] = field(default_factory=list)  # role, who, from, to (HH:MM)


def _blocks(shifts: list[Shift], day: date) -> list[dict]:
    """The parts of the shifts that fall on `day`, primary first, by start."""
    start = local_time.start_of(day)
    end = local_time.start_of(day + timedelta(days=1))
    found = []
    for s in shifts:
        if s.starts_at < end and s.ends_at > start:
            begins, ends = max(s.starts_at, start), min(s.ends_at, end)
            found.append({
                "role": s.role,
                "who": s.user.name,
                "from": local_time.shown(begins, "%H:%M").split()[0],
                "to": "24:00" if ends == end else local_time.shown(ends, "%H:%M").split()[0],
            })  # fmt: skip
    return sorted(found, key=lambda b: (b["role"] != "primary", b["from"]))


def two_weeks(department: Department) -> list[list[Day]]:
    """This week (from Monday) and next, each a list of seven days with their shifts."""
    today = local_time.today()
    monday = today - timedelta(days=today.weekday())
    shifts = list(
        db.session.scalars(
            oncall.shifts_between(
                department,
                local_time.start_of(monday),
                local_time.start_of(monday + timedelta(days=14)),
            )
        )
    )
    days = [monday + timedelta(days=n) for n in range(14)]
    return [
        [Day(d, d == today, _blocks(shifts, d)) for d in days[:7]],
        [Day(d, d == today, _blocks(shifts, d)) for d in days[7:]],
    ]
