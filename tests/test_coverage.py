"""A department's deadline policy, its on-call schedule, and personal notifications.

All through the HTTP API (and the `demo` command), as chiefs, members,
requesters and outsiders see them. The clock is frozen where "now" matters.
"""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from helpers import T0, act, at, create, scheduled, shift, user, when

from broker import clock

DEFAULTS = {
    "stat": {"claim_minutes": 15, "answer_minutes": 60, "followup_minutes": 60},
    "urgent": {"claim_minutes": 60, "answer_minutes": 240, "followup_minutes": 240},
    "routine": {"claim_minutes": 480, "answer_minutes": 2880, "followup_minutes": 2880},
}
PATIENT_REF = "MRN-SECRET-90210"
QUESTION = "Is the left renal mass enhancing after contrast?"


# --- deadline policy -------------------------------------------------------------


def minutes(claim, answer, followup) -> dict:
    return {
        "claim_minutes": claim,
        "answer_minutes": answer,
        "followup_minutes": followup,
    }


def policy_of(caller, slug) -> dict:
    response = caller.get("/api/departments")
    assert response.status_code == 200, response.json
    (department,) = [d for d in response.json if d["slug"] == slug]
    return department["policy"]


def test_departments_show_the_default_policy(hospital):
    assert policy_of(hospital.patel, "radiology") == DEFAULTS
    assert policy_of(hospital.outsider, "cardiology") == DEFAULTS


@pytest.mark.parametrize("who", ["okafor", "admin"])
def test_the_chief_or_an_admin_changes_the_policy(hospital, who):
    caller = getattr(hospital, who)

    response = caller.put(
        "/api/departments/radiology/policy", json={"stat": minutes(10, 30, 20)}
    )

    assert response.status_code == 200, response.json
    assert response.json["slug"] == "radiology"
    assert response.json["policy"]["stat"] == minutes(10, 30, 20)
    # everyone sees it; urgencies left out keep their minutes
    assert policy_of(hospital.patel, "radiology") == {
        **DEFAULTS,
        "stat": minutes(10, 30, 20),
    }
    assert policy_of(hospital.patel, "cardiology") == DEFAULTS


def test_a_policy_change_sets_the_deadlines_of_new_consults(hospital, new_consult):
    body = {"urgent": minutes(20, 100, 50)}
    assert (
        hospital.okafor.put("/api/departments/radiology/policy", json=body).status_code
        == 200
    )

    with clock.frozen_at(T0):
        consult = new_consult(urgency="urgent")

    assert when(consult["claim_due_at"]) == at(20)
    assert when(consult["answer_due_at"]) == at(100)


@pytest.mark.parametrize(
    "who, slug",
    [
        ("castillo", "radiology"),  # a member, not the chief
        ("outsider", "radiology"),
        ("patel", "radiology"),
        ("lee", "cardiology"),  # a member of cardiology, which has no chief
        ("okafor", "cardiology"),  # chief of another department
    ],
)
def test_only_the_chief_or_an_admin_may_change_the_policy(hospital, who, slug):
    caller = getattr(hospital, who)

    response = caller.put(
        f"/api/departments/{slug}/policy", json={"stat": minutes(5, 10, 10)}
    )

    assert response.status_code == 403, response.json
    assert response.json["message"]
    assert policy_of(hospital.admin, slug) == DEFAULTS


@pytest.mark.parametrize(
    "stat, bad_field",
    [
        (minutes(0, 60, 60), "claim_minutes"),
        (minutes(15, -60, 60), "answer_minutes"),
        (minutes(15, 60, 0), "followup_minutes"),
        (minutes(15.5, 60, 60), "claim_minutes"),
        (minutes(15, "60", 60), "answer_minutes"),
        (minutes(15, 60, None), "followup_minutes"),
        ({"claim_minutes": 15, "answer_minutes": 60}, "followup_minutes"),
    ],
)
def test_a_policy_must_be_positive_whole_minutes(hospital, stat, bad_field):
    response = hospital.okafor.put(
        "/api/departments/radiology/policy", json={"stat": stat}
    )

    assert response.status_code == 422, response.json
    assert bad_field in response.json["errors"]["stat"]
    assert policy_of(hospital.okafor, "radiology") == DEFAULTS


