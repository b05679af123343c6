"""Deadlines and escalation, driven through `flask sweep --at` and the app's clock.

A stat consult (claim 15 min, answer 60 min by default) is created at T0 with
the clock frozen. The sweep is run as a user would run it, from the command
line, at chosen instants. What it did is read where people see it: the
command's output, the consult's timeline and escalation level, and each
person's notification inbox.
"""

from datetime import timedelta, timezone

import pytest
from helpers import act, answered, at, claimed, create, scheduled, show, when

from broker import clock

NOT_CLAIMED = "not claimed by its deadline"
NOT_ANSWERED = "not answered by its deadline"


@pytest.fixture
def diaz(hospital, make_caller):
    """A fourth radiologist, so the primary, the backup and the owner can all differ."""
    return make_caller("diaz@h.test", "Dr Diaz", {"radiology": False})


@pytest.fixture
def rota(hospital, diaz):
    """Radiology's on-call, set by its chief: castillo primary, diaz backup, all week."""
    for who, role in ((hospital.castillo, "primary"), (diaz, "backup")):
        scheduled(hospital.okafor, who, role, at(hours=-1), at(hours=24 * 7))
    return {"primary": hospital.castillo, "backup": diaz}


def escalations(caller, consult) -> list[tuple]:
    """The consult's `escalated` events as (detail, actor, at)."""
    return [
        (e["detail"], e["actor"], when(e["at"]))
        for e in show(caller, consult)["timeline"]
        if e["kind"] == "escalated"
    ]


def escalation_details(caller, consult) -> list[str]:
    return [detail for detail, _, _ in escalations(caller, consult)]


def alerts(caller, consult, kind="escalated") -> list[dict]:
    """The caller's notifications of `kind` about this consult."""
    response = caller.get("/api/notifications")
    assert response.status_code == 200, response.json
    return [
        n
        for n in response.json
        if n["kind"] == kind and n["consult_id"] == consult["id"]
    ]


def alerted(people, consult) -> set[str]:
    """Which of people (a dict name -> caller) hold an escalation alert for the consult."""
    return {name for name, caller in people.items() if alerts(caller, consult)}


def everyone(hospital, diaz) -> dict:
    return {
        "okafor": hospital.okafor,
        "castillo": hospital.castillo,
        "nguyen": hospital.nguyen,
        "diaz": diaz,
        "lee": hospital.lee,
        "patel": hospital.patel,
        "admin": hospital.admin,
        "outsider": hospital.outsider,
    }


# --- the claim ladder ------------------------------------------------------------


def test_nothing_escalates_before_the_claim_deadline(hospital, diaz, rota, new_consult, sweep):  # fmt: skip
    consult = create(new_consult)

    swept = sweep(at(14, 59))

    assert swept.escalated == []
    assert swept.at == at(14, 59)
    assert escalations(hospital.patel, consult) == []
    assert show(hospital.patel, consult)["escalation_level"] == 0
    assert alerted(everyone(hospital, diaz), consult) == set()


def test_an_unclaimed_consult_escalates_to_level_1_at_its_claim_deadline(
    hospital, diaz, rota, new_consult, sweep
):
    consult = create(new_consult)

    swept = sweep(at(15))

    assert swept.escalated == [(consult["id"], 1)]
    assert escalations(hospital.patel, consult) == [
        (f"level 1: {NOT_CLAIMED}", None, at(15))
    ]
    now = show(hospital.patel, consult, at(15))
    assert now["escalation_level"] == 1
    assert now["status"] == "pending"


def test_level_1_of_the_claim_ladder_alerts_the_primary_and_backup_on_call_only(
    hospital, diaz, rota, new_consult, sweep
):
    consult = create(new_consult)

    sweep(at(15))

    assert alerted(everyone(hospital, diaz), consult) == {"castillo", "diaz"}
    (alert,) = alerts(diaz, consult)
    assert when(alert["created_at"]) == at(15)
    assert alert["read_at"] is None
    assert "level 1" in alert["message"]
    assert f"#{consult['id']}" in alert["message"]


def test_a_second_sweep_at_the_same_instant_fires_nothing_more(
    hospital, diaz, rota, new_consult, sweep
):
    consult = create(new_consult)
    sweep(at(15))

    again = sweep(at(15))

    assert again.escalated == []
    assert escalation_details(hospital.patel, consult) == [f"level 1: {NOT_CLAIMED}"]
    assert len(alerts(diaz, consult)) == 1
    assert len(alerts(hospital.castillo, consult)) == 1


