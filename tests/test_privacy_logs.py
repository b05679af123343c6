"""Protected health information never reaches the server's log or an error answer.

SPEC.md: patient_ref and question text never go into logs, error pages or URLs.
These tests drive a real server process (`live_server_process`) through whole
consult stories and through refusals whose input carries the patient data,
then read everything the process wrote (access log and application log).
"""

import re
import time

import requests

TIMEOUT = 30

# Distinctive, so that any appearance in the log is certainly a leak.
PATIENT_REFS = ["MRN-QZX-550913", "MRN-QZX-771402"]
QUESTIONS = [
    "Quokka-sign lesion in segment VII, drain or biopsy? PHIQ-3391",
    "Is the xiphoid zebra-stripe artefact real? PHIQ-8827",
]
# Free text written on the thread: as clinical as the question itself.
THREAD_TEXTS = [
    "ANSWER-PHI-4410: rim-enhancing collection, drain advised",
    "FOLLOWUP-PHI-2290: and the left lobe?",
    "NOTE-PHI-6613: prior films in PACS",
    "REASON-PHI-9058: wrong department for this patient",
]
SECRETS = PATIENT_REFS + QUESTIONS + THREAD_TEXTS


class Api:
    """A caller's view of the real server, over HTTP."""

    def __init__(self, server, caller=None):
        self.url = server.url
        self.session = requests.Session()
        if caller is not None:
            self.session.headers.update(caller.headers)

    def get(self, path, **kwargs):
        return self.session.get(self.url + path, timeout=TIMEOUT, **kwargs)

    def post(self, path, json=None, **kwargs):
        return self.session.post(self.url + path, json=json, timeout=TIMEOUT, **kwargs)


def expect(response, status):
    """Check the status code; a refusal must not echo patient data back either."""
    assert response.status_code == status, (response.status_code, response.text)
    if status >= 400:
        for secret in SECRETS:
            assert secret not in response.text, (
                f"error answer {status} echoes {secret!r}"
            )
    return response.json()


def new_consult(api, patient_ref, question, **overrides):
    body = {
        "department": "radiology",
        "urgency": "urgent",
        "patient_ref": patient_ref,
        "question": question,
        "study_ref": "ACC-9",
        **overrides,
    }
    return expect(api.post("/api/consults", json=body), 201)


def answered_by(consultant, consult) -> str:
    """Claim and answer the consult as `consultant`; its path."""
    path = f"/api/consults/{consult['id']}"
    expect(consultant.post(path + "/claim"), 200)
    expect(consultant.post(path + "/answer", json={"body": THREAD_TEXTS[0]}), 200)
    return path


def plain_log(server) -> str:
    """The server's log without the terminal colours Werkzeug gives status lines."""
    return re.sub(r"\x1b\[[0-9;]*m", "", server.log())


def settled_log(server, last_line: str, times: int = 1) -> str:
    """The server's log once the access line of the last request has been written
    (`times` times: lines are paths without their queries, so several can be alike)."""
    deadline = time.monotonic() + TIMEOUT
    while (log := plain_log(server)).count(last_line) < times:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    return log


def assert_no_secrets(log: str) -> None:
    leaked = [secret for secret in SECRETS if secret in log]
    lines = [line for line in log.splitlines() if any(s in line for s in leaked)]
    assert not leaked, "patient data in the server log:\n" + "\n".join(lines[:20])


def callers(server, hospital):
    """The hospital's people as HTTP clients of the real server."""
    return {
        name: Api(server, getattr(hospital, name))
        for name in ("patel", "castillo", "nguyen", "okafor", "lee", "outsider")
    } | {"anonymous": Api(server)}


