"""The access audit: every disclosure of a consult's patient data is recorded, searchable
by its chiefs and admins, and cannot be rewritten."""

import csv
import io

import pytest
from conftest import ON_POSTGRES
from helpers import PASSWORD, csrf_token, sign_in
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from broker import accounts
from broker.extensions import db


def signed_in(app, email):
    browser = app.test_client()
    sign_in(browser, email)
    return browser


def log_of(hospital, consult_id) -> list[tuple[int, str]]:
    entries = hospital.admin.get(f"/api/consults/{consult_id}/access-log").json
    return [(e["user"]["id"], e["via"]) for e in entries]


class AuditWrites:
    """Counts the statements that write the audit table, on the app's engine."""

    def __init__(self, engine):
        self.engine = engine
        self.count = 0

    def _seen(self, conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO CONSULT_READS"):
            self.count += 1

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._seen)


def test_a_queue_page_of_fifty_consults_is_recorded_in_one_write(
    hospital, app, new_consult
):
    ids = [new_consult(patient_ref=f"MRN-{n}")["id"] for n in range(50)]
    browser = signed_in(app, "castillo@h.test")

    with app.app_context():
        engine = db.engine
    with AuditWrites(engine) as writes:
        assert browser.get("/queue/radiology").status_code == 200

    assert writes.count == 1
    found = hospital.admin.get(
        "/api/audit", query_string={"user_id": hospital.castillo.user_id}
    ).json
    assert sorted(r["consult_id"] for r in found) == sorted(ids)
    assert {r["via"] for r in found} == {"page-queue"}


def test_each_way_of_showing_a_consult_is_recorded_with_how(hospital, app, new_consult):
    consult_id = new_consult()["id"]
    browser = signed_in(app, "castillo@h.test")
    patel = signed_in(app, "patel@h.test")

    hospital.castillo.get("/api/consults")
    hospital.castillo.get(f"/api/consults/{consult_id}")
    hospital.castillo.post(f"/api/consults/{consult_id}/claim")
    browser.get(f"/consults/{consult_id}")
    browser.get(f"/consults/{consult_id}?fragment=1")
    browser.get("/queue/radiology?fragment=1")
    patel.get("/consults")

    castillo, patel_id = hospital.castillo.user_id, hospital.patel.user_id
    assert log_of(hospital, consult_id)[::-1] == [
        (castillo, "api-list"),
        (castillo, "api"),
        (castillo, "api-action"),
        (castillo, "page"),
        (castillo, "page"),
        (castillo, "page-queue"),
        (patel_id, "page-my-consults"),
    ]


def test_a_list_records_only_the_page_it_answered(hospital, new_consult):
    ids = [new_consult(patient_ref=f"MRN-{n}")["id"] for n in range(3)]

    hospital.castillo.get("/api/consults", query_string={"page_size": 1, "page": 2})

    shown = hospital.admin.get(
        "/api/audit", query_string={"user_id": hospital.castillo.user_id}
    ).json
    assert [r["consult_id"] for r in shown] == [ids[1]]


def test_the_audit_is_searched_by_patient_user_consult_and_dates(hospital, new_consult):
    first = new_consult(patient_ref="MRN-AAA")["id"]
    second = new_consult(patient_ref="MRN-BBB")["id"]
    hospital.castillo.get(f"/api/consults/{first}")
    hospital.nguyen.get(f"/api/consults/{second}")

    def search(**params):
        response = hospital.okafor.get("/api/audit", query_string=params)
        assert response.status_code == 200, response.json
        return {(r["consult_id"], r["user"]["id"]) for r in response.json}

    castillo, nguyen = hospital.castillo.user_id, hospital.nguyen.user_id
    assert search(patient_ref="MRN-AAA") == {(first, castillo)}
    assert search(user_id=nguyen) == {(second, nguyen)}
    assert search(consult_id=second) == {(second, nguyen)}
    assert search(patient_ref="MRN-AAA", user_id=nguyen) == set()
    assert (
        search(**{"from": "2000-01-01T00:00:00Z", "to": "2001-01-01T00:00:00Z"})
        == set()
    )
    assert search(**{"from": "2000-01-01T00:00:00Z"}) == {
        (first, castillo),
        (second, nguyen),
    }
    bad = hospital.okafor.get(
        "/api/audit",
        query_string={"from": "2030-01-01T00:00:00Z", "to": "2029-01-01T00:00:00Z"},
    )
    assert bad.status_code == 422


