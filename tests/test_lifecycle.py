"""A consult's life through the HTTP API: claim, answer, follow-up, close, and the
ways it moves between people and departments; listings, the caller, departments.

Time is frozen with `broker.clock.frozen_at` so deadlines and timestamps are exact.
"""

import json
from datetime import timedelta

from helpers import (
    act,
    answered,
    at,
    claimed,
    create,
    instant,
    last_event,
    show,
    steps,
    user,
    when,
)

from broker import clock

CONSULT_KEYS = {
    "id", "department", "urgency", "status", "requester", "owner", "handoff",
    "patient_ref", "question", "study_ref", "created_at", "routed_at",
    "claimed_at", "answered_at", "closed_at", "claim_due_at", "answer_due_at",
    "escalation_level", "overdue", "rating",
}  # fmt: skip
OPTIONAL_KEYS = {"updated_at", "version"}
TIME_KEYS = [
    "created_at", "routed_at", "claimed_at", "answered_at", "closed_at",
    "claim_due_at", "answer_due_at",
]  # fmt: skip


def listing(caller, query="", at=0) -> list[int]:
    with clock.frozen_at(instant(at)):
        response = caller.get(f"/api/consults{query}")
    assert response.status_code == 200, response.json
    return sorted(c["id"] for c in response.json)


# --- the happy path -------------------------------------------------------------


def test_a_new_stat_consult_has_its_deadlines_from_creation(new_consult):
    consult = create(new_consult, urgency="stat")
    assert consult["status"] == "pending"
    assert consult["owner"] is None
    assert when(consult["created_at"]) == when(consult["routed_at"]) == at(0)
    assert when(consult["claim_due_at"]) == at(15)
    assert when(consult["answer_due_at"]) == at(60)
    assert consult["claimed_at"] is None
    assert consult["answered_at"] is None
    assert consult["closed_at"] is None


