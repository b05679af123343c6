"""Reports for chiefs: turnaround per group, escalations, open and overdue now.

A small hospital day is played through the API with the clock frozen at chosen
minutes, and the sweep run from the command line; every number the reports
give is worked out by hand below. The same tests run on SQLite and PostgreSQL
and must give the same numbers.
"""

import csv
import io
import math
import random
from datetime import UTC, datetime, timedelta

import pytest
from helpers import act, at, claimed, create, user, when
from sqlalchemy import select

from broker import clock, reports
from broker.consults.errors import Invalid
from broker.extensions import db
from broker.models import Consult, Department, User

NOW = 400  # minutes after T0: when the reports are read
MARCH = {"from": "2030-03-01T00:00:00Z", "to": "2030-04-01T00:00:00Z"}
COLUMNS = reports.TURNAROUND_COLUMNS


def table(*rows) -> list[dict]:
    """Rows written as tuples in the order of reports.TURNAROUND_COLUMNS."""
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


@pytest.fixture
def cardiology_chief(hospital, make_caller):
    return make_caller("chief@h.test", "Dr Chief", {"cardiology": True})


@pytest.fixture
def day(app, hospital, new_consult, sweep):
    """The day, minute by minute after T0 (08:00 UTC). Default deadlines:
    stat claim 15 / answer 60, urgent 60 / 240, routine 480 / 2880 minutes;
    level 2 comes one claim interval after level 1.

    R1  radiology stat     created 0    castillo claims 5:20, answers 30; closed, rated 5
    R2  radiology stat     created 10   nguyen claims 30 (due 25: late), escalates at the
                                        71 sweep (answer due 70), answers 80 (late);
                                        follow-up 90, answered again 100; closed, rated 3
    R3  radiology urgent   created 20   castillo claims 50, hands off to nguyen (offer 60,
                                        accepted 65), nguyen answers 200 (due 260); rated 5
    R4  radiology stat     created 40   level 1 at the 56 sweep, level 2 at 71 (not
                                        claimed); castillo claims 75 (due 55: late); never
                                        answered: levels 1 and 2 again at the 345 sweep
                                        (answer due 100, level 2 at 115); still claimed
    R5  radiology routine  created 60   castillo redirects it to cardiology at 70 (routed
                                        again); lee claims 100 (30 after routing), answers
                                        130 (60 after routing); closed, rated 5
    R6  radiology stat     created 80   never claimed: levels 1 and 2 at the 345 sweep
                                        (due 95, level 2 at 110); cancelled at 350
    C1  cardiology urgent  created 100  lee claims 110, level 1 at the 345 sweep (answer
                                        due 340), answers 350 (late); closed, rated 2
    C2  cardiology stat    created 120  lee claims 124, answers 134; left answered
    R7  radiology routine  created 300  pending (due 780)
    C3  cardiology stat    created 360  pending (due 375: overdue at 400)

    Returns the consult ids by name (R1 is 1 ... C3 is 10, in order of creation).
    """
    h = hospital
    ids = {}
    swept = {}

    def new(name, minute, department, urgency):
        consult = create(new_consult, minute, department=department, urgency=urgency)
        ids[name] = consult["id"]

    def step(who, name, action, minute, seconds=0, **payload):
        act(who, {"id": ids[name]}, action, at(minute, seconds), **payload)

    def sweep_at(minute):
        swept[minute] = sorted(sweep(at(minute)).escalated)

    new("R1", 0, "radiology", "stat")
    step(h.castillo, "R1", "claim", 5, seconds=20)
    new("R2", 10, "radiology", "stat")
    new("R3", 20, "radiology", "urgent")
    step(h.nguyen, "R2", "claim", 30)
    step(h.castillo, "R1", "answer", 30, body="No collection.")
    new("R4", 40, "radiology", "stat")
    step(h.castillo, "R3", "claim", 50)
    sweep_at(56)
    new("R5", 60, "radiology", "routine")
    step(h.castillo, "R3", "handoff", 60, to_user_id=h.nguyen.user_id, note="Off shift")
    step(h.nguyen, "R3", "handoff/accept", 65)
    step(h.castillo, "R5", "redirect", 70, department="cardiology", reason="Cardiac")
    sweep_at(71)
    step(h.castillo, "R4", "claim", 75)
    step(h.nguyen, "R2", "answer", 80, body="Small effusion.")
    new("R6", 80, "radiology", "stat")
    step(h.patel, "R2", "messages", 90, body="Tap it?")
    step(h.nguyen, "R2", "answer", 100, body="Not needed.")
    step(h.lee, "R5", "claim", 100)
    new("C1", 100, "cardiology", "urgent")
    step(h.lee, "C1", "claim", 110)
    new("C2", 120, "cardiology", "stat")
    step(h.lee, "C2", "claim", 124)
    step(h.lee, "R5", "answer", 130, body="Normal echo.")
    step(h.lee, "C2", "answer", 134, body="Sinus rhythm.")
    step(h.nguyen, "R3", "answer", 200, body="Benign.")
    new("R7", 300, "radiology", "routine")
    sweep_at(345)
    step(h.lee, "C1", "answer", 350, body="Start a beta blocker.")
    step(h.patel, "R6", "cancel", 350, reason="Patient discharged")
    new("C3", 360, "cardiology", "stat")
    for name, rating in (("R1", 5), ("R2", 3), ("R3", 5), ("R5", 5), ("C1", 2)):
        step(h.patel, name, "close", 370, rating=rating)

    assert swept == {
        56: [(ids["R4"], 1)],
        71: [(ids["R2"], 1), (ids["R4"], 2)],
        345: sorted(
            [(ids["R4"], 1), (ids["R4"], 2), (ids["R6"], 1), (ids["R6"], 2)]
            + [(ids["C1"], 1)]
        ),
    }
    return ids