def test_a_chief_searches_only_their_departments_and_others_not_at_all(
    hospital, app, new_consult
):
    with app.app_context():
        accounts.add_member(
            accounts.department_by_slug("cardiology"),
            accounts.user_by_email("lee@h.test"),
            chief=True,
        )
    radiology = new_consult()["id"]
    cardiology = new_consult(department="cardiology")["id"]
    hospital.admin.get(f"/api/consults/{radiology}")
    hospital.admin.get(f"/api/consults/{cardiology}")

    def consults_in(caller):
        return {r["consult_id"] for r in caller.get("/api/audit").json}

    assert consults_in(hospital.okafor) == {radiology}
    assert consults_in(hospital.lee) == {cardiology}
    assert consults_in(hospital.admin) == {radiology, cardiology}
    for who in ("castillo", "patel", "outsider"):
        assert getattr(hospital, who).get("/api/audit").status_code == 403, who


def test_the_audit_as_csv_guards_against_spreadsheet_formulas(
    hospital, app, new_consult
):
    with app.app_context():
        user = accounts.create_user("sneaky@h.test", '=HYPERLINK("x")', PASSWORD)
        accounts.add_member(accounts.department_by_slug("radiology"), user)
        token = accounts.issue_token(user)
    consult_id = new_consult()["id"]
    app.test_client().get(
        f"/api/consults/{consult_id}", headers={"Authorization": f"Bearer {token}"}
    )

    response = hospital.okafor.get("/api/audit", query_string={"format": "csv"})

    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0] == ["at", "consult_id", "user_id", "user_name", "user_email", "via"]
    assert rows[1][1:] == [
        str(consult_id),
        str(user.id),
        '\'=HYPERLINK("x")',
        "sneaky@h.test",
        "api",
    ]
    assert "MRN" not in response.text


def test_the_audit_page_searches_by_post_so_no_patient_reference_is_in_a_url(
    hospital, app, new_consult
):
    consult_id = new_consult(patient_ref="MRN-PAGE-1")["id"]
    hospital.castillo.get(f"/api/consults/{consult_id}")
    chief = signed_in(app, "okafor@h.test")
    page = chief.get("/audit")
    assert page.status_code == 200

    found = chief.post(
        "/audit",
        data={"csrf_token": csrf_token(page.text), "patient_ref": "MRN-PAGE-1"},
    )

    assert found.status_code == 200
    assert f"#{consult_id}" in found.text and "Dr Castillo" in found.text
    assert signed_in(app, "castillo@h.test").get("/audit").status_code == 403


def test_the_audit_refuses_to_be_changed_or_deleted(hospital, app, new_consult):
    consult_id = new_consult()["id"]
    hospital.castillo.get(f"/api/consults/{consult_id}")

    with app.app_context():
        for statement in (
            "UPDATE consult_reads SET via = 'nothing'",
            "DELETE FROM consult_reads",
        ):
            with pytest.raises(DBAPIError, match="append-only"):
                db.session.execute(text(statement))
            db.session.rollback()
    assert log_of(hospital, consult_id) == [(hospital.castillo.user_id, "api")]


@pytest.mark.postgres
def test_on_postgresql_a_trigger_refuses_update_and_delete_of_the_audit(
    hospital, app, new_consult
):
    assert ON_POSTGRES
    consult_id = new_consult()["id"]
    hospital.castillo.get(f"/api/consults/{consult_id}")

    with app.app_context():
        trigger = db.session.scalar(
            text(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'consult_reads'::regclass"
                " AND NOT tgisinternal"
            )
        )
        assert trigger == "consult_reads_append_only"
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text("DELETE FROM consult_reads"))
        db.session.rollback()