def test_the_time_to_answer_cannot_be_shorter_than_the_time_to_claim(hospital):
    response = hospital.okafor.put(
        "/api/departments/radiology/policy",
        json={"stat": minutes(10, 30, 30), "urgent": minutes(60, 59, 240)},
    )

    assert response.status_code == 422, response.json
    assert "urgent" in response.json["errors"]
    assert "stat" not in response.json["errors"]
    # nothing was saved, not even the valid urgency
    assert policy_of(hospital.okafor, "radiology") == DEFAULTS


def test_the_time_to_answer_may_equal_the_time_to_claim(hospital):
    response = hospital.okafor.put(
        "/api/departments/radiology/policy", json={"routine": minutes(30, 30, 30)}
    )

    assert response.status_code == 200, response.json
    assert policy_of(hospital.okafor, "radiology")["routine"] == minutes(30, 30, 30)


def test_the_policy_of_an_unknown_department_is_not_found(hospital):
    response = hospital.admin.put(
        "/api/departments/neurology/policy", json={"stat": minutes(10, 30, 30)}
    )

    assert response.status_code == 404, response.json


def test_changing_the_policy_needs_a_signed_in_caller(hospital, client):
    response = client.put(
        "/api/departments/radiology/policy", json={"stat": minutes(10, 30, 30)}
    )

    assert response.status_code == 401
    assert policy_of(hospital.okafor, "radiology") == DEFAULTS


# --- the on-call schedule --------------------------------------------------------

SHIFTS = "/api/departments/radiology/shifts"


def listed(caller, query="", instant=T0) -> list[dict]:
    with clock.frozen_at(instant):
        response = caller.get(SHIFTS + query)
    assert response.status_code == 200, response.json
    return response.json


def test_the_chief_schedules_a_shift(hospital):
    response = shift(hospital.okafor, hospital.castillo, "primary", at(), at(hours=12))

    assert response.status_code == 201, response.json
    body = response.json
    assert set(body) == {"id", "user", "role", "starts_at", "ends_at"}
    assert body["user"] == user(hospital.castillo)
    assert body["role"] == "primary"
    assert when(body["starts_at"]) == at()
    assert when(body["ends_at"]) == at(hours=12)


def test_a_shift_time_without_an_offset_is_utc(hospital):
    response = hospital.okafor.post(
        SHIFTS,
        json={
            "user_id": hospital.castillo.user_id,
            "role": "backup",
            "starts_at": "2030-03-04T08:00:00",
            "ends_at": "2030-03-04T20:00:00",
        },
    )

    assert response.status_code == 201, response.json
    assert when(response.json["starts_at"]) == at()
    assert when(response.json["ends_at"]) == at(hours=12)


@pytest.mark.parametrize("who", ["okafor", "castillo", "nguyen", "admin"])
def test_members_and_admins_see_the_schedule(hospital, who):
    first = scheduled(hospital.okafor, hospital.castillo, "primary", at(), at(hours=12))
    second = scheduled(hospital.okafor, hospital.nguyen, "backup", at(), at(hours=12))

    shifts = listed(getattr(hospital, who))

    assert [s["id"] for s in shifts] == [first["id"], second["id"]]
    assert shifts[0] == first


@pytest.mark.parametrize("who", ["outsider", "patel", "lee"])
def test_people_outside_the_department_may_not_see_its_schedule(hospital, who):
    scheduled(hospital.okafor, hospital.castillo, "primary", at(), at(hours=12))

    response = getattr(hospital, who).get(SHIFTS)

    assert response.status_code == 403, response.json


