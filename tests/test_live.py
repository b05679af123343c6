"""Live updates, seen by real python-socketio clients of a real server process.

Every client here is a `socketio.Client` on the websocket transport, connected
to `live_server_process` (a real `flask run --with-threads` on the test
database) as one of the hospital's people. Actions go through that server's
HTTP API, so the pushes come from the process the clients are connected to.
Waits are bounded by generous limits and end as soon as the awaited event
arrives; a check that something did NOT arrive is made only after an event
that was pushed later has arrived on the same connection (a connection
receives the pushes in the order of the commits).
"""

import os
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import requests
from conftest import NEW_CONSULT
from helpers import (
    WAIT,
    Screen,
    ServerProcess,
    consult_event,
    csrf_token,
    fire_together,
    signed_in_session,
    wait_until_listening_to_redis,
    when,
)
from socketio.exceptions import ConnectionError as SocketConnectionError
from sqlalchemy import update

from broker import accounts
from broker.extensions import db
from broker.live import DEFERRED_ABOVE
from broker.models import ApiToken, Consult, User
from broker.sessions import digest

REDIS_URL = os.environ.get("TEST_REDIS_URL", "")


def without_timeline(consult: dict) -> dict:
    return {k: v for k, v in consult.items() if k != "timeline"}


@dataclass
class Http:
    """A real server's HTTP API, called as one of the hospital's people."""

    url: str

    def request(self, method, caller, path, status, **kwargs):
        response = requests.request(
            method, self.url + path, headers=caller.headers, timeout=WAIT * 4, **kwargs
        )
        assert response.status_code == status, (
            method,
            path,
            response.status_code,
            response.text[:300],
        )
        return response.json() if response.content else None

    def get(self, caller, path, params=None, status=200):
        return self.request("GET", caller, path, status, params=params)

    def post(self, caller, path, body=None, status=200):
        return self.request("POST", caller, path, status, json=body or {})

    def new_consult(self, caller, **overrides) -> dict:
        return self.post(caller, "/api/consults", {**NEW_CONSULT, **overrides}, 201)


@pytest.fixture
def screens():
    """screens(url, caller=None, **connect_kwargs) -> a connected Screen.

    With a caller, it connects with `auth={"token": caller.token}`.
    """
    opened = []

    def open_screen(url, caller=None, **connect_kwargs) -> Screen:
        screen = Screen(caller.name if caller else "anonymous")
        if caller is not None:
            connect_kwargs.setdefault("auth", {"token": caller.token})
        opened.append(screen)
        screen.connect(url, **connect_kwargs)
        return screen

    yield open_screen
    for screen in opened:
        screen.close()


@pytest.fixture
def live(live_server_process, screens):
    """live(caller) -> a Screen connected to the real server with the caller's token."""
    return lambda caller, **kwargs: screens(live_server_process.url, caller, **kwargs)


@pytest.fixture
def api(live_server_process) -> Http:
    return Http(live_server_process.url)


# --- who receives what ------------------------------------------------------------


def test_a_new_consult_reaches_its_department_requester_and_admins_and_no_one_else(
    hospital, api, live
):
    h = hospital
    people = ["okafor", "castillo", "nguyen", "lee", "patel", "admin", "outsider"]
    screen = {name: live(getattr(h, name)) for name in people}

    radiology = api.new_consult(h.patel)
    cardiology = api.new_consult(
        h.patel, department="cardiology", patient_ref="MRN-CARD-1"
    )
    # Later consults, each received by some, so that the absence of the two
    # above on the other screens is checked after the fact, not before it.
    outsiders_own = api.new_consult(
        h.outsider, department="cardiology", patient_ref="MRN-OWN-1"
    )
    last = api.new_consult(h.patel, patient_ref="MRN-RAD-2")

    r, c, o, z = (x["id"] for x in (radiology, cardiology, outsiders_own, last))
    expected = {
        "okafor": [r, z],
        "castillo": [r, z],
        "nguyen": [r, z],
        "lee": [c, o],
        "patel": [r, c, z],
        "admin": [r, c, o, z],
        "outsider": [o],
    }
    for name, ids in expected.items():
        screen[name].wait_for(consult_event(ids[-1]))
    for name, ids in expected.items():
        received = screen[name].events()
        assert [(x.event, x.data["id"]) for x in received] == [
            ("consult", i) for i in ids
        ], name

    # The push is the consult as the API shows it (no timeline), with version.
    pushed = screen["castillo"].consults(r)[0]
    assert pushed == radiology
    assert pushed["status"] == "pending"
    assert pushed["patient_ref"] == NEW_CONSULT["patient_ref"]
    assert pushed["version"] >= 1 and pushed["updated_at"]
    assert "timeline" not in pushed


