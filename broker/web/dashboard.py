"""The chief's dashboard: turnaround trend, deadline compliance, escalations, ratings, thanks."""

from datetime import date, datetime, timedelta

from flask import abort, render_template, request
from flask_login import login_required

from broker import reports
from broker.consults import access
from broker.consults.errors import NotAllowed
from broker.consults.limits import INSTANT
from broker.web import local_time, web
from broker.web.charts import chart, whole_ticks
from broker.web.views import _department_or_404, _user

DEFAULT_DAYS = 90
# The days whose start, on any clock, is an instant taken (limits.INSTANT): a day asked
# for beyond them is brought back to the first or last of them.
FIRST_DAY = (INSTANT.earliest + timedelta(days=1)).date()
LAST_DAY = (INSTANT.latest - timedelta(days=2)).date()


def _day(name: str, default: date) -> date:
    try:
        day = date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return default
    return min(max(day, FIRST_DAY), LAST_DAY)


def _period() -> tuple[date, date]:
    """?from=YYYY-MM-DD&to=YYYY-MM-DD, inclusive days; default the last 90 days.
    Days beyond what can be held are brought back to the first or last that can."""
    today = local_time.today()
    start = _day("from", today - timedelta(days=DEFAULT_DAYS - 1))
    end = _day("to", today)
    return (start, end) if start <= end else (end, start)


def _instant(day: date) -> datetime:
    return local_time.start_of(day)


@web.get("/departments/<slug:slug>/dashboard")
@login_required
def dashboard(slug):
    department = _department_or_404(slug)
    user = _user()
    if not access.may_manage_department(user, department):
        abort(403)
    start, end = _period()
    period = reports.Period(_instant(start), _instant(end + timedelta(days=1)))
    try:
        weekly = reports.turnaround(user, period, slug, group_by="week")
        by_urgency = reports.turnaround(user, period, slug, group_by="urgency")
        by_consultant = reports.turnaround(user, period, slug, group_by="consultant")
        overall = reports.turnaround(user, period, slug, group_by="department")
        escalated = reports.escalations(user, period, slug)
    except NotAllowed:
        abort(403)
    charts = _charts(weekly)
    return render_template(
        "dashboard.html",
        department=department,
        start=start,
        end=end,
        overall=overall[0] if overall else None,
        weekly=weekly,
        by_urgency=by_urgency,
        by_consultant=by_consultant,
        thanks=reports.thank_you_board(by_consultant),
        escalated=escalated[:50],
        charts=charts,
        csv_query={
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "department": slug,
            "format": "csv",
        },
    )


def pct(share: float | None) -> float | None:
    return None if share is None else round(share * 100, 1)


def _charts(weekly: list[dict]) -> dict:
    """The dashboard's four weekly charts."""
    weeks = [row["group"][5:] for row in weekly]  # MM-DD of each week's Monday
    escalated = [r["escalated"] for r in weekly]
    medians = {
        "to claim (median)": [r["claim_p50_minutes"] for r in weekly],
        "to answer (median)": [r["answer_p50_minutes"] for r in weekly],
    }
    longest = max(
        (v for vs in medians.values() for v in vs if v is not None), default=0
    )
    return {
        "trend": chart(
            "line",
            "Median minutes to claim and to first answer, by week (minutes)",
            weeks,
            medians,
            ticks=whole_ticks(longest),
        ),
        "compliance": chart(
            "bar",
            "Claimed and answered within the deadline, by week (%)",
            weeks,
            {
                "claimed in time": [pct(r["claimed_in_time_share"]) for r in weekly],
                "answered in time": [pct(r["answered_in_time_share"]) for r in weekly],
            },
            ticks=[0, 25, 50, 75, 100],
        ),
        "escalations": chart(
            "bar",
            "Consults escalated, by week",
            weeks,
            {"escalated": escalated},
            ticks=whole_ticks(max(escalated, default=0)),
        ),
        "rating": chart(
            "line",
            "Mean rating (1–5), by week",
            weeks,
            {"mean rating": [r["mean_rating"] for r in weekly]},
            ticks=[0, 1, 2, 3, 4, 5],
        ),
    }