def report(caller, path="/api/reports/turnaround", minute=NOW, **args):
    with clock.frozen_at(at(minute)):
        return caller.get(path, query_string={**MARCH, **args})


def rows(caller, **args) -> list[dict]:
    response = report(caller, **args)
    assert response.status_code == 200, response.json
    return response.json["rows"]


# The facts each consult carries at minute 400 (minutes; T in time, F late):
#
#        dept  urgency  owner     claim  in  answer  in  fu ho rd esc  rating
#   R1   rad   stat     castillo   5:20  T     30    T               0    5
#   R2   rad   stat     nguyen    20     F     70    F   1          1    3
#   R3   rad   urgent   nguyen    30     T    180    T      1       0    5
#   R4   rad   stat     castillo  35     F      -                   2    -
#   R5   card  routine  lee       30     T     60    T         1    0    5
#   R6   rad   stat     -          -            -                   2    -
#   C1   card  urgent   lee       10     T    250    F              1    2
#   C2   card  stat     lee        4     T     14    T              0    -
#   R7   rad   routine  -          -            -                   0    -
#   C3   card  stat     -          -            -                   0    -
#
# percentile_cont(p) over n sorted values: position p*(n-1), interpolated linearly
# between the values at floor and ceil of it (0-based). 5:20 is 320 s = 5.333 min.


def test_turnaround_by_department_for_an_admin(day, hospital):
    assert rows(hospital.admin) == table(
        # cardiology: R5 C1 C2 C3.
        #   claims [4, 10, 30]: p50 = 10; p90 at 1.8 = 10 + .8*(30-10) = 26
        #   answers [14, 60, 250]: p50 = 60; p90 at 1.8 = 60 + .8*190 = 212
        #   claimed in time 3/3; answered in time R5 C2 of 3 = .667
        #   escalated C1; redirect R5; rating (5+2)/2 = 3.5
        ("cardiology", 4, 10.0, 26.0, 60.0, 212.0, 1.0, 0.667, 1, 0, 0, 1, 3.5),
        # radiology: R1 R2 R3 R4 R6 R7.
        #   claims [320, 1200, 1800, 2100] s: p50 at 1.5 = 1200 + .5*600 = 1500 s = 25;
        #     p90 at 2.7 = 1800 + .7*300 = 2010 s = 33.5
        #   answers [30, 70, 180]: p50 = 70; p90 at 1.8 = 70 + .8*110 = 158
        #   claimed in time R1 R3 of 4 = .5; answered in time R1 R3 of 3 = .667
        #   escalated R2 R4 R6; follow-up R2; handoff R3; rating (5+3+5)/3 = 4.33
        ("radiology", 6, 25.0, 33.5, 70.0, 158.0, 0.5, 0.667, 3, 1, 1, 0, 4.33),
    )