def test_whole_consult_stories_leave_no_patient_data_in_the_server_log(
    hospital, live_server_process
):
    server = live_server_process
    api = callers(server, hospital)
    patel, castillo, nguyen = api["patel"], api["castillo"], api["nguyen"]

    # Create, claim, answer, follow-up, covering note, answer again, close.
    one = answered_by(castillo, new_consult(patel, PATIENT_REFS[0], QUESTIONS[0]))
    expect(patel.post(one + "/messages", json={"body": THREAD_TEXTS[1]}), 200)
    expect(nguyen.post(one + "/messages", json={"body": THREAD_TEXTS[2]}), 200)
    expect(castillo.post(one + "/answer", json={"body": THREAD_TEXTS[0]}), 200)
    expect(patel.post(one + "/close", json={"rating": 5, "comment": "thanks"}), 200)
    # Redirected, then cancelled, with the free text in the reasons.
    second = new_consult(patel, PATIENT_REFS[1], QUESTIONS[1], urgency="stat")
    two = f"/api/consults/{second['id']}"
    redirect = {"department": "cardiology", "reason": THREAD_TEXTS[3]}
    expect(api["okafor"].post(two + "/redirect", json=redirect), 200)
    expect(patel.post(two + "/cancel", json={"reason": THREAD_TEXTS[3]}), 200)

    # Reading: the detail, and lists with every filter.
    detail = expect(patel.get(one), 200)
    assert detail["patient_ref"] == PATIENT_REFS[0]
    assert [e["kind"] for e in detail["timeline"]][-1] == "closed"
    for query in (
        "",
        "?department=radiology&status=closed",
        "?owner=me",
        "?requester=me&page=1&page_size=10",
        "?overdue=true",
        "?overdue=false&status=cancelled",
    ):
        expect(patel.get("/api/consults" + query), 200)
    mine = expect(castillo.get("/api/consults?owner=me&department=radiology"), 200)
    assert [c["patient_ref"] for c in mine] == [PATIENT_REFS[0]]

    last = "/api/consults?requester=me&status=cancelled"
    assert [c["id"] for c in expect(patel.get(last), 200)] == [second["id"]]
    lists = '"GET /api/consults HTTP/1.1" 200'
    log = settled_log(server, lists, times=8)  # every list read, queries left out

    # The log is real: it holds the access lines of what was just done.
    for line in (
        '"POST /api/consults HTTP/1.1" 201',
        f'"POST {one}/claim HTTP/1.1" 200',
        f'"POST {one}/answer HTTP/1.1" 200',
        f'"POST {one}/messages HTTP/1.1" 200',
        f'"POST {two}/redirect HTTP/1.1" 200',
        f'"GET {one} HTTP/1.1" 200',
        lists,
    ):
        assert line in log, f"no access log line {line!r} in:\n{log[-3000:]}"
    assert_no_secrets(log)


