"""Staff come and go (issue 14): administration over the API and the command line,
and leaving without orphaning a consult (SPEC rules 1 and 7)."""

from datetime import UTC, datetime, timedelta

import pytest
from conftest import PASSWORD

NOW = datetime.now(UTC).replace(microsecond=0)


def shift(caller, who, role="primary", hours_from=-1, hours_to=8, slug="radiology"):
    response = caller.post(
        f"/api/departments/{slug}/shifts",
        json={
            "user_id": who.user_id,
            "role": role,
            "starts_at": (NOW + timedelta(hours=hours_from)).isoformat(),
            "ends_at": (NOW + timedelta(hours=hours_to)).isoformat(),
        },
    )
    assert response.status_code == 201, response.json
    return response.json


def claimed_by(caller, new_consult) -> dict:
    consult = new_consult()
    assert caller.post(f"/api/consults/{consult['id']}/claim").status_code == 200
    return consult


def deactivate(admin, who):
    return admin.client.patch(
        f"/api/users/{who.user_id}", headers=admin.headers, json={"active": False}
    )


def timeline(admin, consult_id) -> list[dict]:
    return admin.get(f"/api/consults/{consult_id}").json["timeline"]


def alerts(caller) -> list[dict]:
    return caller.get("/api/notifications").json


# Administration


def test_an_admin_creates_a_user_and_a_department_and_a_chief_adds_members(hospital):
    created = hospital.admin.post(
        "/api/users",
        json={
            "email": "Ito@H.test",
            "name": "Dr Ito",
            "password": "a long pass phrase",
        },
    )
    assert created.status_code == 201, created.json
    assert created.json["email"] == "ito@h.test"
    assert created.json["departments"] == []
    department = hospital.admin.post(
        "/api/departments", json={"slug": "neurology", "name": "Neurology"}
    )
    assert department.status_code == 201, department.json
    assert set(department.json["policy"]) == {"stat", "urgent", "routine"}

    ito = created.json["id"]
    # Neurology has no chief yet: an admin makes Dr Lee its chief, who adds Dr Ito.
    hospital.admin.put(f"/api/departments/neurology/members/{hospital.lee.user_id}",
                       json={"chief": True})  # fmt: skip
    added = hospital.lee.put(f"/api/departments/neurology/members/{ito}", json={})
    assert added.status_code == 200, added.json
    assert added.json == {"id": ito, "name": "Dr Ito", "email": "ito@h.test",
                          "chief": False}  # fmt: skip
    token = hospital.admin.client.post(
        "/api/tokens", json={"email": "ito@h.test", "password": "a long pass phrase"}
    )
    me = hospital.admin.client.get(
        "/api/me", headers={"Authorization": f"Bearer {token.json['token']}"}
    )
    assert me.json["departments"] == ["neurology"]


@pytest.mark.parametrize(
    "call",
    [
        ("post", "/api/users", {"email": "x@h.test", "name": "X"}),
        ("post", "/api/departments", {"slug": "x", "name": "X"}),
        ("get", "/api/admin-log", None),
        ("get", "/api/users", None),
    ],
)
def test_only_administrators_manage_users_and_departments(hospital, call):
    method, path, body = call
    response = getattr(hospital.okafor, method)(
        path, **({"json": body} if body else {})
    )
    assert response.status_code == 403
    assert "administrator" in response.json["message"]


def test_a_chief_manages_only_their_own_department(hospital):
    response = hospital.okafor.put(
        f"/api/departments/cardiology/members/{hospital.patel.user_id}", json={}
    )
    assert response.status_code == 403
    assert "chief of Cardiology" in response.json["message"]
    response = hospital.castillo.put(
        f"/api/departments/radiology/members/{hospital.patel.user_id}", json={}
    )
    assert response.status_code == 403


def test_a_chief_marks_and_unmarks_chiefs_but_never_the_last_one(hospital):
    path = f"/api/departments/radiology/members/{hospital.castillo.user_id}"
    assert hospital.okafor.put(path, json={"chief": True}).json["chief"] is True
    okafor = f"/api/departments/radiology/members/{hospital.okafor.user_id}"
    assert hospital.castillo.put(okafor, json={"chief": False}).status_code == 200
    refused = hospital.castillo.put(path, json={"chief": False})
    assert refused.status_code == 409
    assert "last chief of Radiology" in refused.json["message"]