def test_turnaround_by_urgency(day, hospital):
    assert rows(hospital.admin, group_by="urgency") == table(
        # routine: R5 R7. claims [30], answers [60]; redirect R5; rating 5
        ("routine", 2, 30.0, 30.0, 60.0, 60.0, 1.0, 1.0, 0, 0, 0, 1, 5.0),
        # stat: R1 R2 R4 R6 C2 C3.
        #   claims [240, 320, 1200, 2100] s: p50 at 1.5 = 320 + .5*880 = 760 s = 12.67;
        #     p90 at 2.7 = 1200 + .7*900 = 1830 s = 30.5
        #   answers [14, 30, 70]: p50 = 30; p90 at 1.8 = 30 + .8*40 = 62
        #   claimed in time R1 C2 of 4 = .5; answered in time R1 C2 of 3 = .667
        #   escalated R2 R4 R6; follow-up R2; rating (5+3)/2 = 4
        ("stat", 6, 12.7, 30.5, 30.0, 62.0, 0.5, 0.667, 3, 1, 0, 0, 4.0),
        # urgent: R3 C1. claims [10, 30]: p50 = 20; p90 at .9 = 10 + .9*20 = 28
        #   answers [180, 250]: p50 = 215; p90 = 180 + .9*70 = 243
        #   answered in time R3 of 2 = .5; escalated C1; handoff R3; rating (5+2)/2
        ("urgent", 2, 20.0, 28.0, 215.0, 243.0, 1.0, 0.5, 1, 0, 1, 0, 3.5),
    )


def test_turnaround_by_consultant(day, hospital):
    assert rows(hospital.admin, group_by="consultant") == table(
        # nobody owns R6 (cancelled unclaimed), R7 and C3; R6 escalated
        ("(unclaimed)", 3, None, None, None, None, None, None, 1, 0, 0, 0, None),
        # castillo: R1 R4. claims [320, 2100] s: p50 = 1210 s = 20.17;
        #   p90 = 320 + .9*1780 = 1922 s = 32.03. answers [30]. escalated R4
        ("Dr Castillo", 2, 20.2, 32.0, 30.0, 30.0, 0.5, 1.0, 1, 0, 0, 0, 5.0),
        # lee: R5 C1 C2, the same facts as the cardiology row
        ("Dr Lee", 3, 10.0, 26.0, 60.0, 212.0, 1.0, 0.667, 1, 0, 0, 1, 3.5),
        # nguyen: R2 R3 (R3 by the handoff; its claim time is castillo's first claim).
        #   claims [20, 30]: p50 = 25; p90 = 20 + .9*10 = 29
        #   answers [70, 180]: p50 = 125; p90 = 70 + .9*110 = 169; rating (3+5)/2
        ("Dr Nguyen", 2, 25.0, 29.0, 125.0, 169.0, 0.5, 0.5, 1, 1, 1, 0, 4.0),
    )