def test_the_primary_on_call_is_alerted_personally_of_a_new_consult(
    hospital, api, live
):
    h = hospital
    now = datetime.now(UTC)
    api.post(
        h.okafor,
        "/api/departments/radiology/shifts",
        {
            "user_id": h.castillo.user_id,
            "role": "primary",
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(hours=8)).isoformat(),
        },
        status=201,
    )
    castillo, nguyen, patel = live(h.castillo), live(h.nguyen), live(h.patel)

    consult = api.new_consult(h.patel, urgency="stat")
    later = api.new_consult(h.patel, urgency="stat", patient_ref="MRN-LATER-2")

    alert = castillo.wait_for(
        lambda r: r.event == "notification" and r.data["consult_id"] == consult["id"]
    ).data
    assert alert["kind"] == "new_consult"
    assert alert["read_at"] is None
    assert alert["id"] and alert["created_at"]
    assert f"#{consult['id']}" in alert["message"]
    assert NEW_CONSULT["patient_ref"] not in alert["message"]
    assert NEW_CONSULT["question"] not in alert["message"]
    inbox = api.get(h.castillo, "/api/notifications")
    assert alert in inbox

    # The others on the department (and the requester) got the consult, no alert.
    for other in (nguyen, patel):
        other.wait_for(consult_event(later["id"]))
        assert [r.event for r in other.events()] == ["consult", "consult"], other.name


def test_a_requester_receives_every_change_of_their_own_consult(hospital, api, live):
    h = hospital
    consult = api.new_consult(h.patel)
    patel = live(h.patel)
    path = f"/api/consults/{consult['id']}"

    claimed = api.post(h.castillo, path + "/claim")
    answered = api.post(h.castillo, path + "/answer", {"body": "No collection."})

    patel.wait_for(consult_event(consult["id"], status="answered"))
    assert patel.consults(consult["id"]) == [
        without_timeline(claimed),
        without_timeline(answered),
    ]


# --- who may connect ---------------------------------------------------------------


def test_a_connection_without_valid_credentials_is_refused(
    hospital, live_server_process, screens
):
    url = live_server_process.url
    refused = [
        {"auth": {"token": "not-a-token"}},
        {"auth": {"token": hospital.patel.token + "x"}},
        {"auth": {"token": ""}},
        {"auth": {}},
        {},
    ]

    def attempt(connect_kwargs) -> tuple:
        """(refused?, connected afterwards?, the server's reason)."""
        screen = Screen("intruder")
        try:
            screen.connect(url, **connect_kwargs)
        except SocketConnectionError:
            return True, screen.client.connected, str(screen.refusal)
        screen.close()
        return False, True, None

    # In parallel: a refused client takes a while to close its websocket.
    with ThreadPoolExecutor(len(refused)) as pool:
        outcomes = list(pool.map(attempt, refused))
    for connect_kwargs, (was_refused, connected, reason) in zip(
        refused, outcomes, strict=True
    ):
        assert was_refused and not connected, connect_kwargs
        assert "Sign in" in reason, connect_kwargs

    # The same server lets in the genuine token.
    assert screens(url, hospital.patel).client.connected


def sign_in_cookie(url: str, caller) -> str:
    """Sign in through the real sign-in page, as a browser does: its session cookie."""
    return signed_in_session(url, caller.email).cookies.get("session")


def test_a_browser_signed_in_with_its_session_cookie_connects_without_a_token(
    hospital, api, live_server_process, screens
):
    url = live_server_process.url
    cookie = sign_in_cookie(url, hospital.castillo)

    castillo = screens(url, headers={"Cookie": f"session={cookie}"})
    consult = api.new_consult(hospital.patel)
    castillo.wait_for(consult_event(consult["id"]))
    assert castillo.watch(consult["id"])["ok"] is True

    forged = cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB")
    intruder = Screen("forged cookie")
    with pytest.raises(SocketConnectionError):
        intruder.connect(url, headers={"Cookie": f"session={forged}"})
    assert "Sign in" in str(intruder.refusal)
    assert not intruder.client.connected