def test_bad_input_names_every_field(hospital):
    response = hospital.admin.post(
        "/api/users", json={"email": "nope", "name": "", "password": "short"}
    )
    assert response.status_code == 422
    assert {"email", "name"} <= set(response.json["errors"])
    weak = hospital.admin.post(
        "/api/users",
        json={"email": "ito@h.test", "name": "Dr Ito", "password": "password1234"},
    )
    assert weak.status_code == 422
    assert "common" in weak.json["errors"]["password"][0]
    own = hospital.admin.post(
        "/api/users",
        json={"email": "ito@h.test", "name": "Dr Ito", "password": "ito@h.test-2026"},
    )
    assert "email" in own.json["errors"]["password"][0]


def test_every_change_is_in_the_admin_log(hospital):
    hospital.admin.post("/api/departments", json={"slug": "neuro", "name": "Neuro"})
    hospital.admin.client.patch(
        "/api/departments/neuro",
        headers=hospital.admin.headers,
        json={"name": "Neurology"},
    )
    log = hospital.admin.get("/api/admin-log").json
    assert [e["kind"] for e in log[:2]] == ["department_renamed", "department_created"]
    assert log[0]["actor"]["name"] == "Admin"
    assert log[0]["department"] == "neuro"
    assert log[0]["detail"] == "Neuro → Neurology"


# Leaving never orphans a consult


def test_deactivating_an_owner_hands_their_consults_to_the_primary_on_call(
    hospital, new_consult
):
    shift(hospital.okafor, hospital.nguyen)
    consult = claimed_by(hospital.castillo, new_consult)
    before = hospital.admin.get(f"/api/consults/{consult['id']}").json

    response = deactivate(hospital.admin, hospital.castillo)

    assert response.status_code == 200, response.json
    assert response.json["active"] is False
    after = hospital.admin.get(f"/api/consults/{consult['id']}").json
    assert after["owner"]["name"] == "Dr Nguyen"
    assert after["status"] == "claimed"
    assert (after["claim_due_at"], after["answer_due_at"]) == (
        before["claim_due_at"],
        before["answer_due_at"],
    )
    last = after["timeline"][-1]
    assert last["kind"] == "assigned"
    assert last["actor"] is None
    assert "Dr Castillo's account was deactivated" in last["body"]
    assert after["timeline"][:-1] == before["timeline"]
    assert any(
        n["consult_id"] == consult["id"] and n["kind"] == "assigned"
        for n in alerts(hospital.nguyen)
    )


def test_a_deactivated_user_cannot_sign_in_nor_use_a_token(hospital, client):
    assert deactivate(hospital.admin, hospital.castillo).status_code == 200
    assert hospital.castillo.get("/api/me").status_code == 401
    response = client.post(
        "/api/tokens", json={"email": "castillo@h.test", "password": PASSWORD}
    )
    assert response.status_code == 401


def test_without_a_primary_on_call_the_chief_takes_the_consults(hospital, new_consult):
    consult = claimed_by(hospital.castillo, new_consult)
    assert deactivate(hospital.admin, hospital.castillo).status_code == 200
    after = hospital.admin.get(f"/api/consults/{consult['id']}").json
    assert after["owner"]["name"] == "Dr Okafor"


def test_leaving_removes_future_shifts_and_alerts_the_chief(hospital):
    shift(hospital.okafor, hospital.castillo, hours_from=24, hours_to=36)
    response = hospital.okafor.delete(
        f"/api/departments/radiology/members/{hospital.castillo.user_id}"
    )
    assert response.status_code == 204
    listed = hospital.okafor.get("/api/departments/radiology/shifts").json
    assert listed == []
    gap = [n for n in alerts(hospital.okafor) if n["kind"] == "shift_gap"]
    assert len(gap) == 1
    assert "Dr Castillo left Radiology" in gap[0]["message"]


def test_removing_a_member_withdraws_handoffs_offered_to_them(hospital, new_consult):
    consult = claimed_by(hospital.nguyen, new_consult)
    hospital.nguyen.post(
        f"/api/consults/{consult['id']}/handoff",
        json={"to_user_id": hospital.castillo.user_id, "note": "Over to you."},
    )
    response = hospital.okafor.delete(
        f"/api/departments/radiology/members/{hospital.castillo.user_id}"
    )
    assert response.status_code == 204
    after = hospital.admin.get(f"/api/consults/{consult['id']}").json
    assert after["handoff"] is None
    assert after["owner"]["name"] == "Dr Nguyen"
    assert after["timeline"][-1]["kind"] == "handoff_declined"
    assert after["timeline"][-1]["actor"] is None