def test_turnaround_by_week(day, hospital):
    assert rows(hospital.admin, group_by="week") == table(
        # all ten, in the week of Monday 4 March.
        #   claims [4, 5.33, 10, 20, 30, 30, 35]: p50 at 3 = 20; p90 at 5.4 = 30 + .4*5 = 32
        #   answers [14, 30, 60, 70, 180, 250]: p50 at 2.5 = 60 + .5*10 = 65;
        #     p90 at 4.5 = 180 + .5*70 = 215
        #   claimed in time 5/7 = .714; answered in time 4/6 = .667
        #   escalated R2 R4 R6 C1; rating (5+3+5+5+2)/5 = 4
        ("2030-03-04", 10, 20.0, 32.0, 65.0, 215.0, 0.714, 0.667, 4, 1, 1, 1, 4.0),
    )


def test_weeks_start_on_monday_utc(hospital, new_consult):
    """Sunday 23:30 belongs to the week before; Monday 00:10 starts a new one."""
    created = {}
    for name, instant, claim_after in (
        ("sunday", datetime(2030, 3, 10, 23, 30, tzinfo=UTC), 6),
        ("monday", datetime(2030, 3, 11, 0, 10, tzinfo=UTC), 3),
        ("wednesday", datetime(2030, 3, 13, 12, 0, tzinfo=UTC), 9),
        ("next sunday", datetime(2030, 3, 17, 23, 59, 59, tzinfo=UTC), None),
    ):
        with clock.frozen_at(instant):
            created[name] = new_consult()["id"]
        if claim_after is not None:
            with clock.frozen_at(instant + timedelta(minutes=claim_after)):
                claimed = hospital.castillo.post(f"/api/consults/{created[name]}/claim")
            assert claimed.status_code == 200

    assert rows(hospital.okafor, group_by="week") == table(
        ("2030-03-04", 1, 6.0, 6.0, None, None, 1.0, None, 0, 0, 0, 0, None),
        # claims [3, 9]: p50 = 6; p90 = 3 + .9*6 = 8.4
        ("2030-03-11", 3, 6.0, 8.4, None, None, 1.0, None, 0, 0, 0, 0, None),
    )


def test_the_period_is_from_inclusive_to_exclusive(day, hospital):
    # [10, 100): R2 R3 R4 R6 in radiology, R5 in cardiology; R1 (0) and C1 (100) not.
    counts = {
        row["group"]: row["count"]
        for row in rows(
            hospital.admin, **{"from": at(10).isoformat(), "to": at(100).isoformat()}
        )
    }
    assert counts == {"cardiology": 1, "radiology": 4}
    # The same instants written with another offset are the same period.
    offset = {"from": "2030-03-04T10:10:00+02:00", "to": "2030-03-04T11:40:00+02:00"}
    assert rows(hospital.admin, **offset) == rows(
        hospital.admin, **{"from": at(10).isoformat(), "to": at(100).isoformat()}
    )


def test_the_default_period_is_the_last_30_days(day, hospital):
    with clock.frozen_at(at(NOW)):
        response = hospital.admin.get("/api/reports/turnaround")
    assert response.status_code == 200
    assert datetime.fromisoformat(response.json["to"]) == at(NOW)
    assert datetime.fromisoformat(response.json["from"]) == at(NOW) - timedelta(days=30)
    assert response.json["group_by"] == "department"
    assert [r["count"] for r in response.json["rows"]] == [4, 6]
    with clock.frozen_at(at(NOW) + timedelta(days=31)):
        later = hospital.admin.get("/api/reports/turnaround")
    assert later.json["rows"] == []


def test_csv_is_the_same_table(day, hospital):
    for group_by in reports.GROUPINGS:
        response = report(hospital.admin, group_by=group_by, format="csv")

        assert response.status_code == 200
        assert response.mimetype == "text/csv"
        disposition = response.headers["Content-Disposition"]
        assert disposition == (
            f'attachment; filename="turnaround-by-{group_by}-20300301-20300401.csv"'
        )
        lines = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
        assert tuple(lines[0]) == COLUMNS
        expected = [
            ["" if row[c] is None else str(row[c]) for c in COLUMNS]
            for row in rows(hospital.admin, group_by=group_by)
        ]
        assert lines[1:] == expected