def test_level_2_comes_one_claim_interval_later_and_alerts_the_chief(
    hospital, diaz, rota, new_consult, sweep
):
    consult = create(new_consult)
    sweep(at(15))

    assert sweep(at(29, 59)).escalated == []
    assert show(hospital.patel, consult)["escalation_level"] == 1
    assert alerts(hospital.okafor, consult) == []

    assert sweep(at(30)).escalated == [(consult["id"], 2)]

    assert escalations(hospital.patel, consult) == [
        (f"level 1: {NOT_CLAIMED}", None, at(15)),
        (f"level 2: {NOT_CLAIMED}", None, at(30)),
    ]
    assert show(hospital.patel, consult)["escalation_level"] == 2
    (chief_alert,) = alerts(hospital.okafor, consult)
    assert "level 2" in chief_alert["message"]
    # the on-call pair heard of level 1 only; nobody else heard anything
    assert len(alerts(diaz, consult)) == 1
    assert len(alerts(hospital.castillo, consult)) == 1
    assert alerted(everyone(hospital, diaz), consult) == {"castillo", "diaz", "okafor"}


def test_the_claim_ladder_has_no_level_3(hospital, rota, new_consult, sweep):
    consult = create(new_consult)
    sweep(at(15))
    sweep(at(30))

    later = [sweep(at(minutes)) for minutes in (45, 60, 90, 24 * 60, 7 * 24 * 60)]

    assert all(swept.escalated == [] for swept in later)
    assert escalation_details(hospital.patel, consult) == [
        f"level 1: {NOT_CLAIMED}",
        f"level 2: {NOT_CLAIMED}",
    ]
    assert show(hospital.patel, consult)["escalation_level"] == 2
    assert len(alerts(hospital.okafor, consult)) == 1


def test_a_first_sweep_long_after_both_deadlines_fires_each_level_once(
    hospital, rota, new_consult, sweep
):
    consult = create(new_consult)

    swept = sweep(at(hours=3))

    assert swept.escalated == [(consult["id"], 1), (consult["id"], 2)]
    assert escalation_details(hospital.patel, consult) == [
        f"level 1: {NOT_CLAIMED}",
        f"level 2: {NOT_CLAIMED}",
    ]
    assert sweep(at(hours=3)).escalated == []


def test_with_nobody_on_call_level_1_alerts_every_member_of_the_department(
    hospital, diaz, new_consult, sweep
):
    consult = create(new_consult)

    sweep(at(15))

    assert alerted(everyone(hospital, diaz), consult) == {
        "okafor",
        "castillo",
        "nguyen",
        "diaz",
    }


# --- the answer ladder -----------------------------------------------------------


def test_a_claimed_consult_escalates_only_after_its_answer_deadline(
    hospital, diaz, rota, new_consult, sweep
):
    consult = claimed(hospital, new_consult, by=hospital.nguyen)

    for instant in (at(15), at(30), at(45), at(59, 59)):
        assert sweep(instant).escalated == [], instant

    assert escalations(hospital.patel, consult) == []
    assert show(hospital.patel, consult)["escalation_level"] == 0
    assert alerted(everyone(hospital, diaz), consult) == set()


def test_the_answer_ladder_starts_with_the_owner_and_the_backup_on_call(
    hospital, diaz, rota, new_consult, sweep
):
    consult = claimed(hospital, new_consult, by=hospital.nguyen)

    assert sweep(at(60)).escalated == [(consult["id"], 1)]

    assert escalations(hospital.patel, consult) == [
        (f"level 1: {NOT_ANSWERED}", None, at(60))
    ]
    now = show(hospital.patel, consult, at(60))
    assert now["escalation_level"] == 1
    assert now["owner"]["id"] == hospital.nguyen.user_id
    # the owner and the backup; not the primary, not the chief
    assert alerted(everyone(hospital, diaz), consult) == {"nguyen", "diaz"}


def test_the_answer_ladder_reaches_the_chief_one_claim_interval_later(
    hospital, diaz, rota, new_consult, sweep
):
    consult = claimed(hospital, new_consult, by=hospital.nguyen)
    sweep(at(60))

    assert sweep(at(74, 59)).escalated == []
    assert sweep(at(75)).escalated == [(consult["id"], 2)]
    for minutes in (90, 120, 24 * 60):
        assert sweep(at(minutes)).escalated == []

    assert escalations(hospital.patel, consult) == [
        (f"level 1: {NOT_ANSWERED}", None, at(60)),
        (f"level 2: {NOT_ANSWERED}", None, at(75)),
    ]
    assert show(hospital.patel, consult)["escalation_level"] == 2
    assert len(alerts(hospital.okafor, consult)) == 1
    assert alerted(everyone(hospital, diaz), consult) == {"nguyen", "diaz", "okafor"}