def test_the_schedule_lists_shifts_not_yet_over_or_those_in_a_range(hospital):
    day1 = scheduled(hospital.okafor, hospital.castillo, "primary", at(), at(hours=12))
    day2 = scheduled(
        hospital.okafor, hospital.nguyen, "primary", at(hours=24), at(hours=36)
    )

    assert [s["id"] for s in listed(hospital.castillo, instant=at(hours=6))] == [
        day1["id"],
        day2["id"],
    ]
    assert [s["id"] for s in listed(hospital.castillo, instant=at(hours=12))] == [
        day2["id"]
    ]
    between = "?" + urlencode(
        {"from": at(hours=-1).isoformat(), "to": at(hours=2).isoformat()}
    )
    in_range = listed(hospital.castillo, between, instant=at(hours=40))
    assert [s["id"] for s in in_range] == [day1["id"]]


def test_the_chief_removes_a_shift(hospital):
    kept = scheduled(hospital.okafor, hospital.castillo, "primary", at(), at(hours=12))
    removed = scheduled(hospital.okafor, hospital.nguyen, "backup", at(), at(hours=12))

    response = hospital.okafor.delete(f"{SHIFTS}/{removed['id']}")

    assert response.status_code == 204
    assert [s["id"] for s in listed(hospital.castillo)] == [kept["id"]]
    assert hospital.okafor.delete(f"{SHIFTS}/{removed['id']}").status_code == 404
    with clock.frozen_at(at(hours=1)):
        oncall = hospital.patel.get("/api/departments/radiology/oncall").json
    assert oncall["backup"] is None


def test_a_shift_of_another_department_cannot_be_removed_through_this_one(hospital):
    theirs = scheduled(
        hospital.admin, hospital.lee, "primary", at(), at(hours=12), "cardiology"
    )

    response = hospital.okafor.delete(f"{SHIFTS}/{theirs['id']}")

    assert response.status_code == 404
    with clock.frozen_at(at(hours=1)):
        oncall = hospital.patel.get("/api/departments/cardiology/oncall").json
    assert oncall["primary"] == user(hospital.lee)


@pytest.mark.parametrize("who", ["castillo", "outsider", "lee"])
def test_only_the_chief_or_an_admin_schedules_or_removes_shifts(hospital, who):
    caller = getattr(hospital, who)
    existing = scheduled(
        hospital.okafor, hospital.castillo, "primary", at(), at(hours=12)
    )

    created = shift(caller, hospital.nguyen, "backup", at(), at(hours=12))
    removed = caller.delete(f"{SHIFTS}/{existing['id']}")

    assert created.status_code == 403, created.json
    assert removed.status_code == 403, removed.json
    assert [s["id"] for s in listed(hospital.okafor)] == [existing["id"]]


def test_an_admin_schedules_shifts_too(hospital):
    response = shift(hospital.admin, hospital.nguyen, "primary", at(), at(hours=12))

    assert response.status_code == 201, response.json


@pytest.mark.parametrize("who", ["lee", "patel", "admin"])
def test_a_shift_for_someone_outside_the_department_is_refused(hospital, who):
    response = shift(
        hospital.okafor, getattr(hospital, who), "primary", at(), at(hours=12)
    )

    assert response.status_code == 422, response.json
    assert "user_id" in response.json["errors"]
    assert listed(hospital.okafor) == []


def test_a_shift_for_an_unknown_user_is_refused(hospital):
    response = hospital.okafor.post(
        SHIFTS,
        json={
            "user_id": 999_999,
            "role": "primary",
            "starts_at": at().isoformat(),
            "ends_at": at(hours=12).isoformat(),
        },
    )

    assert response.status_code == 422, response.json
    assert "user_id" in response.json["errors"]


@pytest.mark.parametrize("length", [timedelta(hours=-1), timedelta(0)])
def test_a_shift_must_end_after_it_starts(hospital, length):
    response = shift(hospital.okafor, hospital.castillo, "primary", at(), at() + length)

    assert response.status_code == 422, response.json
    assert "ends_at" in response.json["errors"]
    assert listed(hospital.okafor) == []


def test_a_shift_needs_a_known_role(hospital):
    response = shift(hospital.okafor, hospital.castillo, "standby", at(), at(hours=1))

    assert response.status_code == 422, response.json
    assert "role" in response.json["errors"]