def test_csv_of_a_department_names_it_in_the_file_name(day, hospital):
    response = report(hospital.okafor, department="radiology", format="csv")
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="turnaround-radiology-by-department-20300301-20300401.csv"'
    )
    assert "MRN" not in response.get_data(as_text=True)


def test_a_chief_sees_only_their_departments(day, hospital, cardiology_chief):
    radiology = rows(hospital.okafor)
    assert [r["group"] for r in radiology] == ["radiology"]
    assert rows(hospital.okafor, department="radiology") == radiology
    assert [r["group"] for r in rows(cardiology_chief)] == ["cardiology"]
    # By consultant, a chief sees who worked on their department's consults only.
    assert [
        (r["group"], r["count"]) for r in rows(hospital.okafor, group_by="consultant")
    ] == [
        ("(unclaimed)", 2),  # R6 R7
        ("Dr Castillo", 2),  # R1 R4
        ("Dr Nguyen", 2),  # R2 R3
    ]
    for path in (
        "/api/reports/turnaround",
        "/api/reports/escalations",
        "/api/reports/open",
    ):
        refused = report(hospital.okafor, path, department="cardiology")
        assert refused.status_code == 403, path
        assert "rows" not in refused.json


def test_only_chiefs_and_admins_see_reports(day, hospital):
    for who in (hospital.castillo, hospital.lee, hospital.patel, hospital.outsider):
        for path in (
            "/api/reports/turnaround",
            "/api/reports/escalations",
            "/api/reports/open",
        ):
            assert report(who, path).status_code == 403, (who.name, path)
            assert report(who, path, department="radiology").status_code == 403
    assert report(hospital.admin).status_code == 200


def test_signing_in_is_required(day, client):
    assert client.get("/api/reports/turnaround").status_code == 401


def test_bad_input_is_refused_naming_the_field(day, hospital):
    bad_group = report(hospital.admin, group_by="owner")
    assert bad_group.status_code == 422
    assert set(bad_group.json["errors"]) == {"group_by"}

    bad_format = report(hospital.admin, format="xlsx")
    assert bad_format.status_code == 422
    assert set(bad_format.json["errors"]) == {"format"}

    unknown = report(hospital.admin, department="dermatology")
    assert unknown.status_code == 422
    assert set(unknown.json["errors"]) == {"department"}

    backwards = report(hospital.admin, **{"from": MARCH["to"], "to": MARCH["from"]})
    assert backwards.status_code == 422
    assert set(backwards.json["errors"]) == {"to"}

    not_a_date = report(hospital.admin, **{"from": "last tuesday"})
    assert not_a_date.status_code == 422
    assert set(not_a_date.json["errors"]) == {"from"}


def test_the_domain_refuses_an_unknown_grouping(app, hospital):
    with app.app_context():
        admin = db.session.get(User, hospital.admin.user_id)
        period = reports.Period(at(0), at(NOW))
        with pytest.raises(Invalid) as refused:
            reports.turnaround(admin, period, group_by="owner")
    assert refused.value.field == "group_by"


