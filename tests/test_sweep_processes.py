"""Several sweeps at the same instant, in separate processes, fire each escalation once.

Three `flask --app wsgi sweep --at <instant>` processes are started together
against the test database (SQLite by default, PostgreSQL when
TEST_DATABASE_URL is set) holding many overdue consults. Afterwards every
consult's timeline holds exactly one `escalated` event per level it reached,
and what the three processes report adds up to exactly that.
"""

import subprocess
import sys
from collections import Counter
from datetime import datetime

from helpers import ROOT, T0, at, broker_env, scheduled, swept

from broker import clock

PROCESSES = 3


def sweep_together(database_url: str, instant: datetime) -> list[tuple[int, int]]:
    """Start PROCESSES sweeps at `instant` at once; every (consult, level) they report."""
    env = broker_env(database_url)
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "sweep", "--at", instant.isoformat()]  # fmt: skip
    processes = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(PROCESSES)
    ]
    reported = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, f"sweep failed:\n{out}\n{err}"
        reported += swept(out).escalated
    return reported


def escalation_levels(caller, consult_id) -> list[str]:
    response = caller.get(f"/api/consults/{consult_id}")
    assert response.status_code == 200, response.json
    return [e["detail"] for e in response.json["timeline"] if e["kind"] == "escalated"]


def test_three_simultaneous_sweeps_fire_each_escalation_exactly_once(
    hospital, new_consult, database_url
):
    # on call: castillo primary, nguyen backup; okafor is the chief
    for who, role in ((hospital.castillo, "primary"), (hospital.nguyen, "backup")):
        scheduled(hospital.okafor, who, role, at(-60), at(24 * 60))
    # 30 stat consults at T0: 18 left pending, 12 claimed by nguyen at T0+5m
    with clock.frozen_at(T0):
        consults = [new_consult()["id"] for _ in range(30)]
    pending, claimed = consults[:18], consults[18:]
    with clock.frozen_at(at(5)):
        for consult_id in claimed:
            response = hospital.nguyen.post(f"/api/consults/{consult_id}/claim")
            assert response.status_code == 200, response.json

    rounds = [
        (at(20), {(c, 1) for c in pending}),  # claim ladder, level 1
        # claim ladder level 2 (due T0+30m) and answer ladder level 1 (T0+60m)
        (at(60), {(c, 2) for c in pending} | {(c, 1) for c in claimed}),
        (at(80), {(c, 2) for c in claimed}),  # answer ladder, level 2
        (at(600), set()),  # nothing left to fire
    ]
    for instant, expected in rounds:
        reported = sweep_together(database_url, instant)

        assert len(reported) == len(expected), (instant, Counter(reported))
        assert set(reported) == expected, instant

    for consult_id in pending:
        assert escalation_levels(hospital.patel, consult_id) == [
            "level 1: not claimed by its deadline",
            "level 2: not claimed by its deadline",
        ], consult_id
    for consult_id in claimed:
        assert escalation_levels(hospital.patel, consult_id) == [
            "level 1: not answered by its deadline",
            "level 2: not answered by its deadline",
        ], consult_id
    listing = hospital.patel.get("/api/consults").json
    assert {c["id"]: c["escalation_level"] for c in listing} == {c: 2 for c in consults}
    # each escalation alerted its people once: the chief once per consult
    chief_alerts = Counter(
        n["consult_id"]
        for n in hospital.okafor.get("/api/notifications?page_size=200").json
        if n["kind"] == "escalated"
    )
    assert chief_alerts == Counter(consults)
    # the backup: level 1 of every consult (claim ladder or answer ladder)
    backup_alerts = Counter(
        n["consult_id"]
        for n in hospital.nguyen.get("/api/notifications?page_size=200").json
        if n["kind"] == "escalated"
    )
    assert backup_alerts == Counter(consults)