def test_refusals_of_input_carrying_patient_data_leave_none_in_the_log(
    hospital, live_server_process
):
    server = live_server_process
    api = callers(server, hospital)
    patel, castillo, nguyen = api["patel"], api["castillo"], api["nguyen"]
    one = answered_by(castillo, new_consult(patel, PATIENT_REFS[0], QUESTIONS[0]))
    expect(patel.post(one + "/close", json={"rating": 4}), 200)
    second = new_consult(patel, PATIENT_REFS[1], QUESTIONS[1])
    two = f"/api/consults/{second['id']}"

    # 422: invalid input that carries the patient data; each names the bad fields.
    full = {
        "department": "radiology",
        "urgency": "stat",
        "patient_ref": PATIENT_REFS[0],
        "question": QUESTIONS[0],
    }
    for body in (
        full | {"urgency": QUESTIONS[0]},
        full | {"patient_ref": PATIENT_REFS[0] * 10},  # too long
        full | {"department": PATIENT_REFS[0]},
        full | {"department": "nowhere", "question": QUESTIONS[1]},
        {"urgency": "stat", "patient_ref": PATIENT_REFS[1], "question": QUESTIONS[1]},
        full | {"patient_ref": [PATIENT_REFS[0]], "question": {"q": QUESTIONS[0]}},
        full | {"patient_ref": "", "mrn": PATIENT_REFS[1]},
        full | {"question": "   "},
    ):
        errors = expect(patel.post("/api/consults", json=body), 422)
        assert errors["errors"], errors
    expect(patel.post(one + "/close", json={"rating": PATIENT_REFS[0]}), 422)
    expect(castillo.post(two + "/claim"), 200)
    expect(castillo.post(two + "/answer", json={"body": [THREAD_TEXTS[0]]}), 422)
    expect(castillo.post(two + "/release", json={"reason": "   "}), 422)
    bad_redirect = {"department": PATIENT_REFS[1], "reason": THREAD_TEXTS[3]}
    expect(castillo.post(two + "/redirect", json=bad_redirect), 422)
    expect(patel.get("/api/consults?status=bogus&department=radiology"), 422)

    # 409: the consult's state does not allow it, with patient data in the body.
    expect(nguyen.post(two + "/claim"), 409)
    expect(castillo.post(one + "/answer", json={"body": QUESTIONS[0]}), 409)
    expect(patel.post(one + "/messages", json={"body": QUESTIONS[0]}), 409)
    expect(patel.post(one + "/cancel", json={"reason": PATIENT_REFS[0]}), 409)
    expect(castillo.post(one + "/release", json={"reason": QUESTIONS[0]}), 409)
    # 403: visible but not allowed.
    expect(nguyen.post(two + "/answer", json={"body": QUESTIONS[1]}), 403)
    expect(nguyen.post(two + "/cancel", json={"reason": PATIENT_REFS[1]}), 403)
    # 404: unknown, or not visible to the caller.
    expect(api["outsider"].get(two), 404)
    expect(api["outsider"].post(two + "/messages", json={"body": QUESTIONS[1]}), 404)
    expect(api["lee"].post(two + "/answer", json={"body": QUESTIONS[1]}), 404)
    expect(
        patel.post("/api/consults/999999/messages", json={"body": QUESTIONS[0]}), 404
    )
    # 401: not signed in, or signing in with patient data for credentials.
    anonymous = api["anonymous"]
    expect(anonymous.post("/api/consults", json=full), 401)
    expect(anonymous.get(one), 401)
    login = {"email": PATIENT_REFS[0], "password": QUESTIONS[0]}
    expect(anonymous.post("/api/tokens", json=login), 401)

    last = f"/api/consults/{second['id']}"
    expect(patel.get(last), 200)
    log = settled_log(server, f'"GET {last} HTTP/1.1" 200')

    for line in (
        '"POST /api/consults HTTP/1.1" 422',
        f'"POST {one}/close HTTP/1.1" 422',
        f'"POST {two}/claim HTTP/1.1" 409',
        f'"POST {two}/answer HTTP/1.1" 403',
        f'"GET {two} HTTP/1.1" 404',
        '"POST /api/consults HTTP/1.1" 401',
        '"POST /api/tokens HTTP/1.1" 401',
    ):
        assert line in log, f"no access log line {line!r} in:\n{log[-3000:]}"
    assert_no_secrets(log)


def test_a_malformed_json_body_is_a_422_that_leaves_no_patient_data_in_the_log(
    hospital, live_server_process
):
    server = live_server_process
    patel = Api(server, hospital.patel)
    broken = '{"patient_ref": "' + PATIENT_REFS[0] + '", "question": "' + QUESTIONS[0]

    response = patel.post(
        "/api/consults", data=broken, headers={"Content-Type": "application/json"}
    )

    log = settled_log(server, '"POST /api/consults HTTP/1.1"')
    assert '"POST /api/consults HTTP/1.1"' in log, log
    assert_no_secrets(log)
    error = expect(response, 422)
    assert error["message"]


def test_the_access_log_records_paths_without_their_query_strings(
    hospital, live_server_process
):
    server = live_server_process
    okafor = Api(server, hospital.okafor)
    okafor.get("/api/consults", params={"status": "pending", "q": PATIENT_REFS[0]})
    opened = requests.get(
        server.url + "/socket.io/",
        params={"EIO": "4", "transport": "polling"},
        timeout=TIMEOUT,
    )
    sid = re.search(r'"sid":"([^"]+)"', opened.text)[1]
    requests.post(  # a Socket.IO connect, refused: no credentials
        server.url + "/socket.io/",
        params={"EIO": "4", "transport": "polling", "sid": sid},
        data="40",
        timeout=TIMEOUT,
    )
    okafor.get("/api/me", params={"last": "1"})

    log = settled_log(server, '"GET /api/me HTTP/1.1"')
    assert (
        '"GET /api/consults HTTP/1.1" 4' in log
        or '"GET /api/consults HTTP/1.1" 2' in log
    )
    assert '"GET /socket.io/ HTTP/1.1"' in log
    assert "?" not in "".join(line for line in log.splitlines() if "HTTP/1.1" in line)
    assert sid not in log
    assert_no_secrets(log)