# --- what ends or restarts a ladder ----------------------------------------------


def test_a_claim_after_level_1_resets_the_level_and_ends_the_claim_ladder(
    hospital, rota, new_consult, sweep
):
    consult = create(new_consult)
    sweep(at(15))

    claimed = act(hospital.nguyen, consult, "claim", at(20))

    assert claimed["escalation_level"] == 0
    for instant in (at(30), at(45), at(59, 59)):
        assert sweep(instant).escalated == [], instant
    assert escalation_details(hospital.patel, consult) == [f"level 1: {NOT_CLAIMED}"]
    assert alerts(hospital.okafor, consult) == []
    # what runs now is the answer ladder, from its own deadline
    assert sweep(at(60)).escalated == [(consult["id"], 1)]
    assert escalation_details(hospital.patel, consult) == [
        f"level 1: {NOT_CLAIMED}",
        f"level 1: {NOT_ANSWERED}",
    ]


def test_an_answer_resets_the_level_and_ends_the_answer_ladder(
    hospital, rota, new_consult, sweep
):
    consult = claimed(hospital, new_consult, by=hospital.nguyen)
    sweep(at(60))

    answered = act(hospital.nguyen, consult, "answer", at(65), body="No collection.")

    assert answered["escalation_level"] == 0
    for instant in (at(75), at(90), at(hours=10)):
        assert sweep(instant).escalated == [], instant
    assert escalation_details(hospital.patel, consult) == [f"level 1: {NOT_ANSWERED}"]
    assert show(hospital.patel, consult)["escalation_level"] == 0
    assert alerts(hospital.okafor, consult) == []


def test_a_followup_starts_a_new_answer_ladder_from_the_followup_deadline(
    hospital, diaz, rota, new_consult, sweep
):
    consult = claimed(hospital, new_consult, by=hospital.nguyen)
    sweep(at(60))
    act(hospital.nguyen, consult, "answer", at(65), body="No collection.")

    followed_up = act(hospital.patel, consult, "messages", at(100), body="And now?")

    assert followed_up["status"] == "claimed"
    assert followed_up["escalation_level"] == 0
    assert when(followed_up["answer_due_at"]) == at(160)
    assert sweep(at(159, 59)).escalated == []
    assert sweep(at(160)).escalated == [(consult["id"], 1)]
    assert sweep(at(174, 59)).escalated == []
    assert sweep(at(175)).escalated == [(consult["id"], 2)]
    assert escalations(hospital.patel, consult) == [
        (f"level 1: {NOT_ANSWERED}", None, at(60)),
        (f"level 1: {NOT_ANSWERED}", None, at(160)),
        (f"level 2: {NOT_ANSWERED}", None, at(175)),
    ]
    assert len(alerts(hospital.nguyen, consult)) == 2  # owner: both level 1s
    assert len(alerts(hospital.okafor, consult)) == 1  # chief: the level 2


def test_an_assignment_from_the_queue_ends_the_claim_ladder_like_a_claim(
    hospital, rota, new_consult, sweep
):
    consult = create(new_consult)
    sweep(at(15))

    assigned = act(hospital.okafor, consult, "assign", at(20), user_id=hospital.nguyen.user_id)  # fmt: skip

    assert assigned["escalation_level"] == 0
    assert sweep(at(30)).escalated == []
    assert sweep(at(59, 59)).escalated == []
    assert sweep(at(60)).escalated == [(consult["id"], 1)]
    assert escalation_details(hospital.patel, consult) == [
        f"level 1: {NOT_CLAIMED}",
        f"level 1: {NOT_ANSWERED}",
    ]


def test_an_accepted_handoff_keeps_the_deadline_and_the_ladder_alerts_the_new_owner(
    hospital, diaz, rota, new_consult, sweep
):
    consult = claimed(hospital, new_consult, by=hospital.castillo)
    act(hospital.castillo, consult, "handoff", at(10), to_user_id=hospital.nguyen.user_id, note="Off shift")  # fmt: skip
    accepted = act(hospital.nguyen, consult, "handoff/accept", at(20))

    assert when(accepted["answer_due_at"]) == at(60)
    assert sweep(at(59, 59)).escalated == []
    assert sweep(at(60)).escalated == [(consult["id"], 1)]
    assert alerted(everyone(hospital, diaz), consult) == {"nguyen", "diaz"}


