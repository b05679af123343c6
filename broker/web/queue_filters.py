"""The queue's filters, read from and kept in the page's query string.

Only what is not patient data goes in a URL: urgency, status, "mine" and
"escalated". The search box (patient reference, consult number) filters the
rows already on the page in the browser (pages.js), so a patient reference
never reaches a URL, a server log or the browser's history.
"""

from broker.consults.queries import QueueFilter
from broker.models import OPEN_STATUSES, Urgency, User

URGENCIES = [("", "Any urgency")] + [(u.value, u.value.capitalize()) for u in Urgency]
STATUSES = [("", "Any open status")] + [
    (s.value, s.value.capitalize()) for s in OPEN_STATUSES
]


def chosen(args) -> dict[str, str]:
    """The filters in the query string that mean something, as they will be kept."""
    picked = {
        "urgency": args.get("urgency", ""),
        "status": args.get("status", ""),
        "mine": "1" if args.get("mine") == "1" else "",
        "escalated": "1" if args.get("escalated") == "1" else "",
    }
    if picked["urgency"] not in dict(URGENCIES):
        picked["urgency"] = ""
    if picked["status"] not in dict(STATUSES):
        picked["status"] = ""
    return {k: v for k, v in picked.items() if v}


def queue_filter(picked: dict[str, str], user: User) -> QueueFilter:
    return QueueFilter(
        urgency=picked.get("urgency"),
        status=picked.get("status"),
        owner=user if picked.get("mine") else None,
        escalated=bool(picked.get("escalated")),
    )
