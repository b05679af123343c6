"""Races on one consult, fought over HTTP against a real threaded server process.

The spec's heart is "exactly one accountable owner". When many people act on
the same pending consult at the same instant, exactly one action may win; every
other one must be refused with 409 and leave no trace on the timeline. The
consults are made through the test client; the racing requests go to the real
server (`live_server_process`), which shares the test database. On SQLite the
writers queue on the database lock; on PostgreSQL (TEST_DATABASE_URL) they race
on the row, and the consult's version column decides.
"""

import requests
from helpers import fire_together

CLAIMERS = 20
ROUNDS = 8
TIMEOUT = 60  # seconds; generous, only there so that a hang fails instead of blocking


def post_to(server, caller, path, json=None):
    """A callable that POSTs to the real server as `caller` and returns the response."""

    def call():
        return requests.post(
            server.url + path, json=json or {}, headers=caller.headers, timeout=TIMEOUT
        )

    return call


def claim_against_assign(server, hospital, base, to):
    """Castillo's claim and Okafor's assign to `to`, sent at once: their responses."""
    return fire_together(
        [
            post_to(server, hospital.castillo, base + "/claim"),
            post_to(server, hospital.okafor, base + "/assign", {"user_id": to.user_id}),
        ]
    )


def kinds(consult, *wanted):
    return [event["kind"] for event in consult["timeline"] if event["kind"] in wanted]


def describe(responses):
    return [(r.status_code, r.text[:200]) for r in responses]


def test_twenty_simultaneous_claims_give_the_consult_exactly_one_owner(
    hospital, make_caller, new_consult, live_server_process
):
    claimers = [
        make_caller(
            f"radiologist{n}@h.test", f"Dr Radiologist {n}", {"radiology": False}
        )
        for n in range(CLAIMERS)
    ]
    consult = new_consult()
    path = f"/api/consults/{consult['id']}/claim"

    responses = fire_together(
        [post_to(live_server_process, claimer, path) for claimer in claimers]
    )

    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * (CLAIMERS - 1), describe(responses)
    (winner,) = [c for c, r in zip(claimers, responses, strict=True) if r.ok]
    winning = next(r for r in responses if r.ok).json()
    assert winning["status"] == "claimed"
    assert winning["owner"]["id"] == winner.user_id
    for refused in (r for r in responses if r.status_code == 409):
        assert refused.json()["code"] == 409
        assert refused.json()["message"]  # a readable reason, whichever way it lost

    after = hospital.okafor.get(f"/api/consults/{consult['id']}").json
    assert after["status"] == "claimed"
    assert after["owner"]["id"] == winner.user_id
    claims = [e for e in after["timeline"] if e["kind"] == "claimed"]
    assert len(claims) == 1
    assert claims[0]["actor"]["id"] == winner.user_id
    assert [e["kind"] for e in after["timeline"]] == ["created", "claimed"]


def test_a_claim_racing_the_chiefs_assign_to_the_same_radiologist_lets_exactly_one_win(
    hospital, new_consult, live_server_process
):
    """Okafor assigns the consult to Castillo at the instant Castillo claims it.

    Whatever the interleaving (claim first, assign first, or both reading the
    pending consult and racing to write) one action wins and the other is a
    409: Castillo cannot be given a consult he already owns.
    """
    server = live_server_process
    winners = set()
    for _ in range(ROUNDS):
        consult = new_consult()
        base = f"/api/consults/{consult['id']}"
        claim, assign = claim_against_assign(server, hospital, base, hospital.castillo)

        assert sorted([claim.status_code, assign.status_code]) == [200, 409], describe(
            [claim, assign]
        )
        after = hospital.okafor.get(base).json
        assert after["status"] == "claimed"
        assert after["owner"]["id"] == hospital.castillo.user_id
        won = "claimed" if claim.ok else "assigned"
        assert kinds(after, "claimed", "assigned") == [won]
        winners.add(won)
    # Not asserted: which side wins is up to the scheduler. Recorded for -v runs.
    print(f"winners over {ROUNDS} rounds: {sorted(winners)}")


def test_a_claim_racing_the_chiefs_assign_to_a_colleague_loses_no_update(
    hospital, new_consult, live_server_process
):
    """Castillo claims while Okafor assigns the same pending consult to Nguyen.

    A chief may reassign a claimed consult, so if the claim commits before the
    assign reads the consult, both succeed: the timeline then shows the claim
    and an assignment *from Castillo*. What must never happen is a lost update:
    both answered 200 while the timeline (or the owner) shows only one of them.
    """
    server = live_server_process
    for _ in range(ROUNDS):
        consult = new_consult()
        base = f"/api/consults/{consult['id']}"
        claim, assign = claim_against_assign(server, hospital, base, hospital.nguyen)

        codes = (claim.status_code, assign.status_code)
        assert codes in {(200, 409), (409, 200), (200, 200)}, describe([claim, assign])
        after = hospital.okafor.get(base).json
        events = [e for e in after["timeline"] if e["kind"] in ("claimed", "assigned")]
        if codes == (200, 200):
            assert [e["kind"] for e in events] == ["claimed", "assigned"]
            assert events[1]["detail"] == "from Dr Castillo"
            assert after["owner"]["id"] == hospital.nguyen.user_id
        elif claim.ok:
            assert [e["kind"] for e in events] == ["claimed"]
            assert after["owner"]["id"] == hospital.castillo.user_id
        else:
            assert [e["kind"] for e in events] == ["assigned"]
            assert after["owner"]["id"] == hospital.nguyen.user_id