def test_overlapping_primary_shifts_are_refused(hospital):
    first = scheduled(hospital.okafor, hospital.castillo, "primary", at(), at(hours=12))

    response = shift(
        hospital.okafor, hospital.nguyen, "primary", at(hours=11), at(hours=23)
    )
    inside = shift(
        hospital.okafor, hospital.nguyen, "primary", at(hours=1), at(hours=2)
    )

    assert response.status_code == 409, response.json
    assert inside.status_code == 409, inside.json
    assert "Dr Castillo" in response.json["message"]
    assert [s["id"] for s in listed(hospital.okafor)] == [first["id"]]


def test_adjacent_primaries_and_overlapping_backups_are_fine(hospital):
    scheduled(hospital.okafor, hospital.castillo, "primary", at(), at(hours=12))

    adjacent = shift(
        hospital.okafor, hospital.nguyen, "primary", at(hours=12), at(hours=24)
    )
    backup = shift(hospital.okafor, hospital.nguyen, "backup", at(), at(hours=12))
    second_backup = shift(hospital.okafor, hospital.okafor, "backup", at(), at(hours=6))
    elsewhere = shift(
        hospital.admin, hospital.lee, "primary", at(), at(hours=12), "cardiology"
    )

    for response in (adjacent, backup, second_backup, elsewhere):
        assert response.status_code == 201, response.json
    assert len(listed(hospital.okafor)) == 4


# --- who is on call --------------------------------------------------------------


def oncall(caller, instant, slug="radiology") -> dict:
    with clock.frozen_at(instant):
        response = caller.get(f"/api/departments/{slug}/oncall")
    assert response.status_code == 200, response.json
    return response.json


def test_oncall_answers_who_covers_at_each_instant(hospital):
    scheduled(hospital.okafor, hospital.castillo, "primary", at(), at(hours=12))
    scheduled(hospital.okafor, hospital.nguyen, "backup", at(), at(hours=12))
    scheduled(hospital.okafor, hospital.nguyen, "primary", at(hours=12), at(hours=24))

    before = oncall(hospital.outsider, at(minutes=-1))
    assert before["primary"] is None
    assert before["backup"] is None
    assert before["backups"] == []

    start = oncall(hospital.outsider, at())
    assert start["department"] == "radiology"
    assert when(start["at"]) == at()
    assert start["primary"] == user(hospital.castillo)
    assert start["backup"] == user(hospital.nguyen)
    assert start["backups"] == [user(hospital.nguyen)]

    last_minute = oncall(hospital.patel, at(hours=12, minutes=-1))
    assert last_minute["primary"] == user(hospital.castillo)

    handover = oncall(hospital.patel, at(hours=12))
    assert handover["primary"] == user(hospital.nguyen)
    assert handover["backup"] is None

    after = oncall(hospital.patel, at(hours=24))
    assert after["primary"] is None
    assert after["backups"] == []


def test_oncall_lists_every_backup_on_shift(hospital):
    scheduled(hospital.okafor, hospital.nguyen, "backup", at(), at(hours=12))
    scheduled(hospital.okafor, hospital.okafor, "backup", at(hours=1), at(hours=6))

    now = oncall(hospital.castillo, at(hours=2))

    assert now["primary"] is None
    assert now["backup"] == user(hospital.nguyen)
    assert now["backups"] == [user(hospital.nguyen), user(hospital.okafor)]


def test_oncall_of_an_unknown_department_is_not_found(hospital):
    assert hospital.patel.get("/api/departments/neurology/oncall").status_code == 404


# --- notifications ---------------------------------------------------------------


def inbox(caller, query="") -> list[dict]:
    response = caller.get("/api/notifications" + query)
    assert response.status_code == 200, response.json
    return response.json


def kinds(caller, consult=None) -> list[str]:
    return [
        n["kind"]
        for n in inbox(caller)
        if consult is None or n["consult_id"] == consult["id"]
    ]


@pytest.fixture
def on_call(hospital):
    """castillo primary, nguyen backup, around T0."""
    scheduled(hospital.okafor, hospital.castillo, "primary", at(hours=-1), at(hours=12))
    scheduled(hospital.okafor, hospital.nguyen, "backup", at(hours=-1), at(hours=12))