def test_escalations_report(day, hospital, cardiology_chief):
    response = report(hospital.admin, "/api/reports/escalations")
    assert response.status_code == 200
    listed = response.json["rows"]
    closed_at = at(370).isoformat()
    ids = day
    # Newest first.
    assert listed == [
        {
            "consult_id": ids["C1"],
            "department": "cardiology",
            "urgency": "urgent",
            "created_at": at(100).isoformat(),
            "max_level": 1,
            "reasons": ["level 1: not answered by its deadline"],
            "status": "closed",
            "ended_at": closed_at,
        },
        {
            "consult_id": ids["R6"],
            "department": "radiology",
            "urgency": "stat",
            "created_at": at(80).isoformat(),
            "max_level": 2,
            "reasons": [
                "level 1: not claimed by its deadline",
                "level 2: not claimed by its deadline",
            ],
            "status": "cancelled",
            "ended_at": at(350).isoformat(),
        },
        {
            "consult_id": ids["R4"],
            "department": "radiology",
            "urgency": "stat",
            "created_at": at(40).isoformat(),
            "max_level": 2,
            "reasons": [
                "level 1: not claimed by its deadline",
                "level 2: not claimed by its deadline",
                "level 1: not answered by its deadline",
                "level 2: not answered by its deadline",
            ],
            "status": "claimed",
            "ended_at": None,
        },
        {
            "consult_id": ids["R2"],
            "department": "radiology",
            "urgency": "stat",
            "created_at": at(10).isoformat(),
            "max_level": 1,
            "reasons": ["level 1: not answered by its deadline"],
            "status": "closed",
            "ended_at": closed_at,
        },
    ]
    as_okafor = report(hospital.okafor, "/api/reports/escalations").json["rows"]
    assert [r["consult_id"] for r in as_okafor] == [ids["R6"], ids["R4"], ids["R2"]]
    as_chief = report(cardiology_chief, "/api/reports/escalations").json["rows"]
    assert [r["consult_id"] for r in as_chief] == [ids["C1"]]
    early = report(hospital.admin, "/api/reports/escalations", to=at(40).isoformat())
    assert [r["consult_id"] for r in early.json["rows"]] == [ids["R2"]]
    for row in listed:
        assert "patient_ref" not in row and "question" not in row


def test_escalations_report_can_keep_the_newest_only(app, day, hospital):
    with app.app_context():
        admin = db.session.get(User, hospital.admin.user_id)
        newest = reports.escalations(admin, reports.Period(at(0), at(NOW)), limit=2)
    assert [r["consult_id"] for r in newest] == [day["C1"], day["R6"]]
    assert newest[1]["reasons"] == [
        "level 1: not claimed by its deadline",
        "level 2: not claimed by its deadline",
    ]


def test_open_and_overdue_per_owner_now(day, hospital, cardiology_chief):
    # Open at 400: R4 (castillo, answer due 100: overdue), R7 (pending, due 780),
    # C2 (answered, lee), C3 (pending, due 375: overdue). Closed and cancelled are not.
    response = report(hospital.admin, "/api/reports/open")
    assert response.status_code == 200
    assert datetime.fromisoformat(response.json["at"]) == at(NOW)
    assert response.json["rows"] == [
        {"owner": None, "department": "cardiology", "open": 1, "overdue": 1},
        {
            "owner": user(hospital.lee),
            "department": "cardiology",
            "open": 1,
            "overdue": 0,
        },
        {"owner": None, "department": "radiology", "open": 1, "overdue": 0},
        {
            "owner": user(hospital.castillo),
            "department": "radiology",
            "open": 1,
            "overdue": 1,
        },
    ]
    radiology = response.json["rows"][2:]
    assert report(hospital.okafor, "/api/reports/open").json["rows"] == radiology
    cardiology = report(cardiology_chief, "/api/reports/open").json["rows"]
    assert cardiology == response.json["rows"][:2]
    # C3 (stat, created 360) is overdue from its claim deadline at 375 on.
    before = report(cardiology_chief, "/api/reports/open", minute=374).json["rows"]
    assert before[0] == {
        "owner": None,
        "department": "cardiology",
        "open": 1,
        "overdue": 0,
    }
    assert before[1:] == cardiology[1:]


def test_the_reports_are_documented(client):
    paths = client.get("/api/openapi.json").json["paths"]
    for path in ("turnaround", "escalations", "open"):
        responses = paths[f"/api/reports/{path}"]["get"]["responses"]
        assert {"200", "403", "422"} <= set(responses), path
    turnaround = paths["/api/reports/turnaround"]["get"]["responses"]["200"]
    assert {"application/json", "text/csv"} <= set(turnaround["content"])


# Many consults with random facts: the reports agree with a plain Python reference.