# --- watching one consult ----------------------------------------------------------


def test_a_watcher_sees_each_change_of_the_consult_once_in_order(hospital, api, live):
    h = hospital
    consult = api.new_consult(h.patel)
    watcher = live(h.patel)
    assert watcher.watch(consult["id"]) == {"ok": True, "consult": consult}

    path = f"/api/consults/{consult['id']}"
    story = [
        (h.castillo, "/claim", None),
        (h.castillo, "/handoff", {"to_user_id": h.nguyen.user_id, "note": "Off now"}),
        (h.nguyen, "/handoff/accept", None),
        (h.nguyen, "/answer", {"body": "A 4 cm collection, drainable."}),
        (h.patel, "/messages", {"body": "Can it be drained today?"}),
        (h.nguyen, "/answer", {"body": "Yes, this afternoon."}),
        (h.patel, "/close", {"rating": 5}),
    ]
    responses = [api.post(who, path + action, body) for who, action, body in story]

    watcher.wait_for(consult_event(consult["id"], status="closed"))
    seen = watcher.consults(consult["id"])
    assert seen == [without_timeline(r) for r in responses]
    assert [c["status"] for c in seen] == [
        "claimed",
        "claimed",
        "claimed",
        "answered",
        "claimed",
        "answered",
        "closed",
    ]
    assert [c["owner"]["id"] for c in seen] == [h.castillo.user_id] * 2 + [
        h.nguyen.user_id
    ] * 5
    assert seen[1]["handoff"]["to"]["id"] == h.nguyen.user_id
    assert seen[2]["handoff"] is None
    versions = [consult["version"]] + [c["version"] for c in seen]
    assert versions == sorted(set(versions)), versions


def test_watch_is_refused_for_a_consult_the_user_may_not_see(hospital, api, live):
    h = hospital
    consult = api.new_consult(h.patel)
    lee, outsider = live(h.lee), live(h.outsider)

    no_such = outsider.watch(10**9)
    assert no_such["ok"] is False
    for screen in (lee, outsider):
        # The same answer as for a consult that does not exist: nothing is revealed.
        assert screen.watch(consult["id"]) == no_such, screen.name
        assert screen.watch("not a number")["ok"] is False

    path = f"/api/consults/{consult['id']}"
    api.post(h.castillo, path + "/claim")
    api.post(h.castillo, path + "/answer", {"body": "Nothing to drain."})
    marker = api.new_consult(h.outsider, department="cardiology", patient_ref="MRN-O")

    for screen in (lee, outsider):
        screen.wait_for(consult_event(marker["id"]))
        assert screen.consults() == [marker], screen.name


# --- nothing is pushed for what did not happen --------------------------------------


def test_refused_actions_push_nothing_and_the_next_push_is_the_next_change(
    hospital, api, live
):
    h = hospital
    consult = api.new_consult(h.patel)
    people = {"castillo": h.castillo, "nguyen": h.nguyen, "patel": h.patel}
    screen = {name: live(caller) for name, caller in people.items()}
    path = f"/api/consults/{consult['id']}"
    claimed = api.post(h.castillo, path + "/claim")
    marks = {}
    for name, s in screen.items():
        s.wait_for(consult_event(consult["id"], version=claimed["version"]))
        marks[name] = s.mark()

    api.post(h.nguyen, path + "/claim", status=409)
    api.post(h.nguyen, path + "/answer", {"body": "Not mine to answer."}, status=403)
    handoff_outside = {"to_user_id": h.lee.user_id, "note": "Please take it"}
    api.post(h.castillo, path + "/handoff", handoff_outside, status=422)
    api.post(h.castillo, path + "/answer", {"body": "   "}, status=422)
    api.post(
        h.castillo,
        path + "/redirect",
        {"department": "radiology", "reason": "Wrong place"},
        status=422,
    )
    api.post(h.patel, path + "/close", {"rating": 5}, status=409)
    api.post(h.outsider, path + "/claim", status=404)
    answered = api.post(h.castillo, path + "/answer", {"body": "No collection."})

    for name, s in screen.items():
        s.wait_for(consult_event(consult["id"], status="answered"), since=marks[name])
        first = s.events(marks[name])[0]
        assert first.event == "consult", (name, s.summary(marks[name]))
        assert first.data == without_timeline(answered), name
        assert first.data["version"] == claimed["version"] + 1, name