def test_a_cancelled_consult_never_escalates(hospital, diaz, rota, new_consult, sweep):
    consult = create(new_consult)
    act(hospital.patel, consult, "cancel", at(5), reason="Patient discharged")

    for instant in (at(15), at(30), at(60), at(75), at(hours=100)):
        swept = sweep(instant)
        assert (swept.escalated, swept.closed) == ([], 0), instant

    assert escalations(hospital.patel, consult) == []
    assert show(hospital.patel, consult)["status"] == "cancelled"
    assert alerted(everyone(hospital, diaz), consult) == set()


def test_a_release_restarts_the_claim_ladder_from_the_original_claim_deadline(
    hospital, diaz, rota, new_consult, sweep
):
    consult = claimed(hospital, new_consult, by=hospital.nguyen)
    assert sweep(at(16)).escalated == []  # claimed: the claim ladder is not running

    released = act(hospital.nguyen, consult, "release", at(20), reason="Off shift")

    assert released["status"] == "pending"
    assert when(released["claim_due_at"]) == at(15)
    assert released["overdue"] is True
    # overdue already: the next sweep escalates it
    assert sweep(at(20)).escalated == [(consult["id"], 1)]
    assert sweep(at(29, 59)).escalated == []
    assert sweep(at(30)).escalated == [(consult["id"], 2)]
    assert escalations(hospital.patel, consult) == [
        (f"level 1: {NOT_CLAIMED}", None, at(20)),
        (f"level 2: {NOT_CLAIMED}", None, at(30)),
    ]
    assert alerted(everyone(hospital, diaz), consult) == {"castillo", "diaz", "okafor"}


def test_a_release_before_the_claim_deadline_escalates_at_that_deadline(
    hospital, rota, new_consult, sweep
):
    consult = claimed(hospital, new_consult, by=hospital.nguyen, at=2)
    act(hospital.nguyen, consult, "release", at(5), reason="Wrong study")

    assert sweep(at(14, 59)).escalated == []
    assert sweep(at(15)).escalated == [(consult["id"], 1)]


def test_a_redirect_runs_the_new_departments_ladder_from_routed_at(
    hospital, diaz, rota, new_consult, sweep
):
    # cardiology (no chief, nobody on call) allows 20 minutes to claim a stat consult
    policy = {"stat": {"claim_minutes": 20, "answer_minutes": 90, "followup_minutes": 90}}  # fmt: skip
    assert hospital.admin.put("/api/departments/cardiology/policy", json=policy).status_code == 200  # fmt: skip
    consult = create(new_consult)

    redirected = act(
        hospital.castillo,
        consult,
        "redirect",
        at(10),
        department="cardiology",
        reason="Cardiac question",
    )

    assert when(redirected["routed_at"]) == at(10)
    assert when(redirected["claim_due_at"]) == at(30)
    assert redirected["escalation_level"] == 0
    for instant in (at(15), at(29, 59)):
        assert sweep(instant).escalated == [], instant
    assert sweep(at(30)).escalated == [(consult["id"], 1)]
    assert sweep(at(49, 59)).escalated == []
    assert sweep(at(50)).escalated == [(consult["id"], 2)]
    assert escalations(hospital.patel, consult) == [
        (f"level 1: {NOT_CLAIMED}", None, at(30)),
        (f"level 2: {NOT_CLAIMED}", None, at(50)),
    ]
    # cardiology has nobody on call and no chief: its members hear of both levels
    assert len(alerts(hospital.lee, consult)) == 2
    assert alerted(everyone(hospital, diaz), consult) == {"lee"}


def test_a_policy_change_applies_to_consults_created_afterwards_only(
    hospital, new_consult, sweep
):
    before = create(new_consult, at=0)
    policy = {"stat": {"claim_minutes": 30, "answer_minutes": 120, "followup_minutes": 90}}  # fmt: skip
    with clock.frozen_at(at(1)):
        response = hospital.okafor.put("/api/departments/radiology/policy", json=policy)
    assert response.status_code == 200, response.json
    after = create(new_consult, at=2)

    assert when(show(hospital.patel, before)["claim_due_at"]) == at(15)
    assert when(show(hospital.patel, before)["answer_due_at"]) == at(60)
    assert when(after["claim_due_at"]) == at(32)
    assert when(after["answer_due_at"]) == at(122)
    assert sweep(at(15)).escalated == [(before["id"], 1)]
    assert sweep(at(30)).escalated == [(before["id"], 2)]
    assert sweep(at(31, 59)).escalated == []
    assert sweep(at(32)).escalated == [(after["id"], 1)]
    assert sweep(at(61, 59)).escalated == []
    assert sweep(at(62)).escalated == [(after["id"], 2)]