def test_a_new_consult_notifies_the_primary_on_call(hospital, on_call, new_consult):
    with clock.frozen_at(T0):
        consult = create(new_consult)

    (notification,) = inbox(hospital.castillo)
    assert set(notification) == {
        "id",
        "kind",
        "consult_id",
        "message",
        "created_at",
        "read_at",
    }
    assert notification["kind"] == "new_consult"
    assert notification["consult_id"] == consult["id"]
    assert f"#{consult['id']}" in notification["message"]
    assert when(notification["created_at"]) == T0
    assert notification["read_at"] is None
    for other in (hospital.nguyen, hospital.okafor, hospital.patel, hospital.lee):
        assert inbox(other) == []


def test_a_new_consult_outside_any_shift_notifies_no_one(
    hospital, on_call, new_consult
):
    create(new_consult, at(hours=13))

    for who in (hospital.castillo, hospital.nguyen, hospital.okafor):
        assert inbox(who) == []


def test_a_handoff_offer_notifies_the_colleague(hospital, new_consult):
    consult = create(new_consult)
    act(hospital.castillo, consult, "claim")

    act(hospital.castillo, consult, "handoff", to_user_id=hospital.nguyen.user_id, note="Shift over")  # fmt: skip

    assert kinds(hospital.nguyen, consult) == ["handoff_offered"]
    assert kinds(hospital.okafor) == []


def test_a_followup_notifies_the_owner(hospital, new_consult):
    consult = create(new_consult)
    act(hospital.castillo, consult, "claim")
    act(hospital.castillo, consult, "answer", body="No collection.")

    act(hospital.patel, consult, "messages", body="And the flank?")

    assert kinds(hospital.castillo, consult) == ["followup"]
    assert kinds(hospital.nguyen) == []


def test_an_answer_notifies_the_requester(hospital, new_consult):
    consult = create(new_consult)
    act(hospital.castillo, consult, "claim")

    act(hospital.castillo, consult, "answer", body="No collection.")

    (notification,) = inbox(hospital.patel)
    assert notification["kind"] == "answered"
    assert notification["consult_id"] == consult["id"]
    assert "Dr Castillo" in notification["message"]


def three_notifications(hospital, new_consult) -> list[dict]:
    """Three answered consults: patel's inbox, newest first."""
    for _ in range(3):
        consult = create(new_consult)
        act(hospital.castillo, consult, "claim")
        act(hospital.castillo, consult, "answer", body="No collection.")
    notifications = inbox(hospital.patel)
    assert len(notifications) == 3
    return notifications


def test_the_inbox_is_newest_first(hospital, new_consult):
    notifications = three_notifications(hospital, new_consult)

    ids = [n["consult_id"] for n in notifications]
    assert ids == sorted(ids, reverse=True)


def test_marking_one_notification_read(hospital, new_consult):
    newest, middle, oldest = three_notifications(hospital, new_consult)

    with clock.frozen_at(at(hours=1)):
        response = hospital.patel.post(f"/api/notifications/{middle['id']}/read")

    assert response.status_code == 200, response.json
    assert response.json["id"] == middle["id"]
    assert when(response.json["read_at"]) == at(hours=1)
    assert [n["id"] for n in inbox(hospital.patel, "?unread=true")] == [
        newest["id"],
        oldest["id"],
    ]
    everything = inbox(hospital.patel)
    assert [n["id"] for n in everything] == [newest["id"], middle["id"], oldest["id"]]
    assert [n["read_at"] is None for n in everything] == [True, False, True]
    # marking it again keeps the first reading time
    with clock.frozen_at(at(hours=2)):
        again = hospital.patel.post(f"/api/notifications/{middle['id']}/read")
    assert when(again.json["read_at"]) == at(hours=1)


def test_marking_all_notifications_read(hospital, new_consult):
    three_notifications(hospital, new_consult)
    castillo_consult = create(new_consult)
    act(hospital.castillo, castillo_consult, "claim")
    act(hospital.castillo, castillo_consult, "answer", body="No collection.")
    act(hospital.patel, castillo_consult, "messages", body="And the flank?")

    response = hospital.patel.post("/api/notifications/read-all")

    assert response.status_code == 204
    assert inbox(hospital.patel, "?unread=true") == []
    assert len(inbox(hospital.patel)) == 4
    assert all(n["read_at"] is not None for n in inbox(hospital.patel))
    # someone else's stay unread
    assert kinds(hospital.castillo) == ["followup"]
    assert len(inbox(hospital.castillo, "?unread=true")) == 1