def test_of_simultaneous_claims_only_the_winners_is_pushed(hospital, api, live):
    h = hospital
    consult = api.new_consult(h.patel)
    patel, nguyen = live(h.patel), live(h.nguyen)
    path = f"/api/consults/{consult['id']}"
    claimers = [h.okafor, h.castillo, h.nguyen]
    barrier = threading.Barrier(len(claimers))

    def claim(caller):
        barrier.wait(timeout=WAIT)
        return requests.post(
            api.url + path + "/claim", headers=caller.headers, timeout=WAIT * 4
        )

    with ThreadPoolExecutor(len(claimers)) as pool:
        responses = list(pool.map(claim, claimers))
    assert sorted(r.status_code for r in responses) == [200, 409, 409]
    won = next(r.json() for r in responses if r.status_code == 200)
    winner = next(c for c in claimers if c.user_id == won["owner"]["id"])
    answered = api.post(winner, path + "/answer", {"body": "No collection."})
    assert answered["version"] == won["version"] + 1

    for screen in (patel, nguyen):
        screen.wait_for(consult_event(consult["id"], status="answered"))
        assert screen.consults(consult["id"]) == [
            without_timeline(won),
            without_timeline(answered),
        ], screen.name


# --- redirects and privacy ---------------------------------------------------------


def test_a_redirect_tells_the_old_department_only_that_the_consult_is_gone(
    hospital, api, live
):
    h = hospital
    consult = api.new_consult(h.patel)
    path = f"/api/consults/{consult['id']}"
    api.post(h.castillo, path + "/claim")
    screen = {
        name: live(getattr(h, name))
        for name in ("castillo", "nguyen", "okafor", "lee", "patel")
    }
    assert screen["castillo"].watch(consult["id"])["ok"] is True

    redirected = api.post(
        h.castillo,
        path + "/redirect",
        {"department": "cardiology", "reason": "A cardiac question"},
    )
    for name in ("castillo", "nguyen", "okafor"):
        gone = screen[name].wait_for(lambda r: r.event == "consult_gone")
        assert gone.data == {"id": consult["id"]}, name
    for name in ("lee", "patel"):
        pushed = screen[name].wait_for(consult_event(consult["id"]))
        assert pushed.data == without_timeline(redirected), name
        assert pushed.data["department"] == "cardiology"
        assert pushed.data["status"] == "pending" and pushed.data["owner"] is None
    screen["patel"].wait_for(
        lambda r: r.event == "notification" and r.data["kind"] == "redirected"
    )

    # The former watcher may no longer watch it, and hears nothing more of it.
    assert screen["castillo"].watch(consult["id"])["ok"] is False
    api.post(h.lee, path + "/claim")
    marker = api.new_consult(h.patel, patient_ref="MRN-NEXT-9")
    for name in ("castillo", "nguyen", "okafor"):
        screen[name].wait_for(consult_event(marker["id"]))
        assert [(r.event, r.data["id"]) for r in screen[name].events()] == [
            ("consult_gone", consult["id"]),
            ("consult", marker["id"]),
        ], name
    screen["lee"].wait_for(consult_event(consult["id"], status="claimed"))