def test_a_followup_gets_the_policys_followup_minutes(hospital, new_consult, sweep):
    policy = {"stat": {"claim_minutes": 10, "answer_minutes": 40, "followup_minutes": 25}}  # fmt: skip
    assert hospital.okafor.put("/api/departments/radiology/policy", json=policy).status_code == 200  # fmt: skip
    consult = claimed(hospital, new_consult, by=hospital.nguyen)
    act(hospital.nguyen, consult, "answer", at(20), body="No collection.")

    followed_up = act(hospital.patel, consult, "messages", at(50), body="And now?")

    assert when(followed_up["answer_due_at"]) == at(75)
    assert sweep(at(74, 59)).escalated == []
    assert sweep(at(75)).escalated == [(consult["id"], 1)]
    assert sweep(at(84, 59)).escalated == []  # level 2: one claim interval (10) later
    assert sweep(at(85)).escalated == [(consult["id"], 2)]


# --- the automatic close ---------------------------------------------------------

ANSWERED_AT = at(10)


def closings(caller, consult) -> list[dict]:
    return [e for e in show(caller, consult)["timeline"] if e["kind"] == "closed"]


def test_an_answered_consult_is_closed_by_the_system_72_hours_after_the_answer(
    hospital, new_consult, sweep
):
    consult = answered(hospital, new_consult, by=hospital.nguyen, at=ANSWERED_AT)

    early = sweep(ANSWERED_AT + timedelta(hours=72, seconds=-1))
    assert early.closed == 0
    assert show(hospital.patel, consult)["status"] == "answered"

    on_time = sweep(ANSWERED_AT + timedelta(hours=72))
    assert on_time.closed == 1
    now = show(hospital.patel, consult)
    assert now["status"] == "closed"
    assert when(now["closed_at"]) == ANSWERED_AT + timedelta(hours=72)
    assert now["rating"] is None
    (closing,) = closings(hospital.patel, consult)
    assert closing["actor"] is None
    assert when(closing["at"]) == ANSWERED_AT + timedelta(hours=72)

    assert sweep(ANSWERED_AT + timedelta(hours=100)).closed == 0
    assert len(closings(hospital.patel, consult)) == 1


def test_a_followup_before_the_delay_prevents_the_automatic_close(
    hospital, new_consult, sweep
):
    consult = answered(hospital, new_consult, by=hospital.nguyen, at=ANSWERED_AT)
    act(hospital.patel, consult, "messages", ANSWERED_AT + timedelta(hours=71), body="And now?")  # fmt: skip
    second_answer = ANSWERED_AT + timedelta(hours=71, minutes=30)
    act(hospital.nguyen, consult, "answer", second_answer, body="Still nothing.")

    assert sweep(ANSWERED_AT + timedelta(hours=72)).closed == 0
    assert show(hospital.patel, consult)["status"] == "answered"
    assert closings(hospital.patel, consult) == []
    # the delay now runs from the latest answer
    assert sweep(second_answer + timedelta(hours=72, seconds=-1)).closed == 0
    assert sweep(second_answer + timedelta(hours=72)).closed == 1
    assert show(hospital.patel, consult)["status"] == "closed"


def test_an_unanswered_followup_is_never_closed_automatically(
    hospital, new_consult, sweep
):
    consult = answered(hospital, new_consult, by=hospital.nguyen, at=ANSWERED_AT)
    act(hospital.patel, consult, "messages", ANSWERED_AT + timedelta(hours=1), body="And now?")  # fmt: skip

    assert sweep(ANSWERED_AT + timedelta(hours=24 * 30)).closed == 0
    assert show(hospital.patel, consult)["status"] == "claimed"
    assert closings(hospital.patel, consult) == []


