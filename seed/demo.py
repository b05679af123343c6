"""Demo data: three departments, their people, and consults in every state.

Everything is made through the same domain functions the API uses, with the
clock set back, so the timelines read as a real shift would have written them.
"""

from dataclasses import dataclass
from datetime import timedelta

from broker import accounts, clock
from broker.consults import actions, oncall
from broker.consults.errors import NotFound
from broker.models import Department, User

PASSWORD = "consult-demo"

DEPARTMENTS = [
    ("radiology", "Radiology"),
    ("pathology", "Pathology"),
    ("cardiology", "Cardiology"),
]

# email, name, role shown to the user, department memberships {slug: is_chief}, admin
PEOPLE = [
    ("admin@demo.test", "Alex Admin", "admin", {}, True),
    ("okafor@demo.test", "Dr. Ada Okafor", "radiology chief", {"radiology": True}, False),
    ("castillo@demo.test", "Dr. Ben Castillo", "radiologist", {"radiology": False}, False),
    ("nguyen@demo.test", "Dr. Chloe Nguyen", "radiologist", {"radiology": False}, False),
    ("raman@demo.test", "Dr. Priya Raman", "pathology chief", {"pathology": True}, False),
    ("haddad@demo.test", "Dr. Omar Haddad", "pathologist", {"pathology": False}, False),
    ("fischer@demo.test", "Dr. Lena Fischer", "cardiology chief", {"cardiology": True}, False),
    ("lee@demo.test", "Dr. Marcus Lee", "cardiologist (also requests radiology)", {"cardiology": False}, False),
    ("patel@demo.test", "Dr. Sam Patel", "hospitalist (requester)", {}, False),
    ("reyes@demo.test", "Jordan Reyes, NP", "emergency NP (requester)", {}, False),
]  # fmt: skip


def logins() -> list[tuple[str, str, str, str]]:
    return [(email, name, role, PASSWORD) for email, name, role, _, _ in PEOPLE]


def load_demo() -> tuple[bool, list]:
    """Create the demo once. Returns (created now?, logins).

    Departments or users that already exist (made by hand, say) are reused as they are.
    """
    if accounts.user_by_email(PEOPLE[0][0]) is not None:
        return False, logins()
    departments = {slug: _department(slug, name) for slug, name in DEPARTMENTS}
    people: dict[str, User] = {}
    for email, name, _, memberships, is_admin in PEOPLE:
        user = accounts.user_by_email(email) or accounts.create_user(
            email, name, PASSWORD, is_admin=is_admin
        )
        for slug, is_chief in memberships.items():
            accounts.add_member(departments[slug], user, chief=is_chief)
        people[email.split("@")[0]] = user
    _demo_shifts(departments, people)
    _demo_consults(people)
    return True, logins()


def _department(slug: str, name: str) -> Department:
    try:
        return accounts.department_by_slug(slug)
    except NotFound:
        return accounts.create_department(slug, name)


# Who alternates on 12-hour shifts (08:00 and 20:00 UTC), as (primary, backup).
ROTAS = {
    "radiology": [("castillo", "nguyen"), ("nguyen", "okafor")],
    "pathology": [("haddad", "raman"), ("raman", "haddad")],
    "cardiology": [("lee", "fischer"), ("fischer", "lee")],
}


def _demo_shifts(departments: dict, p: dict[str, User]) -> None:
    """A week of 12-hour primary and backup shifts, starting with the one covering now."""
    admin = p["admin"]
    now = clock.now()
    first = now.replace(
        hour=8 if now.hour >= 8 else 20, minute=0, second=0, microsecond=0
    )
    if now.hour < 8:
        first -= timedelta(days=1)
    for slug, rota in ROTAS.items():
        for n in range(14):
            starts = first + timedelta(hours=12 * n)
            primary, backup = rota[n % 2]
            for role, who in (("primary", primary), ("backup", backup)):
                oncall.add_shift(
                    admin,
                    departments[slug],
                    p[who],
                    role,
                    starts,
                    starts + timedelta(hours=12),
                )


@dataclass(frozen=True)
class Who:
    """A person of PEOPLE (by the part of the email before @) as an action's argument."""

    key: str


DAYS_2 = 2 * 24 * 60

# One consult per story, in every state: (minutes ago, who acts, action of
# broker/consults/actions.py, its arguments). The first step creates the
# consult; each later one acts on it.
STORIES = [
    [
        (DAYS_2, "patel", "create", "radiology", "urgent", "MRN-DEMO-1001",
         "CT abdomen from this morning: is there a drainable collection near the appendix?",
         "ACC-55102"),
        (DAYS_2 - 20, "castillo", "claim"),
        (DAYS_2 - 95, "castillo", "answer",
         "Yes: 4 cm rim-enhancing collection in the right lower quadrant, safe window for percutaneous drainage."),
        (DAYS_2 - 120, "patel", "post_message", "Thanks. Is the collection loculated?"),
        (DAYS_2 - 150, "castillo", "answer", "Single locule; one drain should do."),
        (DAYS_2 - 160, "patel", "close", 5, "Clear and quick, thank you."),
    ],
    [
        (26 * 60, "reyes", "create", "pathology", "routine", "MRN-DEMO-1002",
         "Frozen section request for tomorrow's thyroid case."),
        (25 * 60, "reyes", "cancel", "Surgery postponed; will send a new request."),
    ],
    [
        (6 * 60, "reyes", "create", "cardiology", "urgent", "MRN-DEMO-1003",
         "New AF with rate 130 in a 72-year-old after hip surgery. Rate or rhythm control?"),
        (5 * 60 + 40, "lee", "claim"),
        (4 * 60, "lee", "answer",
         "Rate control with metoprolol; anticoagulate once surgeons agree. Will review tomorrow."),
    ],
    [
        (9 * 60, "patel", "create", "pathology", "routine", "MRN-DEMO-1004",
         "Please review margins on yesterday's colectomy specimen.", "S26-04411"),
    ],
    [
        (90, "patel", "create", "radiology", "urgent", "MRN-DEMO-1005",
         "Chest X-ray: new right basal opacity, effusion or consolidation?", "ACC-55188"),
        (80, "castillo", "claim"),
        (15, "castillo", "hand_off", Who("nguyen"),
         "End of my shift; prior films are linked in PACS."),
    ],
    [
        (40, "lee", "create", "radiology", "urgent", "MRN-DEMO-1006",
         "Echo suggests pericardial thickening: does the CT support constriction?",
         "ACC-55190"),
        (30, "nguyen", "claim"),
    ],
    [
        (25, "reyes", "create", "radiology", "urgent", "MRN-DEMO-1007",
         "Troponin rising, ECG with lateral ST depression. Can someone see this patient today?"),
        (20, "okafor", "redirect", "cardiology", "This needs a cardiologist, not imaging."),
    ],
    [
        (4, "reyes", "create", "radiology", "stat", "MRN-DEMO-1008",
         "Head CT for a 64-year-old with sudden left-sided weakness, last seen well 40 minutes ago.",
         "ACC-55201"),
    ],
]  # fmt: skip


def _demo_consults(p: dict[str, User]) -> None:
    """Each story's steps through the domain's actions, on the clock of their time."""
    start = clock.now()
    for story in STORIES:
        consult = None
        for minutes_ago, who, action, *args in story:
            args = [p[a.key] if isinstance(a, Who) else a for a in args]
            act = getattr(actions, action)
            with clock.frozen_at(start - timedelta(minutes=minutes_ago)):
                if consult is None:
                    consult = act(p[who], *args)
                else:
                    act(consult, p[who], *args)