def test_patient_data_never_reaches_someone_who_may_not_see_the_consult(
    hospital, api, live
):
    h = hospital
    lee, outsider = live(h.lee), live(h.outsider)
    secret = {"patient_ref": "MRN-SECRET-7781", "question": "Q-SECRET-7781 abscess?"}
    other = {"patient_ref": "MRN-MOVED-5530", "question": "Q-MOVED-5530 pericardial?"}

    consult = api.new_consult(h.patel, **secret)
    path = f"/api/consults/{consult['id']}"
    for screen in (lee, outsider):
        assert screen.watch(consult["id"])["ok"] is False
    api.post(h.castillo, path + "/claim")
    api.post(
        h.castillo, path + "/handoff", {"to_user_id": h.nguyen.user_id, "note": "n"}
    )
    api.post(h.nguyen, path + "/handoff/accept")
    api.post(h.nguyen, path + "/answer", {"body": "Drainable."})
    api.post(h.patel, path + "/messages", {"body": "Today?"})
    api.post(h.okafor, path + "/messages", {"body": "Covering note."})
    api.post(h.nguyen, path + "/answer", {"body": "Yes."})
    api.post(h.patel, path + "/close", {"rating": 4})

    # A consult that starts in cardiology (lee may see it) and leaves for radiology.
    moved = api.new_consult(h.patel, department="cardiology", **other)
    moved_path = f"/api/consults/{moved['id']}"
    api.post(
        h.lee, moved_path + "/redirect", {"department": "radiology", "reason": "r"}
    )
    api.post(h.castillo, moved_path + "/claim")
    api.post(h.castillo, moved_path + "/answer", {"body": "Fine."})

    marker = api.new_consult(h.outsider, department="cardiology", patient_ref="MRN-M")
    for screen in (lee, outsider):
        screen.wait_for(consult_event(marker["id"]))
        text = screen.everything_received()
        for value in secret.values():
            assert value not in text, screen.name
    assert all(value not in outsider.everything_received() for value in other.values())
    # Lee saw the moved consult while it was cardiology's, then only that it left.
    assert [(r.event, r.data["id"]) for r in lee.events()] == [
        ("consult", moved["id"]),
        ("consult_gone", moved["id"]),
        ("consult", marker["id"]),
    ]


# --- reconnecting ------------------------------------------------------------------


def test_a_reconnecting_client_reads_exactly_what_changed_while_it_was_away(
    app, hospital, api, live
):
    h = hospital
    earlier = api.new_consult(h.patel, patient_ref="MRN-A")
    with app.app_context():  # a consult last changed an hour ago
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        db.session.execute(
            update(Consult)
            .where(Consult.id == earlier["id"])
            .values(
                created_at=an_hour_ago, routed_at=an_hour_ago, updated_at=an_hour_ago
            )
        )
        db.session.commit()
    castillo = live(h.castillo)
    claimed_later = api.new_consult(h.patel, patient_ref="MRN-B")
    last_before = api.new_consult(h.patel, patient_ref="MRN-C")
    castillo.wait_for(consult_event(last_before["id"]))
    seen = {c["id"]: c["version"] for c in castillo.consults()}
    last_seen = max((c["updated_at"] for c in castillo.consults()), key=when)
    castillo.close()

    claim = api.post(h.nguyen, f"/api/consults/{claimed_later['id']}/claim")
    new = api.new_consult(h.patel, patient_ref="MRN-D")
    elsewhere = api.new_consult(h.patel, department="cardiology", patient_ref="MRN-E")

    again = live(h.castillo)
    resync = api.get(h.castillo, "/api/consults", params={"updated_since": last_seen})
    returned = {c["id"]: c for c in resync}
    # What is new to the client (a consult, or a version of it, it has not seen)
    # is exactly what changed while it was away; what it already has may come again.
    assert {i for i, c in returned.items() if seen.get(i) != c["version"]} == {
        claimed_later["id"],
        new["id"],
    }
    assert returned[claimed_later["id"]] == without_timeline(claim)
    assert returned[new["id"]] == new
    assert earlier["id"] not in returned
    assert elsewhere["id"] not in returned

    # Reconnected, it is in its rooms again.
    answered = api.post(
        h.nguyen, f"/api/consults/{claimed_later['id']}/answer", {"body": "x"}
    )
    again.wait_for(consult_event(claimed_later["id"], version=answered["version"]))


# --- many people at once ------------------------------------------------------------


def claim_of(api: Http, caller, consult: dict):
    """A call claiming the consult as `caller`: its status code, or 'no answer'."""

    def call():
        try:
            return requests.post(
                f"{api.url}/api/consults/{consult['id']}/claim",
                headers=caller.headers,
                timeout=WAIT * 2,
            ).status_code
        except requests.Timeout:
            return "no answer"

    return call


def radiologists(make_caller, count: int) -> list:
    return [
        make_caller(
            f"radiologist{n}@h.test", f"Dr Radiologist {n}", {"radiology": False}
        )
        for n in range(count)
    ]