def test_the_automatic_close_delay_is_configurable(app, hospital, new_consult, sweep):
    app.config["AUTO_CLOSE_HOURS"] = 24
    consult = answered(hospital, new_consult, by=hospital.nguyen, at=ANSWERED_AT)

    assert sweep(ANSWERED_AT + timedelta(hours=24, seconds=-1)).closed == 0
    assert sweep(ANSWERED_AT + timedelta(hours=24)).closed == 1
    assert show(hospital.patel, consult)["status"] == "closed"


def test_a_consult_the_requester_closed_is_not_closed_again(
    hospital, new_consult, sweep
):
    consult = answered(hospital, new_consult, by=hospital.nguyen, at=ANSWERED_AT)
    act(hospital.patel, consult, "close", ANSWERED_AT + timedelta(hours=1), rating=5)

    assert sweep(ANSWERED_AT + timedelta(hours=72)).closed == 0
    (closing,) = closings(hospital.patel, consult)
    assert closing["actor"]["id"] == hospital.patel.user_id
    assert show(hospital.patel, consult)["rating"] == 5


# --- overdue ---------------------------------------------------------------------


def overdue_ids(caller, instant) -> list[int]:
    with clock.frozen_at(instant):
        response = caller.get("/api/consults?overdue=true")
    assert response.status_code == 200, response.json
    return [c["id"] for c in response.json]


def test_overdue_follows_the_deadline_that_applies_now(hospital, new_consult):
    consult = create(new_consult)
    on_time = create(new_consult, at=10)  # claim due at T0+25m

    def overdue(instant) -> bool:
        return show(hospital.patel, consult, instant)["overdue"]

    assert overdue(at(14, 59)) is False
    assert overdue_ids(hospital.patel, at(14, 59)) == []
    assert overdue(at(15, 1)) is True
    assert overdue_ids(hospital.patel, at(15, 1)) == [consult["id"]]
    assert show(hospital.patel, on_time, at(15, 1))["overdue"] is False

    act(hospital.nguyen, consult, "claim", at(16))  # now the answer deadline applies
    assert overdue(at(16)) is False
    assert overdue_ids(hospital.patel, at(16)) == []
    assert overdue(at(60, 1)) is True
    assert consult["id"] in overdue_ids(hospital.patel, at(60, 1))

    act(hospital.nguyen, consult, "answer", at(61), body="No collection.")
    assert overdue(at(61)) is False
    assert consult["id"] not in overdue_ids(hospital.patel, at(hours=5))
    assert on_time["id"] in overdue_ids(hospital.patel, at(hours=5))


def test_the_overdue_filter_is_what_the_consults_say(hospital, new_consult):
    consults = [create(new_consult, at=m) for m in (0, 5, 10)]

    with clock.frozen_at(at(22)):
        listing = hospital.patel.get("/api/consults").json
        not_overdue = hospital.patel.get("/api/consults?overdue=false").json

    flagged = sorted(c["id"] for c in listing if c["overdue"])
    assert flagged == sorted(c["id"] for c in consults[:2])
    assert sorted(overdue_ids(hospital.patel, at(22))) == flagged
    assert [c["id"] for c in not_overdue] == [consults[2]["id"]]


# --- the command line ------------------------------------------------------------


def test_sweep_at_a_time_without_an_offset_takes_it_as_utc(hospital, new_consult, app):
    consult = create(new_consult)

    result = app.test_cli_runner().invoke(args=["sweep", "--at", "2030-03-04T08:15:00"])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == [
        "Swept as of 2030-03-04T08:15:00+00:00: 1 escalation(s), 0 closed automatically.",
        f"  consult #{consult['id']} escalated to level 1",
    ]


def test_sweep_at_a_time_with_an_offset_means_that_instant(
    hospital, new_consult, sweep
):
    consult = create(new_consult)
    paris = timezone(timedelta(hours=1))

    assert sweep(at(14, 59).astimezone(paris)).escalated == []
    assert sweep(at(15).astimezone(paris)).escalated == [(consult["id"], 1)]
    assert escalations(hospital.patel, consult)[0][2] == at(15)


@pytest.mark.parametrize(
    "value", ["yesterday", "2030-02-30T08:00:00", "", "08:15 tomorrow"]
)
def test_sweep_refuses_a_bad_time_with_a_one_line_reason(
    hospital, new_consult, app, value
):
    consult = create(new_consult)

    result = app.test_cli_runner().invoke(args=["sweep", "--at", value])

    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), f"crashed: {result.exception!r}"
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "--at" in lines[0] or "time" in lines[0].lower(), lines[0]
    assert escalations(hospital.patel, consult) == []