def test_nobody_can_mark_another_persons_notification(hospital, new_consult):
    newest, _, _ = three_notifications(hospital, new_consult)

    for other in (hospital.castillo, hospital.admin, hospital.outsider):
        response = other.post(f"/api/notifications/{newest['id']}/read")
        assert response.status_code == 404, response.json

    assert len(inbox(hospital.patel, "?unread=true")) == 3


def test_an_unknown_notification_is_not_found(hospital):
    assert hospital.patel.post("/api/notifications/999999/read").status_code == 404


def test_notifications_need_a_signed_in_caller(hospital, client):
    assert client.get("/api/notifications").status_code == 401
    assert client.post("/api/notifications/read-all").status_code == 401


def test_notification_messages_never_carry_the_patient_or_the_question(
    hospital, on_call, new_consult, app
):
    one = create(new_consult, patient_ref=PATIENT_REF, question=QUESTION)
    two = create(new_consult, patient_ref=PATIENT_REF, question=QUESTION)
    act(hospital.castillo, one, "claim")
    act(hospital.castillo, one, "handoff", to_user_id=hospital.nguyen.user_id, note="Over")  # fmt: skip
    act(hospital.nguyen, one, "handoff/decline", reason="Busy")
    act(hospital.castillo, one, "release", reason="Wrong list")
    act(hospital.okafor, one, "assign", user_id=hospital.nguyen.user_id)
    act(hospital.nguyen, one, "messages", body="Looking now")
    act(hospital.nguyen, one, "answer", body="Enhancing: yes.")
    act(hospital.patel, one, "messages", body="Size?")
    act(hospital.nguyen, one, "answer", body="3 cm.")
    act(hospital.patel, one, "close", rating=5)
    act(hospital.castillo, two, "redirect", department="cardiology", reason="Cardiac")
    runner = app.test_cli_runner()
    for instant in (at(hours=1), at(hours=2)):
        assert runner.invoke(args=["sweep", "--at", instant.isoformat()]).exit_code == 0

    people = [
        hospital.okafor,
        hospital.castillo,
        hospital.nguyen,
        hospital.lee,
        hospital.patel,
    ]
    messages = [n["message"] for caller in people for n in inbox(caller)]
    seen = {n["kind"] for caller in people for n in inbox(caller)}
    assert {
        "new_consult",
        "handoff_offered",
        "assigned",
        "answered",
        "followup",
    } <= seen
    assert {"redirected", "escalated", "closed", "handoff_declined"} <= seen
    for message in messages:
        assert PATIENT_REF not in message
        assert "MRN" not in message
        assert QUESTION not in message
        assert "renal mass" not in message


# --- the demo --------------------------------------------------------------------


@pytest.mark.parametrize("hour", [3, 8, 14, 20, 23])
def test_the_demo_has_a_week_of_shifts(app, client, hour):
    loaded = datetime(2030, 6, 10, hour, 30, tzinfo=UTC)
    with clock.frozen_at(loaded):
        result = app.test_cli_runner().invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    token = client.post(
        "/api/tokens", json={"email": "admin@demo.test", "password": "consult-demo"}
    ).json["token"]
    headers = {"Authorization": f"Bearer {token}"}
    slugs = [d["slug"] for d in client.get("/api/departments", headers=headers).json]
    assert len(slugs) >= 3

    for slug in slugs:
        for instant in (loaded, loaded + timedelta(days=6)):
            with clock.frozen_at(instant):
                now = client.get(f"/api/departments/{slug}/oncall", headers=headers)
            assert now.status_code == 200, now.json
            assert now.json["primary"] is not None, (slug, instant)
            assert now.json["backup"] is not None, (slug, instant)
            assert now.json["primary"] != now.json["backup"]