def test_pushes_keep_flowing_when_many_people_act_at_once(
    hospital, api, live, make_caller
):
    """Forty radiologists each claim a different consult at the same instant."""
    h = hospital
    claimers = radiologists(make_caller, 40)
    consults = [api.new_consult(h.patel, patient_ref=f"MRN-B{n}") for n in range(40)]
    okafor = live(h.okafor)

    codes = fire_together(
        [claim_of(api, c, x) for c, x in zip(claimers, consults, strict=True)]
    )

    unanswered = [code for code in codes if code != 200]
    assert not unanswered, f"{len(unanswered)} of {len(codes)} claims: {unanswered}"
    for consult in consults:
        okafor.wait_for(consult_event(consult["id"], status="claimed"))


def test_a_resync_from_the_last_push_seen_misses_no_change_made_concurrently(
    hospital, api, live, make_caller
):
    """Whenever a client drops, reading `updated_since` the newest `updated_at` it
    has seen must return every change whose push it had not yet received.

    Changes are made concurrently (a dozen claims at once, three times); each
    point in the stream of pushes the department received is taken in turn as
    the moment the client dropped.
    """
    h = hospital
    claimers = radiologists(make_caller, 12)
    okafor = live(h.okafor)
    for burst in range(3):
        consults = [
            api.new_consult(h.patel, patient_ref=f"MRN-R{burst}-{n}")
            for n in range(len(claimers))
        ]
        codes = fire_together(
            [claim_of(api, c, x) for c, x in zip(claimers, consults, strict=True)]
        )
        assert codes == [200] * len(consults)
        for consult in consults:
            okafor.wait_for(consult_event(consult["id"], status="claimed"))

    stream = okafor.consults()
    for dropped_after in range(1, len(stream)):
        seen = stream[:dropped_after]
        cursor = max((c["updated_at"] for c in seen), key=when)
        not_received = {}
        for c in stream[dropped_after:]:
            not_received[c["id"]] = max(c["version"], not_received.get(c["id"], 0))
        resync = api.get(
            h.okafor, "/api/consults", {"updated_since": cursor, "page_size": 200}
        )
        returned = {c["id"]: c["version"] for c in resync}
        missed = sorted(
            i for i, version in not_received.items() if returned.get(i, 0) < version
        )
        assert not missed, (
            f"dropped after push {dropped_after} (updated_at {cursor}): "
            f"resync misses consults {missed}"
        )


# --- the sweep inside the service --------------------------------------------------


@pytest.fixture
def sweeping_server(database_url, servers):
    """A server process whose sweeper runs every second, on the real clock."""
    return servers(database_url, SWEEP_INTERVAL_SECONDS="1")


@pytest.mark.parametrize(
    "how_many",
    [3, DEFERRED_ABOVE + 10],
    ids=["a few, pushed as the pass commits", "many, pushed by a background task"],
)
def test_the_services_sweep_pushes_every_escalation_and_alert(
    app, hospital, sweeping_server, screens, how_many
):
    h = hospital
    api = Http(sweeping_server.url)
    ids = [api.new_consult(h.patel, urgency="routine")["id"] for _ in range(how_many)]
    nguyen, patel = (
        screens(sweeping_server.url, h.nguyen),
        screens(sweeping_server.url, h.patel),
    )
    cardiology = screens(sweeping_server.url, h.lee)
    # Their claim deadline passed a minute ago: the next pass escalates them all.
    past = datetime.now(UTC) - timedelta(minutes=1)
    with app.app_context():
        db.session.execute(
            update(Consult)
            .where(Consult.id.in_(ids))
            .values(claim_due_at=past, level1_escalation_at=past)
        )
        db.session.commit()

    for consult_id in ids:
        # No one is on call in radiology: level 1 alerts every member.
        nguyen.wait_for(consult_event(consult_id, escalation_level=1, overdue=True))
        alert = nguyen.wait_for(
            lambda r, c=consult_id: (
                r.event == "notification" and r.data["consult_id"] == c
            )
        ).data
        assert alert["kind"] == "escalated"
        patel.wait_for(consult_event(consult_id, escalation_level=1))
    inbox = api.get(h.nguyen, "/api/notifications", {"page_size": 200})
    assert {n["consult_id"] for n in inbox if n["kind"] == "escalated"} == set(ids)
    # The requester is told of the change, not alerted; the other department hears nothing.
    assert not [r for r in patel.events() if r.event == "notification"]
    assert cardiology.events() == []
    assert "Traceback" not in sweeping_server.log()


# --- several processes ---------------------------------------------------------------


