""" "I'm just covering": only the owner answers, and ownership moves only by a
handoff the receiver accepts (SPEC.md ownership rules 1-3)."""

from helpers import act, answered, at, claimed, last_event, post, show, user, when

from broker import clock


def offer(hospital, consult, to, at=10, note="Going off shift") -> dict:
    """Castillo (the owner) offers the consult to `to`."""
    return act(
        hospital.castillo, consult, "handoff", at=at, to_user_id=to.user_id, note=note
    )


# --- covering is not owning -----------------------------------------------------


def test_a_covering_colleague_cannot_answer(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    act(hospital.nguyen, consult, "answer", body="Looks fine", expect=403)
    consult = show(hospital.patel, consult)
    assert consult["status"] == "claimed"
    assert consult["owner"] == user(hospital.castillo)
    assert "answered" not in [e["kind"] for e in consult["timeline"]]


def test_the_chief_who_is_not_owner_cannot_answer_either(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    act(hospital.okafor, consult, "answer", body="Looks fine", expect=403)
    assert show(hospital.patel, consult)["status"] == "claimed"


def test_a_covering_colleague_cannot_close(hospital, new_consult):
    consult = answered(hospital, new_consult)
    act(hospital.nguyen, consult, "close", rating=5, expect=403)
    assert show(hospital.patel, consult)["status"] == "answered"


def test_even_the_owner_cannot_close(hospital, new_consult):
    consult = answered(hospital, new_consult)
    act(hospital.castillo, consult, "close", expect=403)
    assert show(hospital.patel, consult)["status"] == "answered"


def test_a_covering_colleague_cannot_claim_an_owned_consult(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    act(hospital.nguyen, consult, "claim", expect=409)
    assert show(hospital.patel, consult)["owner"] == user(hospital.castillo)


# --- the offer ------------------------------------------------------------------


def test_an_offer_changes_nothing_until_accepted(hospital, new_consult):
    before = claimed(hospital, new_consult)
    consult = offer(hospital, before, hospital.nguyen, at=10, note="Off at 6")
    assert consult["owner"] == user(hospital.castillo)
    assert consult["status"] == "claimed"
    assert consult["claim_due_at"] == before["claim_due_at"]
    assert consult["answer_due_at"] == before["answer_due_at"]
    assert consult["handoff"]["to"] == user(hospital.nguyen)
    assert consult["handoff"]["note"] == "Off at 6"
    assert when(consult["handoff"]["offered_at"]) == at(10)


def test_an_offer_is_on_the_timeline(hospital, new_consult):
    consult = offer(hospital, claimed(hospital, new_consult), hospital.nguyen)
    event = last_event(consult)
    assert event["kind"] == "handoff_offered"
    assert event["actor"] == user(hospital.castillo)
    assert event["body"] == "Going off shift"
    assert event["subject"] == user(hospital.nguyen)


def test_the_offered_colleague_cannot_answer_before_accepting(hospital, new_consult):
    consult = offer(hospital, claimed(hospital, new_consult), hospital.nguyen)
    act(hospital.nguyen, consult, "answer", body="Fine", expect=403)
    assert show(hospital.patel, consult)["status"] == "claimed"


def test_deadlines_keep_running_while_an_offer_is_open(hospital, new_consult):
    consult = offer(hospital, claimed(hospital, new_consult), hospital.nguyen)
    consult = show(hospital.patel, consult, at=61)
    assert consult["overdue"] is True
    assert consult["owner"] == user(hospital.castillo)


def test_only_the_owner_may_offer_a_handoff(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    act(
        hospital.nguyen,
        consult,
        "handoff",
        to_user_id=hospital.okafor.user_id,
        note="Take it",
        expect=403,
    )
    assert show(hospital.patel, consult)["handoff"] is None


def test_a_pending_consult_cannot_be_handed_off(hospital, new_consult):
    with clock.frozen_at(at(0)):
        consult = new_consult()
    response = post(
        hospital.castillo, consult, "handoff", to_user_id=hospital.nguyen.user_id,
        note="Yours",
    )  # fmt: skip
    assert response.status_code == 409
    assert show(hospital.patel, consult)["handoff"] is None


def test_a_handoff_outside_the_department_names_to_user_id(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    for stranger in (hospital.lee, hospital.patel):
        response = post(
            hospital.castillo, consult, "handoff", to_user_id=stranger.user_id,
            note="Yours",
        )  # fmt: skip
        assert response.status_code == 422
        assert "to_user_id" in response.json["errors"]
    assert show(hospital.patel, consult)["handoff"] is None


def test_a_handoff_to_an_unknown_user_names_to_user_id(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    response = post(hospital.castillo, consult, "handoff", to_user_id=9999, note="x")
    assert response.status_code == 422
    assert "to_user_id" in response.json["errors"]


def test_a_handoff_to_yourself_is_invalid(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    response = post(
        hospital.castillo, consult, "handoff", to_user_id=hospital.castillo.user_id,
        note="Me",
    )  # fmt: skip
    assert response.status_code == 422
    assert "to_user_id" in response.json["errors"]
    assert show(hospital.patel, consult)["handoff"] is None


def test_a_handoff_needs_a_note(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    response = post(
        hospital.castillo, consult, "handoff", to_user_id=hospital.nguyen.user_id
    )
    assert response.status_code == 422
    assert "note" in response.json["errors"]


def test_a_new_offer_replaces_an_open_offer(hospital, new_consult):
    consult = offer(hospital, claimed(hospital, new_consult), hospital.nguyen)
    consult = offer(hospital, consult, hospital.okafor, at=12, note="Chief instead")
    assert consult["handoff"]["to"] == user(hospital.okafor)
    assert consult["handoff"]["note"] == "Chief instead"
    act(hospital.nguyen, consult, "handoff/accept", expect=403)
    consult = act(hospital.okafor, consult, "handoff/accept", at=14)
    assert consult["owner"] == user(hospital.okafor)


# --- accept, decline ------------------------------------------------------------


def test_accepting_makes_the_colleague_the_owner(hospital, new_consult):
    before = offer(hospital, claimed(hospital, new_consult), hospital.nguyen)
    consult = act(hospital.nguyen, before, "handoff/accept", at=15)
    assert consult["owner"] == user(hospital.nguyen)
    assert consult["status"] == "claimed"
    assert consult["handoff"] is None
    assert consult["answer_due_at"] == before["answer_due_at"]
    event = last_event(consult)
    assert event["kind"] == "handoff_accepted"
    assert event["actor"] == user(hospital.nguyen)
    assert event["subject"] == user(hospital.castillo)


def test_after_accepting_only_the_new_owner_answers(hospital, new_consult):
    consult = offer(hospital, claimed(hospital, new_consult), hospital.nguyen)
    act(hospital.nguyen, consult, "handoff/accept", at=15)
    act(hospital.castillo, consult, "answer", at=16, body="Mine", expect=403)
    consult = act(hospital.nguyen, consult, "answer", at=17, body="Clear")
    assert consult["status"] == "answered"
    assert last_event(consult)["actor"] == user(hospital.nguyen)


def test_declining_needs_a_reason(hospital, new_consult):
    consult = offer(hospital, claimed(hospital, new_consult), hospital.nguyen)
    response = post(hospital.nguyen, consult, "handoff/decline")
    assert response.status_code == 422
    assert "reason" in response.json["errors"]
    assert show(hospital.patel, consult)["handoff"]["to"] == user(hospital.nguyen)


def test_declining_leaves_the_owner_and_clears_the_offer(hospital, new_consult):
    consult = offer(hospital, claimed(hospital, new_consult), hospital.nguyen)
    consult = act(hospital.nguyen, consult, "handoff/decline", at=15, reason="In CT")
    assert consult["owner"] == user(hospital.castillo)
    assert consult["status"] == "claimed"
    assert consult["handoff"] is None
    event = last_event(consult)
    assert (event["kind"], event["actor"], event["body"]) == (
        "handoff_declined",
        user(hospital.nguyen),
        "In CT",
    )
    act(hospital.nguyen, consult, "answer", body="Fine", expect=403)
    act(hospital.castillo, consult, "answer", at=16, body="Clear")


def test_only_the_offered_colleague_may_accept_or_decline(hospital, new_consult):
    consult = offer(hospital, claimed(hospital, new_consult), hospital.nguyen)
    for other in (hospital.okafor, hospital.castillo):
        act(other, consult, "handoff/accept", expect=403)
        act(other, consult, "handoff/decline", reason="No", expect=403)
    consult = show(hospital.patel, consult)
    assert consult["owner"] == user(hospital.castillo)
    assert consult["handoff"]["to"] == user(hospital.nguyen)


def test_accepting_when_nothing_is_on_offer_is_a_conflict(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    act(hospital.nguyen, consult, "handoff/accept", expect=409)
    assert show(hospital.patel, consult)["owner"] == user(hospital.castillo)


# --- handoffs and follow-ups ----------------------------------------------------


def test_an_answered_consult_may_be_handed_off_and_a_followup_goes_to_the_new_owner(
    hospital, new_consult
):
    consult = offer(hospital, answered(hospital, new_consult), hospital.nguyen, at=25)
    assert consult["status"] == "answered"
    act(hospital.nguyen, consult, "handoff/accept", at=26)
    consult = act(hospital.patel, consult, "messages", at=30, body="And the flank?")
    assert consult["status"] == "claimed"
    assert consult["owner"] == user(hospital.nguyen)
    act(hospital.castillo, consult, "answer", at=31, body="Clear", expect=403)
    assert act(hospital.nguyen, consult, "answer", at=32, body="Clear")["status"] == (
        "answered"
    )


def test_a_followup_returns_to_the_original_owner_despite_covering_notes(
    hospital, new_consult
):
    consult = answered(hospital, new_consult)
    act(hospital.nguyen, consult, "messages", at=22, body="Covering for Castillo")
    act(hospital.nguyen, consult, "claim", at=23, expect=409)
    consult = act(hospital.patel, consult, "messages", at=30, body="And the flank?")
    assert consult["status"] == "claimed"
    assert consult["owner"] == user(hospital.castillo)
    assert [e["kind"] for e in consult["timeline"]][-2:] == ["note", "followup"]
    act(hospital.nguyen, consult, "answer", at=31, body="Clear", expect=403)


def test_an_open_offer_survives_a_followup(hospital, new_consult):
    consult = offer(hospital, answered(hospital, new_consult), hospital.nguyen, at=25)
    consult = act(hospital.patel, consult, "messages", at=30, body="And the flank?")
    assert consult["owner"] == user(hospital.castillo)
    assert consult["handoff"]["to"] == user(hospital.nguyen)


# --- an assignment by the chief -----------------------------------------------------


def test_an_assign_by_the_chief_withdraws_an_open_offer(hospital, new_consult):
    consult = offer(hospital, claimed(hospital, new_consult), hospital.nguyen)
    assert consult["handoff"]["to"] == user(hospital.nguyen)

    act(hospital.okafor, consult, "assign", at=12, user_id=hospital.okafor.user_id)

    consult = show(hospital.patel, consult, at=13)
    assert consult["handoff"] is None
    assert consult["owner"] == user(hospital.okafor)
    act(hospital.nguyen, consult, "handoff/accept", at=14, expect=409)
    act(hospital.nguyen, consult, "handoff/decline", at=14, reason="No.", expect=409)
    after = show(hospital.patel, consult, at=15)
    assert after["owner"] == user(hospital.okafor)
    assert after["timeline"] == consult["timeline"]