def reference_percentile(values: list[int], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = p * (len(ordered) - 1)
    low, high = ordered[math.floor(position)], ordered[math.ceil(position)]
    return low + (position - math.floor(position)) * (high - low)


def reference_table(consults: list[dict], key) -> list[dict]:
    groups: dict = {}
    for c in consults:
        groups.setdefault(key(c), []).append(c)
    table = []
    for group in sorted(groups):
        members = groups[group]
        row = {"group": group, "count": len(members)}
        for name in ("claim", "answer"):
            seconds = [
                c[f"{name}_seconds"]
                for c in members
                if c[f"{name}_seconds"] is not None
            ]
            for p in (50, 90):
                value = reference_percentile(seconds, p / 100)
                row[f"{name}_p{p}_minutes"] = (
                    None if value is None else round(value / 60, 1)
                )
        for name in ("claimed", "answered"):
            known = [
                c[f"{name}_in_time"]
                for c in members
                if c[f"{name}_in_time"] is not None
            ]
            share = round(sum(known) / len(known), 3) if known else None
            row[f"{name}_in_time_share"] = share
        ratings = [c["rating"] for c in members if c["rating"] is not None]
        row |= {
            "escalated": sum(c["max_escalation_level"] > 0 for c in members),
            "followups": sum(c["followup_count"] for c in members),
            "handoffs": sum(c["handoff_count"] for c in members),
            "redirects": sum(c["redirect_count"] for c in members),
            "mean_rating": round(sum(ratings) / len(ratings), 2) if ratings else None,
        }
        table.append(row)
    return table


@pytest.fixture
def many(app, hospital):
    """400 closed consults with random facts (ties included) over three weeks."""
    chance = random.Random(20300304)
    owners = [hospital.castillo, hospital.nguyen, hospital.okafor, None]
    with app.app_context():
        departments = list(
            db.session.scalars(select(Department).order_by(Department.id))
        )
        consults = []
        for _ in range(400):
            created = at(
                minutes=chance.randrange(0, 3 * 7 * 24 * 60),
                seconds=chance.randrange(60),
            )
            claim = chance.choice(
                [None, chance.randrange(0, 40) * 45, chance.randrange(5000)]
            )
            answer = chance.choice(
                [None, chance.randrange(0, 40) * 90, chance.randrange(90000)]
            )
            owner = chance.choice(owners)
            consults.append(
                {
                    "department_id": chance.choice(departments).id,
                    "urgency": chance.choice(["stat", "urgent", "routine"]),
                    "owner_id": owner.user_id if owner else None,
                    "created_at": created,
                    "claim_seconds": claim,
                    "claimed_in_time": None if claim is None else claim < 900,
                    "answer_seconds": answer,
                    "answered_in_time": None if answer is None else answer < 3600,
                    "followup_count": chance.randrange(3),
                    "handoff_count": chance.randrange(2),
                    "redirect_count": chance.randrange(2),
                    "max_escalation_level": chance.choice([0, 0, 1, 2]),
                    "rating": chance.choice([None, 1, 2, 3, 4, 5]),
                }
            )
        for c in consults:
            db.session.add(
                Consult(
                    **c,
                    status="closed",
                    requester_id=hospital.patel.user_id,
                    patient_ref="MRN-RANDOM",
                    question="Random?",
                    routed_at=c["created_at"],
                    updated_at=c["created_at"],
                    claim_due_at=c["created_at"],
                    answer_due_at=c["created_at"],
                )
            )
        db.session.commit()
        slugs = {d.id: d.slug for d in departments}
        names = {u.id: u.name for u in db.session.scalars(select(User))}
    return consults, slugs, names


def week_of(instant: datetime) -> str:
    return (instant.date() - timedelta(days=instant.weekday())).isoformat()


def test_many_consults_agree_with_a_python_reference(many, hospital):
    consults, slugs, names = many
    keys = {
        "department": lambda c: slugs[c["department_id"]],
        "consultant": lambda c: names.get(c["owner_id"], "(unclaimed)"),
        "urgency": lambda c: c["urgency"],
        "week": lambda c: week_of(c["created_at"]),
    }
    period = {
        "from": at(-60).isoformat(),
        "to": at(minutes=4 * 7 * 24 * 60).isoformat(),
    }
    for group_by, key in keys.items():
        got = rows(hospital.admin, group_by=group_by, **period)
        assert got == reference_table(consults, key), group_by


@pytest.mark.postgres
def test_window_ranks_give_exactly_percentile_cont(app, many, hospital, monkeypatch):
    """The portable method (window ranks) and PostgreSQL's percentile_cont agree to the bit."""
    period = {
        "from": at(-60).isoformat(),
        "to": at(minutes=4 * 7 * 24 * 60).isoformat(),
    }
    with app.app_context():
        window = reports.Period(
            datetime.fromisoformat(period["from"]), datetime.fromisoformat(period["to"])
        )
        for group_by in reports.GROUPINGS:
            base = reports._base(group_by, window, None)
            by_rank = reports._percentiles_by_rank(base)
            by_cont = {
                (row.grp, name): getattr(row, name)
                for row in db.session.execute(
                    select(
                        base.c.grp,
                        *(
                            reports._ordered_set_percentiles(base.c[name]).label(name)
                            for name in reports.DURATIONS
                        ),
                    ).group_by(base.c.grp)
                )
                for name in reports.DURATIONS
                if getattr(row, name) is not None
            }
            assert by_rank == by_cont, group_by
            assert by_rank, group_by
    with_cont = {
        g: rows(hospital.admin, group_by=g, **period) for g in reports.GROUPINGS
    }
    monkeypatch.setattr(reports, "ORDERED_SET_DIALECTS", set())
    for group_by in reports.GROUPINGS:
        assert rows(hospital.admin, group_by=group_by, **period) == with_cont[group_by]


# --- in time means by the deadline (SPEC: "within deadline") ---------------------------

BOUNDARY = [
    pytest.param(timedelta(0), 1.0, id="at-the-deadline"),
    pytest.param(timedelta(microseconds=1), 0.0, id="a-microsecond-late"),
    pytest.param(timedelta(seconds=1), 0.0, id="a-second-late"),
]


@pytest.mark.parametrize(("late", "share"), BOUNDARY)
def test_a_claim_at_its_claim_deadline_is_in_time_and_a_later_one_is_not(
    hospital, new_consult, late, share
):
    consult = create(new_consult)
    act(hospital.castillo, consult, "claim", when(consult["claim_due_at"]) + late)
    (row,) = rows(hospital.okafor)
    assert (row["group"], row["count"], row["claimed_in_time_share"]) == (
        "radiology",
        1,
        share,
    )


@pytest.mark.parametrize(("late", "share"), BOUNDARY)
def test_an_answer_at_its_answer_deadline_is_in_time_and_a_later_one_is_not(
    hospital, new_consult, late, share
):
    consult = claimed(hospital, new_consult)
    due = when(consult["answer_due_at"])
    act(hospital.castillo, consult, "answer", due + late, body="No collection.")
    (row,) = rows(hospital.okafor)
    assert (row["group"], row["count"], row["answered_in_time_share"]) == (
        "radiology",
        1,
        share,
    )


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "＝", "＋", "－", "＠"])
def test_text_a_spreadsheet_would_run_as_a_formula_is_quoted_in_csv(
    hospital, make_caller, new_consult, start
):
    """The consultant's name is the only free text of a report: it could be a formula."""
    name = start + 'HYPERLINK("https://evil.example","x")'
    consultant = make_caller("formula@h.test", name, {"radiology": False})
    consult = new_consult()
    assert consultant.post(f"/api/consults/{consult['id']}/claim").status_code == 200

    response = hospital.admin.get(
        "/api/reports/turnaround",
        query_string={"group_by": "consultant", "format": "csv"},
    )

    cells = [row[0] for row in csv.reader(io.StringIO(response.get_data(as_text=True)))]
    assert "'" + name in cells
    assert name not in cells