@dataclass
class RedisPair:
    first: ServerProcess
    second: ServerProcess
    channel: str


@pytest.fixture
def redis_servers(app, database_url, servers):
    """Two server processes on different ports, sharing the database and Redis.

    They push on a Redis channel of their own (SOCKETIO_CHANNEL): Redis channels
    ignore the database number, and other runs may share this Redis.
    """
    channel = f"broker-test-live-{uuid.uuid4().hex}"
    env = {"REDIS_URL": REDIS_URL, "SOCKETIO_CHANNEL": channel}
    return RedisPair(
        servers(database_url, **env), servers(database_url, **env), channel
    )


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set TEST_REDIS_URL")
def test_a_claim_through_one_process_reaches_a_client_of_another_within_a_second(
    hospital, redis_servers, screens
):
    first, second = redis_servers.first, redis_servers.second
    h = hospital
    okafor = screens(first.url, h.okafor)
    wait_until_listening_to_redis(okafor, REDIS_URL, redis_servers.channel)

    consult = Http(second.url).new_consult(h.patel)
    okafor.wait_for(consult_event(consult["id"], status="pending"))

    response = requests.post(
        f"{second.url}/api/consults/{consult['id']}/claim",
        headers=h.castillo.headers,
        timeout=WAIT,
    )
    responded = time.monotonic()
    assert response.status_code == 200, response.text
    pushed = okafor.wait_for(consult_event(consult["id"], status="claimed"))
    assert pushed.data == without_timeline(response.json())
    assert pushed.at - responded < 1.0


# --- absurd or missing data is answered, never raised -------------------------------


def test_watch_with_absurd_or_missing_data_is_answered_with_an_error(
    hospital, api, live, live_server_process
):
    consult = api.new_consult(hospital.patel)
    screen = live(hospital.castillo)
    refusal = {"ok": False, "error": "No such consult."}

    for event in ("watch", "unwatch"):
        for data in (
            {"consult_id": 2**70},
            {"consult_id": -1},
            {"consult_id": 0},
            {"consult_id": str(consult["id"])},
            {"consult_id": 1.5},
            {"consult_id": True},
            {"consult_id": None},
            {},
            "watch everything",
            [consult["id"]],
        ):
            answer = screen.client.call(event, data, timeout=WAIT)
            assert answer == refusal, (event, data)
        assert screen.client.call(event, timeout=WAIT) == refusal, event

    assert screen.watch(consult["id"])["ok"] is True
    assert "Traceback" not in live_server_process.log()


# --- a socket lives only as long as what authenticated it --------------------------