def test_claim_makes_the_claimer_the_owner(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    assert consult["status"] == "claimed"
    assert consult["owner"] == user(hospital.castillo)
    assert when(consult["claimed_at"]) == at(5)


def test_claiming_a_claimed_consult_is_a_conflict(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    act(hospital.nguyen, consult, "claim", at=6, expect=409)
    assert show(hospital.nguyen, consult)["owner"] == user(hospital.castillo)


def test_the_owners_answer_marks_the_consult_answered(hospital, new_consult):
    consult = answered(hospital, new_consult)
    assert consult["status"] == "answered"
    assert consult["owner"] == user(hospital.castillo)
    assert when(consult["answered_at"]) == at(20)


def test_a_followup_returns_the_consult_to_the_same_owner_with_a_new_deadline(
    hospital, new_consult
):
    first = answered(hospital, new_consult)
    consult = act(hospital.patel, first, "messages", at=30, body="And the flank?")
    assert consult["status"] == "claimed"
    assert consult["owner"] == user(hospital.castillo)
    assert when(consult["answer_due_at"]) == at(30 + 60)
    assert when(consult["answer_due_at"]) > when(first["answer_due_at"])
    assert last_event(consult)["kind"] == "followup"


def test_the_owner_answers_the_followup(hospital, new_consult):
    consult = answered(hospital, new_consult)
    act(hospital.patel, consult, "messages", at=30, body="And the flank?")
    consult = act(hospital.castillo, consult, "answer", at=40, body="Flank clear.")
    assert consult["status"] == "answered"
    assert when(consult["answered_at"]) == at(40)


def test_the_requester_closes_with_a_rating_and_comment(hospital, new_consult):
    consult = answered(hospital, new_consult)
    consult = act(hospital.patel, consult, "close", at=50, rating=5, comment="Quick")
    assert consult["status"] == "closed"
    assert consult["rating"] == 5
    assert when(consult["closed_at"]) == at(50)
    assert last_event(consult)["body"] == "Quick"


def test_the_whole_happy_path_is_on_the_timeline_in_order(hospital, new_consult):
    patel, castillo = hospital.patel, hospital.castillo
    consult = create(new_consult)
    act(castillo, consult, "claim", at=5)
    act(castillo, consult, "answer", at=20, body="No collection.")
    act(patel, consult, "messages", at=30, body="And the flank?")
    act(castillo, consult, "answer", at=40, body="Flank clear.")
    act(patel, consult, "close", at=50, rating=4, comment="Thanks")

    consult = show(patel, consult)
    assert steps(consult) == [
        ("created", patel.user_id, None),
        ("claimed", castillo.user_id, None),
        ("answered", castillo.user_id, "No collection."),
        ("followup", patel.user_id, "And the flank?"),
        ("answered", castillo.user_id, "Flank clear."),
        ("closed", patel.user_id, "Thanks"),
    ]
    assert [when(e["at"]) for e in consult["timeline"]] == [
        at(m) for m in (0, 5, 20, 30, 40, 50)
    ]
    assert consult["timeline"][0]["actor"] == user(patel)
    assert consult["status"] == "closed"
    assert consult["owner"] == user(castillo)
    assert consult["rating"] == 4
    assert when(consult["claimed_at"]) == at(5)
    assert when(consult["answered_at"]) == at(40)
    assert when(consult["closed_at"]) == at(50)


def test_answering_a_closed_consult_is_a_conflict(hospital, new_consult):
    consult = answered(hospital, new_consult)
    act(hospital.patel, consult, "close", at=50)
    act(hospital.castillo, consult, "answer", at=55, body="More", expect=409)


def test_only_the_requester_or_an_admin_closes(hospital, new_consult):
    consult = answered(hospital, new_consult)
    act(hospital.castillo, consult, "close", at=50, expect=403)
    assert act(hospital.admin, consult, "close", at=51)["status"] == "closed"


def test_a_rating_outside_one_to_five_is_invalid(hospital, new_consult):
    consult = answered(hospital, new_consult)
    response = hospital.patel.post(
        f"/api/consults/{consult['id']}/close", json={"rating": 6}
    )
    assert response.status_code == 422
    assert "rating" in response.json["errors"]


# --- release, assign ------------------------------------------------------------


def test_release_with_a_reason_returns_it_to_the_queue_with_deadlines_unchanged(
    hospital, new_consult
):
    before = claimed(hospital, new_consult)
    consult = act(hospital.castillo, before, "release", at=10, reason="Into theatre")
    assert consult["status"] == "pending"
    assert consult["owner"] is None
    assert consult["claim_due_at"] == before["claim_due_at"]
    assert consult["answer_due_at"] == before["answer_due_at"]
    assert steps(consult)[-1] == ("released", hospital.castillo.user_id, "Into theatre")


def test_release_without_a_reason_is_invalid(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    response = hospital.castillo.post(f"/api/consults/{consult['id']}/release")
    assert response.status_code == 422
    assert "reason" in response.json["errors"]
    assert show(hospital.castillo, consult)["owner"] == user(hospital.castillo)


def test_only_the_owner_may_release(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    act(hospital.nguyen, consult, "release", at=10, reason="Not mine", expect=403)
    assert show(hospital.castillo, consult)["owner"] == user(hospital.castillo)


def test_the_chief_assigns_a_pending_consult(hospital, new_consult):
    consult = create(new_consult)
    consult = act(
        hospital.okafor, consult, "assign", at=7, user_id=hospital.nguyen.user_id
    )
    assert consult["status"] == "claimed"
    assert consult["owner"] == user(hospital.nguyen)
    assert when(consult["claimed_at"]) == at(7)
    event = last_event(consult)
    assert event["kind"] == "assigned"
    assert event["actor"] == user(hospital.okafor)
    assert event["subject"] == user(hospital.nguyen)


def test_an_admin_assigns_a_pending_consult(hospital, new_consult):
    consult = create(new_consult)
    consult = act(hospital.admin, consult, "assign", user_id=hospital.castillo.user_id)
    assert consult["status"] == "claimed"
    assert consult["owner"] == user(hospital.castillo)
    assert last_event(consult)["actor"] == user(hospital.admin)


def test_the_chief_reassigns_a_claimed_consult(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    consult = act(
        hospital.okafor, consult, "assign", at=10, user_id=hospital.nguyen.user_id
    )
    assert consult["status"] == "claimed"
    assert consult["owner"] == user(hospital.nguyen)
    event = last_event(consult)
    assert (event["kind"], event["subject"]) == ("assigned", user(hospital.nguyen))


def test_a_member_who_is_not_chief_cannot_assign(hospital, new_consult):
    consult = create(new_consult)
    act(
        hospital.castillo,
        consult,
        "assign",
        user_id=hospital.nguyen.user_id,
        expect=403,
    )
    assert show(hospital.castillo, consult)["owner"] is None


def test_assigning_to_someone_outside_the_department_is_invalid(hospital, new_consult):
    consult = create(new_consult)
    response = hospital.okafor.post(
        f"/api/consults/{consult['id']}/assign", json={"user_id": hospital.lee.user_id}
    )
    assert response.status_code == 422
    assert "user_id" in response.json["errors"]


# --- redirect -------------------------------------------------------------------


def redirected(hospital, new_consult, urgency="urgent") -> dict:
    """Claimed by castillo at minute 5, redirected to cardiology at minute 10."""
    consult = claimed(hospital, new_consult, urgency=urgency)
    return act(
        hospital.castillo,
        consult,
        "redirect",
        at=10,
        department="cardiology",
        reason="This is a cardiac question",
    )


def test_redirect_moves_the_consult_to_the_other_departments_queue(
    hospital, new_consult
):
    consult = redirected(hospital, new_consult, urgency="urgent")
    assert consult["department"] == "cardiology"
    assert consult["status"] == "pending"
    assert consult["owner"] is None
    assert when(consult["created_at"]) == at(0)
    assert when(consult["routed_at"]) == at(10)
    assert when(consult["claim_due_at"]) == at(10 + 60)
    assert when(consult["answer_due_at"]) == at(10 + 240)


def test_redirect_is_on_the_timeline_with_its_route(hospital, new_consult):
    consult = redirected(hospital, new_consult)
    event = last_event(consult)
    assert event["kind"] == "redirected"
    assert event["actor"] == user(hospital.castillo)
    assert event["body"] == "This is a cardiac question"
    assert event["detail"] == "radiology → cardiology"


def test_after_a_redirect_the_requester_and_the_new_department_see_it(
    hospital, new_consult
):
    consult = redirected(hospital, new_consult)
    assert show(hospital.patel, consult)["department"] == "cardiology"
    assert act(hospital.lee, consult, "claim", at=15)["owner"] == user(hospital.lee)
    show(hospital.castillo, consult, expect=404)
    assert consult["id"] not in listing(hospital.castillo)


def test_only_a_department_member_may_redirect(hospital, new_consult):
    consult = create(new_consult)
    act(
        hospital.patel,
        consult,
        "redirect",
        department="cardiology",
        reason="Wrong place",
        expect=403,
    )
    assert show(hospital.patel, consult)["department"] == "radiology"


# --- messages, cancel -----------------------------------------------------------


def test_the_requesters_message_on_a_pending_consult_is_a_message(
    hospital, new_consult
):
    consult = create(new_consult)
    consult = act(hospital.patel, consult, "messages", at=2, body="Patient is septic")
    assert consult["status"] == "pending"
    assert steps(consult)[-1] == (
        "message",
        hospital.patel.user_id,
        "Patient is septic",
    )


def test_the_owners_message_is_a_message(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    consult = act(hospital.castillo, consult, "messages", at=8, body="Reading it now")
    assert steps(consult)[-1] == (
        "message",
        hospital.castillo.user_id,
        "Reading it now",
    )


def test_a_covering_colleagues_message_is_a_note(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    consult = act(hospital.nguyen, consult, "messages", at=8, body="Castillo is on it")
    assert steps(consult)[-1] == ("note", hospital.nguyen.user_id, "Castillo is on it")
    assert consult["status"] == "claimed"
    assert consult["owner"] == user(hospital.castillo)


def test_someone_who_cannot_see_the_consult_cannot_write_to_it(hospital, new_consult):
    consult = create(new_consult)
    act(hospital.outsider, consult, "messages", body="Hello", expect=404)
    act(hospital.lee, consult, "messages", body="Hello", expect=404)
    assert [k for k, _, _ in steps(show(hospital.patel, consult))] == ["created"]


def test_the_requester_cancels_with_a_reason(hospital, new_consult):
    consult = claimed(hospital, new_consult)
    consult = act(hospital.patel, consult, "cancel", at=9, reason="Patient discharged")
    assert consult["status"] == "cancelled"
    assert steps(consult)[-1] == (
        "cancelled",
        hospital.patel.user_id,
        "Patient discharged",
    )
    act(hospital.castillo, consult, "answer", at=10, body="Too late", expect=409)


def test_cancel_needs_a_reason_and_the_requester(hospital, new_consult):
    consult = create(new_consult)
    response = hospital.patel.post(f"/api/consults/{consult['id']}/cancel")
    assert response.status_code == 422
    assert "reason" in response.json["errors"]
    act(hospital.castillo, consult, "cancel", reason="Not needed", expect=403)
    assert show(hospital.patel, consult)["status"] == "pending"


def test_a_closed_consult_cannot_be_cancelled(hospital, new_consult):
    consult = answered(hospital, new_consult)
    act(hospital.patel, consult, "close", at=50)
    act(hospital.patel, consult, "cancel", at=51, reason="Oops", expect=409)
    assert show(hospital.patel, consult)["status"] == "closed"


def test_the_requesters_message_on_a_claimed_consult_is_not_a_followup(
    hospital, new_consult
):
    before = claimed(hospital, new_consult)
    consult = act(hospital.patel, before, "messages", at=8, body="Any news?")
    assert consult["status"] == "claimed"
    assert consult["answer_due_at"] == before["answer_due_at"]
    assert steps(consult)[-1] == ("message", hospital.patel.user_id, "Any news?")


# --- listings -------------------------------------------------------------------


def scene(hospital, new_consult) -> dict:
    """Four consults: two pending, one claimed in radiology, one in cardiology."""
    pending = create(new_consult, at=0)
    mine = claimed(hospital, new_consult)
    by_lee = create(new_consult, at=1, by=hospital.lee)
    cardiac = create(new_consult, at=2, department="cardiology")
    return {"pending": pending, "claimed": mine, "by_lee": by_lee, "cardiac": cardiac}


def ids(*consults) -> list[int]:
    return sorted(c["id"] for c in consults)


def test_listing_filters_by_department_and_status(hospital, new_consult):
    s = scene(hospital, new_consult)
    assert listing(hospital.patel, "?department=cardiology") == ids(s["cardiac"])
    assert listing(hospital.castillo, "?status=claimed") == ids(s["claimed"])
    assert listing(hospital.castillo, "?department=radiology&status=pending") == ids(
        s["pending"], s["by_lee"]
    )


def test_listing_filters_by_owner_and_requester(hospital, new_consult):
    s = scene(hospital, new_consult)
    assert listing(hospital.castillo, "?owner=me") == ids(s["claimed"])
    assert listing(hospital.nguyen, "?owner=me") == []
    assert listing(hospital.lee, "?requester=me") == ids(s["by_lee"])


def test_listing_filters_by_overdue(hospital, new_consult):
    s = scene(hospital, new_consult)
    # At minute 30 the pending stat consults are past claim_due_at (15 minutes);
    # the claimed one is within its answer deadline (60 minutes).
    assert listing(hospital.admin, "?overdue=true", at=30) == ids(
        s["pending"], s["by_lee"], s["cardiac"]
    )
    assert listing(hospital.admin, "?overdue=false", at=30) == ids(s["claimed"])
    assert listing(hospital.admin, "?overdue=true", at=10) == []


def test_an_unknown_status_filter_is_invalid(hospital):
    response = hospital.castillo.get("/api/consults?status=lost")
    assert response.status_code == 422
    assert "status" in response.json["errors"]


def test_listing_is_newest_first_and_by_id_within_an_instant(hospital, new_consult):
    """GET /api/consults says "newest first": by created_at, the later id first on a tie."""
    minutes = [30, 0, 90, 30, 60]  # ids 1..5, made in this order at these minutes
    ids = [create(new_consult, at=m)["id"] for m in minutes]
    with clock.frozen_at(at(100)):
        response = hospital.admin.get("/api/consults")
    assert response.status_code == 200, response.json
    assert [c["id"] for c in response.json] == [
        ids[2],
        ids[4],
        ids[3],
        ids[0],
        ids[1],
    ]


def test_listing_is_paginated(hospital, new_consult):
    created = ids(*(create(new_consult, at=n) for n in range(5)))
    pages = []
    for page in (1, 2, 3):
        response = hospital.patel.get(f"/api/consults?page={page}&page_size=2")
        assert response.status_code == 200
        pages.append([c["id"] for c in response.json])
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(sum(pages, [])) == created
    header = json.loads(response.headers["X-Pagination"])
    assert header["page"] == 3
    assert header["previous_page"] == 2
    assert "next_page" not in header


def test_each_caller_lists_what_they_may_see(hospital, new_consult):
    s = scene(hospital, new_consult)
    assert listing(hospital.patel) == ids(s["pending"], s["claimed"], s["cardiac"])
    assert listing(hospital.castillo) == ids(s["pending"], s["claimed"], s["by_lee"])
    assert listing(hospital.lee) == ids(s["by_lee"], s["cardiac"])
    assert listing(hospital.admin) == ids(*s.values())
    assert listing(hospital.outsider) == []


def test_a_consult_the_caller_may_not_see_is_not_found(hospital, new_consult):
    consult = create(new_consult)
    show(hospital.outsider, consult, expect=404)
    show(hospital.lee, consult, expect=404)
    act(hospital.lee, consult, "claim", expect=404)
    assert hospital.patel.get("/api/consults/99999").status_code == 404


def test_the_api_needs_a_signed_in_caller(hospital):
    response = hospital.patel.client.get("/api/consults")
    assert response.status_code == 401
    assert response.json["message"]


# --- the caller, departments ----------------------------------------------------


def test_me_describes_a_chief(hospital):
    me = hospital.okafor.get("/api/me").json
    assert {k: me[k] for k in ("id", "name", "email")} == user(hospital.okafor)
    assert me["departments"] == ["radiology"]
    assert me["chief_of"] == ["radiology"]
    assert {"requester", "consultant", "chief"} <= set(me["roles"])
    assert "admin" not in me["roles"]


def test_me_describes_a_requester_and_an_admin(hospital):
    patel = hospital.patel.get("/api/me").json
    assert patel["departments"] == []
    assert patel["chief_of"] == []
    assert patel["roles"] == ["requester"]
    castillo = hospital.castillo.get("/api/me").json
    assert "consultant" in castillo["roles"]
    assert "chief" not in castillo["roles"]
    assert "admin" in hospital.admin.get("/api/me").json["roles"]


def test_departments_come_with_the_default_policy(hospital):
    response = hospital.outsider.get("/api/departments")
    assert response.status_code == 200
    by_slug = {d["slug"]: d for d in response.json}
    assert set(by_slug) == {"radiology", "cardiology"}
    expected = {"stat": (15, 60), "urgent": (60, 240), "routine": (480, 2880)}
    for department in by_slug.values():
        policy = department["policy"]
        assert {
            urgency: (p["claim_minutes"], p["answer_minutes"])
            for urgency, p in policy.items()
        } == expected


# --- shape, time ----------------------------------------------------------------


def test_the_consult_has_exactly_the_spec_keys(hospital, new_consult):
    created = create(new_consult)
    listed = hospital.patel.get("/api/consults").json[0]
    detail = show(hospital.patel, created)
    assert set(created) - OPTIONAL_KEYS == CONSULT_KEYS
    assert set(listed) - OPTIONAL_KEYS == CONSULT_KEYS
    assert set(detail) - OPTIONAL_KEYS == CONSULT_KEYS | {"timeline"}
    assert {"kind", "actor", "at", "body"} <= set(detail["timeline"][0])
    assert detail["requester"] == user(hospital.patel)
    assert detail["study_ref"] == "ACC-1"


def test_times_are_iso_8601_in_utc_with_an_offset(hospital, new_consult):
    consult = answered(hospital, new_consult)
    act(hospital.patel, consult, "close", at=50, rating=3)
    consult = show(hospital.patel, consult)
    stamps = [consult[k] for k in TIME_KEYS] + [e["at"] for e in consult["timeline"]]
    for stamp in stamps:
        assert when(stamp).utcoffset() == timedelta(0), stamp


def test_a_pending_consult_becomes_overdue_when_claim_due_at_passes(
    hospital, new_consult
):
    consult = create(new_consult, urgency="stat")
    assert show(hospital.castillo, consult, at=14)["overdue"] is False
    assert show(hospital.castillo, consult, at=16)["overdue"] is True


def test_a_claimed_consult_becomes_overdue_when_answer_due_at_passes(
    hospital, new_consult
):
    consult = claimed(hospital, new_consult, urgency="stat")
    assert show(hospital.castillo, consult, at=59)["overdue"] is False
    assert show(hospital.castillo, consult, at=61)["overdue"] is True
    act(hospital.castillo, consult, "answer", at=62, body="Late but here")
    assert show(hospital.castillo, consult, at=63)["overdue"] is False