def test_removing_a_member_hands_on_their_consults_there(hospital, new_consult):
    consult = claimed_by(hospital.castillo, new_consult)
    response = hospital.okafor.delete(
        f"/api/departments/radiology/members/{hospital.castillo.user_id}"
    )
    assert response.status_code == 204
    after = hospital.admin.get(f"/api/consults/{consult['id']}").json
    assert after["owner"]["name"] == "Dr Okafor"
    assert "Dr Castillo left Radiology" in after["timeline"][-1]["body"]
    # Their access ends with it (they sign in again to see their other departments).
    assert hospital.castillo.get(f"/api/consults/{consult['id']}").status_code == 401


def test_the_last_member_or_chief_cannot_leave(hospital):
    refused = deactivate(hospital.admin, hospital.lee)
    assert refused.status_code == 409
    assert "last member of Cardiology" in refused.json["message"]
    refused = deactivate(hospital.admin, hospital.okafor)
    assert refused.status_code == 409
    assert "last chief of Radiology" in refused.json["message"]
    assert hospital.lee.get("/api/me").status_code == 200


def test_consults_a_leaver_requested_stay_open_and_an_admin_may_cancel_them(
    hospital, new_consult
):
    consult = new_consult()
    assert deactivate(hospital.admin, hospital.patel).status_code == 200
    assert hospital.castillo.get(f"/api/consults/{consult['id']}").json["status"] == (
        "pending"
    )
    cancelled = hospital.admin.post(
        f"/api/consults/{consult['id']}/cancel",
        json={"reason": "The requester left the hospital."},
    )
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["status"] == "cancelled"


def test_a_reactivated_user_signs_in_again_in_no_department(hospital, client):
    assert deactivate(hospital.admin, hospital.castillo).status_code == 200
    response = hospital.admin.client.patch(
        f"/api/users/{hospital.castillo.user_id}",
        headers=hospital.admin.headers,
        json={"active": True},
    )
    assert response.status_code == 200
    assert response.json["departments"] == []
    token = client.post(
        "/api/tokens", json={"email": "castillo@h.test", "password": PASSWORD}
    )
    assert token.status_code == 201


def test_the_command_line_deactivates_a_user(app, hospital, new_consult):
    consult = claimed_by(hospital.castillo, new_consult)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["users", "deactivate", "--email", "castillo@h.test"])
    assert result.exit_code == 0, result.output
    assert hospital.castillo.get("/api/me").status_code == 401
    owner = hospital.admin.get(f"/api/consults/{consult['id']}").json["owner"]
    assert owner["name"] == "Dr Okafor"
    result = runner.invoke(args=["users", "deactivate", "--email", "lee@h.test"])
    assert result.exit_code == 1
    assert "last member of Cardiology" in result.output


# Passwords


def test_changing_ones_password_ends_every_other_token(hospital, client):
    other = client.post(
        "/api/tokens", json={"email": "castillo@h.test", "password": PASSWORD}
    ).json["token"]
    wrong = hospital.castillo.put(
        "/api/me/password",
        json={"current_password": "nope", "new_password": "password"},
    )
    assert wrong.status_code == 422
    assert set(wrong.json["errors"]) == {"current_password", "new_password"}
    changed = hospital.castillo.put(
        "/api/me/password",
        json={"current_password": PASSWORD, "new_password": "violet tractor museum"},
    )
    assert changed.status_code == 204
    assert hospital.castillo.get("/api/me").status_code == 200
    assert (
        client.get("/api/me", headers={"Authorization": f"Bearer {other}"}).status_code
        == 401
    )


def test_after_a_reset_the_user_must_set_a_new_password(hospital, client):
    reset = hospital.admin.post(
        f"/api/users/{hospital.castillo.user_id}/password-reset"
    )
    assert reset.status_code == 201
    temporary = reset.json["temporary_password"]
    assert hospital.castillo.get("/api/me").status_code == 401
    token = client.post(
        "/api/tokens", json={"email": "castillo@h.test", "password": temporary}
    )
    assert token.status_code == 401
    assert "new password" in token.json["message"]


@pytest.mark.parametrize("app_settings", [{"LOCAL_PASSWORDS": False}])
def test_password_sign_in_can_be_turned_off(hospital, client):
    response = client.post(
        "/api/tokens", json={"email": "castillo@h.test", "password": PASSWORD}
    )
    assert response.status_code == 401
    assert "identity provider" in response.json["message"]