def wait_until_disconnected(screen: Screen, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while screen.client.connected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{screen.name} is still connected after {timeout}s")
        time.sleep(0.02)


def test_signing_out_disconnects_the_sessions_socket_and_no_other(
    hospital, api, live_server_process, screens
):
    url = live_server_process.url
    browser = signed_in_session(url, hospital.castillo.email)
    cookie = browser.cookies.get("session")
    castillo = screens(url, headers={"Cookie": f"session={cookie}"})
    nguyen = screens(url, hospital.nguyen)
    page = browser.get(url + "/consults", timeout=WAIT).text

    browser.post(url + "/sign-out", data={"csrf_token": csrf_token(page)}, timeout=WAIT)

    wait_until_disconnected(castillo)
    consult = api.new_consult(hospital.patel)
    nguyen.wait_for(consult_event(consult["id"]))
    assert castillo.consults(consult["id"]) == []
    # The same cookie cannot open a new one.
    again = Screen("replayed cookie")
    with pytest.raises(SocketConnectionError):
        again.connect(url, headers={"Cookie": f"session={cookie}"})


def test_revoking_a_token_disconnects_its_socket(hospital, app, api, live):
    castillo = live(hospital.castillo)
    with app.app_context():
        other_token = accounts.issue_token(
            db.session.get(User, hospital.castillo.user_id)
        )
    other = live(hospital.castillo, auth={"token": other_token})

    api.request("DELETE", hospital.castillo, "/api/tokens/current", 204)

    wait_until_disconnected(castillo)
    consult = api.new_consult(hospital.patel)
    other.wait_for(consult_event(consult["id"]))  # the other token's socket stays
    assert castillo.consults() == []


def test_an_admin_ending_all_of_a_users_credentials_disconnects_their_sockets(
    hospital, api, live_server_process, live, screens
):
    url = live_server_process.url
    browser = signed_in_session(url, hospital.castillo.email)
    by_cookie = screens(
        url, headers={"Cookie": f"session={browser.cookies.get('session')}"}
    )
    by_token = live(hospital.castillo)

    api.request(
        "DELETE",
        hospital.admin,
        f"/api/users/{hospital.castillo.user_id}/sessions",
        204,
    )

    wait_until_disconnected(by_cookie)
    wait_until_disconnected(by_token)


def expire_token(app, caller) -> None:
    """The token's expiry passes (set in the database, as time passing would)."""
    with app.app_context():
        db.session.execute(
            update(ApiToken)
            .where(ApiToken.token_digest == digest(caller.token))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        db.session.commit()


@pytest.mark.parametrize("server_env", [{"LIVE_CREDENTIAL_CHECK_SECONDS": "0"}])
def test_every_handler_rechecks_the_credential_so_an_expired_token_is_refused(
    hospital, app, api, live
):
    consult = api.new_consult(hospital.patel)
    castillo = live(hospital.castillo)
    assert castillo.watch(consult["id"])["ok"] is True

    expire_token(app, hospital.castillo)

    refused = castillo.watch(consult["id"])
    assert refused["ok"] is False and "sign in again" in refused["error"]
    assert "consult" not in refused
    wait_until_disconnected(castillo)


@pytest.mark.parametrize("server_env", [{"LIVE_CREDENTIAL_CHECK_SECONDS": "1"}])
def test_a_socket_whose_token_expires_is_disconnected_without_any_event(
    hospital, app, live
):
    castillo = live(hospital.castillo)
    nguyen = live(hospital.nguyen)

    expire_token(app, hospital.castillo)

    wait_until_disconnected(castillo)
    assert nguyen.client.connected


def audit_of(caller_api: Http, chief, consult_id: int, via: str, who: int) -> list:
    """Waits (bounded) for the audit to show `who` was shown the consult through `via`."""
    deadline = time.monotonic() + WAIT
    while True:
        log = caller_api.get(chief, f"/api/consults/{consult_id}/access-log")
        found = [e for e in log if e["via"] == via and e["user"]["id"] == who]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_a_live_push_is_audited_for_each_user_it_reached_and_no_one_else(
    hospital, api, live
):
    castillo = live(hospital.castillo)
    lee = live(hospital.lee)
    consult = api.new_consult(hospital.patel)
    castillo.wait_for(consult_event(consult["id"]))
    later = api.new_consult(hospital.patel, department="cardiology")
    lee.wait_for(consult_event(later["id"]))

    pushed = audit_of(
        api, hospital.okafor, consult["id"], "live-push", hospital.castillo.user_id
    )
    assert len(pushed) == 1
    log = api.get(hospital.admin, f"/api/consults/{consult['id']}/access-log")
    pushed_to = {e["user"]["id"] for e in log if e["via"] == "live-push"}
    # nguyen, okafor and patel were not connected: not shown; lee may not see it.
    assert pushed_to == {hospital.castillo.user_id}


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set TEST_REDIS_URL")
def test_ending_a_users_credentials_on_one_process_disconnects_them_on_another(
    hospital, redis_servers, screens
):
    first, second = redis_servers.first, redis_servers.second
    castillo = screens(first.url, hospital.castillo)
    wait_until_listening_to_redis(castillo, REDIS_URL, redis_servers.channel)

    Http(second.url).request(
        "DELETE",
        hospital.admin,
        f"/api/users/{hospital.castillo.user_id}/sessions",
        204,
    )

    wait_until_disconnected(castillo)


@pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set TEST_REDIS_URL")
def test_a_push_from_another_process_is_audited_where_it_was_delivered(
    hospital, redis_servers, screens
):
    first, second = redis_servers.first, redis_servers.second
    okafor = screens(first.url, hospital.okafor)
    wait_until_listening_to_redis(okafor, REDIS_URL, redis_servers.channel)

    consult = Http(second.url).new_consult(hospital.patel)
    okafor.wait_for(consult_event(consult["id"]))

    pushed = audit_of(
        Http(second.url),
        hospital.admin,
        consult["id"],
        "live-push",
        hospital.okafor.user_id,
    )
    assert len(pushed) == 1
