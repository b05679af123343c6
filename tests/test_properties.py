"""Property-based test (issue #7): random users take random actions on random consults.

A Hypothesis state machine drives the HTTP API through the test client, with the
bearer tokens of eight users: a requester, three radiologists (one the chief),
two cardiologists (one the chief), an admin and an outsider; anyone may request.
After every step it checks, against what the API reports (read as admin) and a
small model of what the rules of SPEC.md say the consult should be:

1. never two owners: a claim of an owned consult is refused (409, or 404 for
   whoever may not see it) and changes nothing, the timeline shows a claim only
   while no one owns the consult, and only the owner finds it under
   `GET /api/consults?owner=me` (asked, after each action that changes the owner
   or the offer, of the caller and the owner and offered colleague before and
   after it; at the end of each example, of everyone);
2. an answer only from the owner: a successful answer came from the owner the
   model and the consult had, and replaying the timeline, each `answered` event's
   actor owned the consult at that moment;
3. status and owner always consistent: pending has no owner, claimed, answered
   and closed have one, a handoff is on offer only while owned (and not to the
   owner); status, owner, offer and department are what the model says and what
   replaying the timeline gives;
4. the timeline: a successful action appends exactly one event, of the kind and
   actor the action implies, and rewrites nothing before it; a refused call (a
   403, 404, 409 or 422, a second claim, an invalid new consult) adds none and
   changes nothing;
5. visibility never widens: after every change, `GET /api/consults/<id>` is a
   404 for whoever is not an admin, its requester or a member of its current
   department; the listings show it exactly to those who may (checked when it
   appears or changes department, and at the end); and an action on it by
   anyone else is a 404 (or a 422 for input that fails validation before the
   consult is looked up);
6. the actions agree with `registry.available_actions`, which the pages use to
   offer buttons: given valid input, an action succeeds iff its name was in
   available_actions for that caller and consult just before; and after every
   change, available_actions for every caller is what the rules allow them
   (so a button no one happens to press is checked too).

The `app` fixture is function-scoped, so the machine runs inside one test with
`run_state_machine_as_test`; every example creates its own consults and checks
only those, so examples do not disturb each other.
"""

import sys
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from broker import accounts
from broker.consults import registry
from broker.consults.queries import WITH_PEOPLE
from broker.extensions import db
from broker.models import Consult, User

STATUSES = {"pending", "claimed", "answered", "closed", "cancelled"}
OPEN = {"pending", "claimed", "answered"}
OWNED = {"claimed", "answered"}
DEPARTMENTS = ("radiology", "cardiology")
ACTIONS = (
    "claim",
    "release",
    "assign",
    "handoff",
    "accept",
    "decline",
    "answer",
    "message",
    "redirect",
    "close",
    "cancel",
)
# What `act` draws from, the more useful actions repeated so that examples reach
# answers, handoffs, follow-ups and closes. The list does not depend on the state:
# when Hypothesis shrinks a failure by dropping earlier steps, the later steps
# still draw the same actions.
WEIGHTED_ACTIONS = (
    *("answer", "claim", "handoff", "message", "close", "answer", "accept"),
    *("claim", "message", "decline", "release", "assign", "redirect", "cancel"),
    *("answer", "claim", "handoff", "message", "close", "handoff", "answer"),
)
# The statuses in which each action is tried, mostly: where it makes sense, and
# for the rarer ones also where someone might try it too late (a release, an
# assign or a redirect after the answer). Accept and decline: with a handoff on offer.
FITTING = {
    "claim": {"pending"},
    "release": OWNED,
    "assign": OPEN,
    "handoff": OWNED,
    "accept": OWNED,
    "decline": OWNED,
    "answer": {"claimed"},
    "message": OPEN,
    "redirect": OPEN,
    "close": {"answered"},
    "cancel": OPEN,
}
EVENT_KINDS = {
    "claim": "claimed",
    "release": "released",
    "assign": "assigned",
    "handoff": "handoff_offered",
    "accept": "handoff_accepted",
    "decline": "handoff_declined",
    "answer": "answered",
    "redirect": "redirected",
    "close": "closed",
    "cancel": "cancelled",
}
PATHS = {
    "accept": "handoff/accept",
    "decline": "handoff/decline",
    "message": "messages",
}
CREATE_FAULTS = ["department", "urgency", "patient_ref", "question"]
UNKNOWN_USER_ID = 987_654
MAX_OPEN = 3  # open consults at once in an example
MAX_CONSULTS = 8  # consults in all in an example

SETTINGS = settings(
    max_examples=60,
    stateful_step_count=20,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI failures reproduce
    report_multiple_bugs=False,  # shrink the first failure only: quicker, clearer
    # No explain phase: its tracing made a failing run take minutes, not seconds.
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


@dataclass
class ModelConsult:
    """What the consult should be, as far as the rules say."""

    id: int
    requester: str
    department: str
    status: str = "pending"
    owner: str | None = None
    handoff_to: str | None = None
    events: int = 1  # `created`


@dataclass
class World:
    """The fixtures the machine works with: the app and the signed-in callers.

    Staff come and go within an example (deactivation, reactivation, leaving and
    joining a department): `members` and `inactive` say who is where now, and
    each example starts again from `base_members` with everyone active.
    """

    app: object
    everyone: dict  # name -> conftest.Caller
    members: dict  # department slug -> set of names
    chiefs: dict  # department slug -> set of names
    admins: set
    names_by_id: dict = field(default_factory=dict)
    base_members: dict = field(default_factory=dict)
    inactive: set = field(default_factory=set)

    def __post_init__(self):
        self.names_by_id = {c.user_id: name for name, c in self.everyone.items()}
        self.base_members = {d: set(names) for d, names in self.members.items()}

    @property
    def callers(self) -> dict:
        """The active callers: a deactivated user can make no call at all."""
        return {n: c for n, c in self.everyone.items() if n not in self.inactive}

    def new_token(self, name: str) -> None:
        """Leaving a department ends the user's tokens: they sign in again."""
        with self.app.app_context():
            user = db.session.get(User, self.everyone[name].user_id)
            self.everyone[name].token = accounts.issue_token(user)


class ConsultMachine(RuleBasedStateMachine):
    world: World  # set by the test, on a subclass

    def __init__(self):
        super().__init__()
        self.restore_the_staff()
        self.model: dict[int, ModelConsult] = {}
        self.known: dict[int, dict] = {}  # id -> the consult as admin last read it
        self.changed: int | None = None  # the consult the last step changed
        self.moved = False  # ... and whether it was created or changed department

    # -- helpers ---------------------------------------------------------

    @property
    def admin(self):
        return self.world.callers["admin"]

    def caller(self, name):
        return self.world.callers[name]

    def may_see(self, name: str, consult: ModelConsult) -> bool:
        return (
            name in self.world.admins
            or name == consult.requester
            or name in self.world.members[consult.department]
        )

    def read(self, consult_id: int) -> dict:
        """The consult with its timeline, as admin sees it; remembered."""
        response = self.admin.get(f"/api/consults/{consult_id}")
        assert response.status_code == 200, response.json
        self.known[consult_id] = response.json
        return response.json

    def listed(self, caller, filters: str = "") -> list[dict]:
        """The newest consults the caller may see: this example's are the newest."""
        response = caller.get(f"/api/consults?page_size={MAX_CONSULTS}&{filters}")
        assert response.status_code == 200, response.json
        return response.json

    def buttons(self, consult_id: int, names) -> dict[str, set[str]]:
        """The buttons (registry.available_actions) of these callers, as it is now."""
        with self.world.app.app_context():
            consult = db.session.get(Consult, consult_id, options=WITH_PEOPLE)
            return {
                name: {
                    action.name
                    for action in registry.available_actions(
                        db.session.get(User, self.caller(name).user_id), consult
                    )
                }
                for name in names
            }

    def user_name(self, user: dict | None) -> str | None:
        return None if user is None else self.world.names_by_id[user["id"]]

    def summary(self, consult: dict) -> dict:
        """A consult as a failure message shows it: who and what, no timestamps."""
        handoff = consult["handoff"]
        return {
            "status": consult["status"],
            "owner": self.user_name(consult["owner"]),
            "offered to": self.user_name(handoff and handoff["to"]),
            "department": consult["department"],
            "timeline": [
                (e["kind"], self.user_name(e["actor"]))
                for e in consult.get("timeline", [])
            ],
        }

    @staticmethod
    def mostly(data, label: str) -> bool:
        return data.draw(st.sampled_from([True, True, True, False]), label=label)

    @staticmethod
    def fits(model: ModelConsult, action: str) -> bool:
        if action in ("accept", "decline") and model.handoff_to is None:
            return False
        return model.status in FITTING[action]

    def pick_caller(self, data, natural: set[str]) -> str:
        """Mostly someone the action is meant for (when there is one), else anyone."""
        natural = natural & set(self.world.callers)
        if natural and self.mostly(data, "natural caller"):
            return data.draw(st.sampled_from(sorted(natural)), label="caller")
        return data.draw(st.sampled_from(sorted(self.world.callers)), label="caller")

    def room_for_another(self) -> bool:
        open_ = [m for m in self.model.values() if m.status in OPEN]
        return len(open_) < MAX_OPEN and len(self.model) < MAX_CONSULTS

    # -- rules -----------------------------------------------------------

    @precondition(lambda self: self.room_for_another())
    @rule(data=st.data())
    def create(self, data):
        name = data.draw(st.sampled_from(sorted(self.world.callers)), label="requester")
        department = data.draw(st.sampled_from(DEPARTMENTS), label="department")
        payload = {
            "department": department,
            "urgency": data.draw(
                st.sampled_from(["stat", "urgent", "routine"]), label="urgency"
            ),
            "patient_ref": "MRN-PROP-1",
            "question": "Is this what it looks like?",
        }
        fault = (
            None
            if self.mostly(data, "valid")
            else data.draw(st.sampled_from(CREATE_FAULTS), label="invalid field")
        )
        if fault == "department":
            payload["department"] = "no-such-department"
        elif fault == "urgency":
            payload["urgency"] = "whenever"
        elif fault == "patient_ref":
            payload["patient_ref"] = "   "
        elif fault == "question":
            del payload["question"]
        newest_before = self.newest_consult_id() if fault else None
        response = self.caller(name).post("/api/consults", json=payload)
        self.changed, self.moved = None, False
        if fault is not None:
            assert response.status_code == 422, (fault, response.status_code)
            assert fault in response.json["errors"], response.json
            assert self.newest_consult_id() == newest_before
            return
        assert response.status_code == 201, response.json
        consult = response.json
        assert consult["status"] == "pending" and consult["owner"] is None
        self.model[consult["id"]] = ModelConsult(consult["id"], name, department)
        self.read(consult["id"])
        self.changed, self.moved = consult["id"], True

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def act(self, data):
        """Someone takes an action: mostly on a consult where it makes sense, and
        mostly someone it is meant for (or who might be tempted: see natural_callers).
        """
        models = self.model.values()
        useful = [a for a in WEIGHTED_ACTIONS if any(self.fits(m, a) for m in models)]
        if useful and self.mostly(data, "useful action"):
            action = data.draw(st.sampled_from(useful), label="action")
        else:
            action = data.draw(st.sampled_from(WEIGHTED_ACTIONS), label="action")
        fitting = sorted(i for i, m in self.model.items() if self.fits(m, action))
        if fitting and self.mostly(data, "where it fits"):
            ids = fitting
        else:
            ids = sorted(self.model)
        model = self.model[data.draw(st.sampled_from(ids), label="consult")]
        name = self.pick_caller(data, self.natural_callers(model, action))
        self.perform(data, model, action, name)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def press_a_button(self, data):
        """Someone presses a button the page offers them, or one it does not.

        Drawn from available_actions itself, over every caller, so each side of
        the agreement is tried for every kind of caller, not only for those the
        action is meant for.
        """
        model = self.model[
            data.draw(st.sampled_from(sorted(self.model)), label="consult")
        ]
        callers = sorted(self.world.callers)
        shown = self.buttons(model.id, callers)
        offered = [(n, a) for n in callers for a in ACTIONS if a in shown[n]]
        refused = [(n, a) for n in callers for a in ACTIONS if a not in shown[n]]
        pick = (
            offered
            if offered and data.draw(st.booleans(), label="offered")
            else refused
        )
        name, action = data.draw(st.sampled_from(pick), label="caller, action")
        self.perform(data, model, action, name)

    @precondition(lambda self: any(m.handoff_to for m in self.model.values()))
    @rule(data=st.data())
    def respond_to_handoff(self, data):
        """A handoff on offer is mostly answered by its colleague, soon."""
        on_offer = sorted(i for i, m in self.model.items() if m.handoff_to)
        model = self.model[data.draw(st.sampled_from(on_offer), label="consult")]
        action = data.draw(
            st.sampled_from(["accept", "decline", "accept"]), label="action"
        )
        name = self.pick_caller(data, {model.handoff_to})
        self.perform(data, model, action, name)

    @rule(data=st.data())
    def staff_change(self, data):
        """Someone leaves a department, is deactivated, reactivated or joins one.

        Leaving never orphans a consult (SPEC rules 1 and 7): each open consult
        the leaver owned there goes to its chief (no one is on call here) by an
        `assigned` event of the system, a handoff offered to them is withdrawn,
        and nothing else changes on any timeline. The last chief cannot leave.
        """
        change = data.draw(
            st.sampled_from(["leave", "deactivate", "reactivate", "join"]),
            label="staff change",
        )
        department = data.draw(st.sampled_from(DEPARTMENTS), label="department")
        managers = self.world.chiefs[department] | self.world.admins
        if change == "reactivate":
            if not self.world.inactive:
                return
            name = data.draw(st.sampled_from(sorted(self.world.inactive)), label="who")
            by = "admin"
        else:
            pool = {
                "leave": self.world.members[department],
                "deactivate": set(self.world.callers),
                "join": set(self.world.callers) - self.world.members[department],
            }[change]
            if not pool:
                return
            # Mostly someone who holds a consult: an owner, or a colleague offered one.
            holding = {m.owner for m in self.model.values() if m.status in OPEN}
            holding |= {m.handoff_to for m in self.model.values()}
            if change != "join" and pool & holding and self.mostly(data, "holder"):
                pool = pool & holding  # a new set: `pool` may be the world's own
            name = data.draw(st.sampled_from(sorted(pool)), label="who")
            natural = self.world.admins if change == "deactivate" else managers
            by = self.pick_caller(data, natural & set(self.world.callers))
        self.changed, self.moved = None, False
        before = {i: self.known[i] for i in self.model}
        code = self.staff_call(change, department, name, by)
        step = {"change": change, "who": name, "by": by, "code": code}
        allowed = by in (self.world.admins if change != "leave" and change != "join"
                         else managers)  # fmt: skip
        if not allowed:
            assert code == 403, step
        elif change in ("leave", "deactivate"):
            leaving = [d for d in DEPARTMENTS if name in self.world.members[d]]
            if change == "leave":
                leaving = [department]
            last_chief = any(name in self.world.chiefs[d] for d in leaving)
            refused = last_chief or (
                change == "deactivate" and name in self.world.admins
            )
            assert code == (
                409 if refused else 200 if change == "deactivate" else 204
            ), step
        else:
            assert code == 200, step
        if code >= 400:
            for consult_id, known in before.items():
                assert self.read(consult_id) == known, ("refusal changed it", step)
            return
        if change in ("leave", "deactivate"):
            for d in leaving:
                self.world.members[d].discard(name)
                self.hand_on(name, d)
            if change == "deactivate":
                self.world.inactive.add(name)
            else:
                self.world.new_token(name)
        elif change == "reactivate":
            self.world.inactive.discard(name)
            self.world.new_token(name)
        else:
            self.world.members[department].add(name)
        for consult_id, known in before.items():
            after = self.read(consult_id)
            grown = after["timeline"][: len(known["timeline"])]
            assert grown == known["timeline"], ("timeline rewritten", step)
            added = after["timeline"][len(known["timeline"]) :]
            assert all(e["actor"] is None for e in added), (step, added)
        self.check_listings()
        self.check_owner_lists(self.model.values(), self.world.callers)

    def staff_call(self, change: str, department: str, name: str, by: str) -> int:
        caller, user_id = self.caller(by), self.world.everyone[name].user_id
        members = f"/api/departments/{department}/members/{user_id}"
        if change == "leave":
            return caller.delete(members).status_code
        if change == "join":
            return caller.put(members, json={"chief": False}).status_code
        return caller.client.patch(
            f"/api/users/{user_id}",
            headers=caller.headers,
            json={"active": change == "reactivate"},
        ).status_code

    def hand_on(self, name: str, department: str) -> None:
        """The model after `name` left `department`: their consults to its chief."""
        (chief,) = self.world.chiefs[department]
        for model in self.model.values():
            if model.department != department or model.status not in OPEN:
                continue
            if model.handoff_to == name:
                model.handoff_to = None
                model.events += 1
            if model.owner == name and model.status in OWNED:
                model.owner, model.handoff_to = chief, None
                model.events += 1

    def restore_the_staff(self) -> None:
        """Each example starts with everyone active, in their own departments: read
        from the database (a failed step may have left the world half-told)."""
        world, admin = self.world, self.world.everyone["admin"]
        for name in world.everyone:
            world.new_token(name)
        users = {u["id"]: u for u in admin.get("/api/users").json}
        for caller in world.everyone.values():
            if not users[caller.user_id]["active"]:
                response = admin.client.patch(
                    f"/api/users/{caller.user_id}",
                    headers=admin.headers,
                    json={"active": True},
                )
                assert response.status_code == 200, response.json
        for department, base in world.base_members.items():
            listed = admin.get(f"/api/departments/{department}/members").json
            now = {world.names_by_id[m["id"]] for m in listed}
            for name in sorted(now - base):
                user_id = world.everyone[name].user_id
                response = admin.delete(
                    f"/api/departments/{department}/members/{user_id}"
                )
                assert response.status_code == 204, response.json
                world.new_token(name)  # leaving ends their tokens (admin's too)
            for name in sorted(base - now):
                user_id = world.everyone[name].user_id
                response = admin.put(f"/api/departments/{department}/members/{user_id}")
                assert response.status_code == 200, response.json
            world.members[department] = set(base)
        world.inactive.clear()
        for name in world.everyone:
            world.new_token(name)

    def perform(self, data, model: ModelConsult, action: str, name: str):
        """One action through the API, checked against the rules and the model."""
        consult_id = model.id
        payload, valid, note = self.draw_input(data, model, action, name)
        self.changed, self.moved = None, False

        before = self.known[consult_id]  # the invariants checked it is current
        holders = (model.owner, model.handoff_to)
        offered = self.buttons(consult_id, [name])[name]
        response = self.caller(name).post(
            f"/api/consults/{consult_id}/{PATHS.get(action, action)}", json=payload
        )
        after = self.read(consult_id)
        code = response.status_code
        step = {
            "caller": name,
            "action": action,
            "payload": payload,
            "code": code,
            "said": (response.get_json(silent=True) or {}).get("message"),
            "offered": sorted(offered),
            "before": self.summary(before),
            "after": self.summary(after),
        }
        assert code in {200, 403, 404, 409, 422}, step

        if code == 200:
            assert action in offered, ("succeeded but not offered", step)
            assert valid, ("invalid input accepted", step)
            added = len(after["timeline"]) - len(before["timeline"])
            assert added == 1, (f"{added} events for one action", step)
            assert after["timeline"][:-1] == before["timeline"], ("rewritten", step)
            assert response.json["timeline"] == after["timeline"], ("answer", step)
            event = after["timeline"][-1]
            kind = self.event_kind(model, action, name)
            assert event["kind"] == kind, (f"not a {kind} event", step)
            assert self.user_name(event["actor"]) == name, ("another actor", step)
            self.apply(model, action, name, payload, before)
            self.changed, self.moved = consult_id, action == "redirect"
            if (model.owner, model.handoff_to) != holders:
                involved = {name, *holders, model.owner, model.handoff_to}
                self.check_owner_lists([model], involved - {None})
            if action == "claim":
                self.claim_again(data, model, name)
            return

        assert after["timeline"] == before["timeline"], ("refusal left a trace", step)
        assert after["version"] == before["version"], ("refusal changed it", step)
        if not self.may_see(name, model):
            stranger = code == 404 or (code == 422 and not valid)
            assert stranger, ("not a 404 for one who may not see it", step)
        if code == 404:
            assert not self.may_see(name, model), ("a 404 for one who may see", step)
            assert action not in offered, step
        elif code == 422:
            assert not valid, ("valid input refused as invalid", step)
            assert set(response.json.get("errors", {})), step
        elif action in offered:
            # 403 / 409 for an offered action: only assigning a consult to the
            # owner it already has is refused for its input, not the state.
            assert not valid and note == "owner already", ("offered but refused", step)
            assert code == 409, step

    def claim_again(self, data, model: ModelConsult, owner: str):
        """Never two owners: a second claim right after a successful one is refused,
        and changes nothing."""
        others = sorted(set(self.world.callers) - {owner})
        name = data.draw(st.sampled_from(others), label="second claimant")
        before = self.known[model.id]
        response = self.caller(name).post(f"/api/consults/{model.id}/claim")
        expected = 409 if self.may_see(name, model) else 404
        step = (name, response.status_code, self.summary(before))
        assert response.status_code == expected, ("a second claim", step)
        assert self.read(model.id) == before, ("a refused claim changed it", step)

    def check_owner_lists(self, models, names):
        """Never two owners, as users see it: of these callers, only the owner
        finds the consult under owner=me."""
        mine = {
            name: {c["id"] for c in self.listed(self.caller(name), "owner=me")}
            for name in names
        }
        for model in models:
            owners = {name for name in names if model.id in mine[name]}
            # A closed consult keeps its owner; one who has since left its
            # department no longer sees it, so no longer lists it either.
            expected = {n for n in {model.owner} & set(names) if self.may_see(n, model)}
            assert owners == expected, ("owner=me", model, sorted(owners))

    # -- the model -------------------------------------------------------

    def natural_callers(self, model: ModelConsult, action: str) -> set[str]:
        """Who the action is meant for, as the model has it; with the owner's own
        actions, also the colleague offered a handoff, who may think they are
        covering already ("I'm just covering": only the owner may act)."""
        members = self.world.members[model.department]
        owner = {model.owner} - {None}
        offered_to = {model.handoff_to} - {None}
        return {
            "claim": members,
            "release": owner | offered_to,
            "assign": self.world.chiefs[model.department] | self.world.admins,
            "handoff": owner | offered_to,
            "accept": offered_to,
            "decline": offered_to,
            "answer": owner | offered_to,
            "message": (
                {model.requester}
                if model.status == "answered"
                else members | {model.requester}
            ),
            "redirect": members,
            "close": {model.requester} | self.world.admins,
            "cancel": {model.requester, "admin"},
        }[action]

    def draw_input(self, data, model: ModelConsult, action: str, name: str):
        """(payload, valid, note): a valid payload, or one of the invalid ones."""
        valid = self.mostly(data, "valid")
        members = self.world.members[model.department]
        ids = {n: c.user_id for n, c in self.world.callers.items()}
        if action in ("claim", "accept"):
            return {}, True, None
        if action in ("release", "decline", "cancel"):
            if valid:
                return {"reason": "Shift change."}, True, None
            bad = data.draw(
                st.sampled_from([{}, {"reason": ""}, {"reason": "   "}]),
                label="payload",
            )
            return bad, False, None
        if action in ("answer", "message"):
            if valid:
                return {"body": "No collection; no drainage needed."}, True, None
            bad = data.draw(
                st.sampled_from([{}, {"body": ""}, {"body": " \n "}]), label="payload"
            )
            return bad, False, None
        if action == "assign":
            candidates = sorted(members - {model.owner})
            if valid and candidates:
                who = data.draw(st.sampled_from(candidates), label="assignee")
                return {"user_id": ids[who]}, True, None
            who = data.draw(
                st.sampled_from(sorted(set(ids) - set(candidates)) + [None]),
                label="assignee",
            )
            if who is None:
                return {"user_id": UNKNOWN_USER_ID}, False, "no such user"
            note = "owner already" if who == model.owner else "not a member"
            return {"user_id": ids[who]}, False, note
        if action == "handoff":
            candidates = sorted(members - {name})
            if valid and candidates:
                who = data.draw(st.sampled_from(candidates), label="to")
                return {"to_user_id": ids[who], "note": "Off shift."}, True, None
            fault = data.draw(st.sampled_from(["to", "note"]), label="fault")
            if fault == "note" and candidates:
                who = data.draw(st.sampled_from(candidates), label="to")
                return {"to_user_id": ids[who], "note": "  "}, False, None
            who = data.draw(
                st.sampled_from(sorted(set(ids) - set(candidates))), label="to"
            )
            return {"to_user_id": ids[who], "note": "Off shift."}, False, None
        if action == "redirect":
            other = next(d for d in DEPARTMENTS if d != model.department)
            if valid:
                return {"department": other, "reason": "Cardiac."}, True, None
            bad = data.draw(
                st.sampled_from(
                    [
                        {"department": model.department, "reason": "Same."},
                        {"department": "no-such-department", "reason": "Away."},
                        {"department": other, "reason": "  "},
                        {"reason": "No department."},
                    ]
                ),
                label="payload",
            )
            return bad, False, None
        if action == "close":
            if valid:
                good = data.draw(
                    st.sampled_from(
                        [{}, {"rating": 5, "comment": "Thanks."}, {"rating": None}]
                    ),
                    label="payload",
                )
                return good, True, None
            bad = data.draw(
                st.sampled_from([{"rating": 0}, {"rating": 6}]), label="payload"
            )
            return bad, False, None
        raise AssertionError(action)

    def allowed(self, model: ModelConsult, name: str) -> set[str]:
        """The actions the rules give this caller on this consult now: SPEC.md, with
        the README's decisions (handoff also while answered, release only while
        claimed, assign only before an answer). Redirect is SPEC rule 5: a pending
        consult by any member, an owned one only by its owner or a chief."""
        status = model.status
        member = name in self.world.members[model.department]
        owner = name == model.owner
        requester = name == model.requester
        admin = name in self.world.admins
        chief = name in self.world.chiefs[model.department]
        rules = {
            "claim": status == "pending" and member,
            "release": status == "claimed" and owner,
            "assign": status in ("pending", "claimed") and (chief or admin),
            "handoff": status in OWNED and owner,
            "accept": name == model.handoff_to,
            "decline": name == model.handoff_to,
            "answer": status == "claimed" and owner,
            "message": status in OPEN and (requester or member),
            "redirect": (status == "pending" and member)
            or (status in OWNED and (owner or chief)),
            "close": status == "answered" and (requester or admin),
            "cancel": status in OPEN and (requester or admin),
        }
        return {action for action, ok in rules.items() if ok}

    @staticmethod
    def event_kind(model: ModelConsult, action: str, name: str) -> str:
        """The timeline event a successful action appends (model state before it)."""
        if action == "message":
            if name == model.requester:
                return "followup" if model.status == "answered" else "message"
            return "message" if name == model.owner else "note"
        return EVENT_KINDS[action]

    def apply(self, model: ModelConsult, action, name, payload, before: dict):
        """The consult as it should be after a successful action."""
        model.events += 1
        if action == "claim":
            model.status, model.owner = "claimed", name
        elif action == "release":
            model.status, model.owner, model.handoff_to = "pending", None, None
        elif action == "assign":
            model.status, model.handoff_to = "claimed", None
            model.owner = self.world.names_by_id[payload["user_id"]]
        elif action == "handoff":
            model.handoff_to = self.world.names_by_id[payload["to_user_id"]]
        elif action == "accept":
            model.owner, model.handoff_to = name, None
        elif action == "decline":
            model.handoff_to = None
        elif action == "answer":
            owner = self.user_name(before["owner"])
            assert name == model.owner == owner, ("answered by a non-owner", owner)
            model.status = "answered"
        elif action == "message":
            if name == model.requester and model.status == "answered":
                model.status = "claimed"  # a follow-up: same owner
        elif action == "redirect":
            model.department = payload["department"]
            model.status, model.owner, model.handoff_to = "pending", None, None
        elif action in ("close", "cancel"):
            model.status = "closed" if action == "close" else "cancelled"
            model.handoff_to = None

    def newest_consult_id(self) -> int | None:
        newest = self.admin.get("/api/consults?page_size=1").json
        return newest[0]["id"] if newest else None

    # -- checks after every step ----------------------------------------

    @invariant()
    def consults_keep_the_rules(self):
        """Status, owner and offer of every consult of the example: consistent,
        as the model has them, and as the timeline tells them.

        Read from admin's listing; the listed version equals the one last read
        with its timeline, so nothing changed the consult since and that
        timeline is current.
        """
        listing = {c["id"]: c for c in self.listed(self.admin)}
        assert set(self.model) <= set(listing), (sorted(self.model), sorted(listing))
        for model in self.model.values():
            consult = listing[model.id]
            known = self.known[model.id]
            where = (model, self.summary(known))
            assert consult["version"] == known["version"], ("changed unseen", where)
            assert {**known, "timeline": None} == {**consult, "timeline": None}
            status, owner = consult["status"], self.user_name(consult["owner"])
            offer = self.user_name(consult["handoff"] and consult["handoff"]["to"])
            assert status in STATUSES, where
            if status == "pending":
                assert owner is None, ("pending with an owner", where)
            if status in OWNED or status == "closed":
                assert owner is not None, (f"{status} without an owner", where)
            if offer is not None:
                assert status in OWNED and offer != owner, ("stray offer", where)
            assert consult["department"] == model.department, where
            assert (status, owner, offer) == (
                model.status,
                model.owner,
                model.handoff_to,
            ), ("not what the rules say", where)
            assert self.user_name(consult["requester"]) == model.requester, where
            if status in OWNED:
                assert owner in self.world.members[model.department], (
                    "owned by one who is not a member",
                    where,
                )
                assert owner not in self.world.inactive, ("a deactivated owner", where)
            assert len(known["timeline"]) == model.events, ("event count", where)
            replayed = self.replay(known["timeline"])
            assert replayed == (status, owner, offer), ("timeline disagrees", where)

    def replay(self, timeline: list[dict]) -> tuple:
        """(status, owner, offered colleague) as the timeline tells it, checked on the way.

        A claim only while no one owns it, an answer only from the owner, a
        handoff offered by the owner and taken or declined by its colleague.
        """
        told = [(e["kind"], self.user_name(e["actor"])) for e in timeline]
        assert told[0][0] == "created", told
        status, owner, offer = "pending", None, None
        for at, event in enumerate(timeline[1:], start=1):
            kind = event["kind"]
            actor = self.user_name(event["actor"])
            subject = self.user_name(event.get("subject"))
            where = {"event": at, "then": (status, owner, offer), "timeline": told}
            if kind == "claimed":
                assert status == "pending" and owner is None, ("second owner", where)
                status, owner = "claimed", actor
            elif kind == "answered":
                assert status == "claimed" and actor == owner, ("not the owner", where)
                status = "answered"
            elif kind == "assigned" and actor is None:  # the owner left (rule 7)
                assert status in OWNED and subject != owner, where
                owner, offer = subject, None
            elif kind == "assigned":
                assert status in ("pending", "claimed") and subject != owner, where
                status, owner, offer = "claimed", subject, None
            elif kind in ("released", "redirected"):
                assert kind == "redirected" or actor == owner, where
                status, owner, offer = "pending", None, None
            elif kind == "handoff_offered":
                assert status in OWNED and actor == owner != subject, where
                offer = subject
            elif kind == "handoff_declined" and actor is None:  # the colleague left
                assert offer is not None, where
                offer = None
            elif kind in ("handoff_accepted", "handoff_declined"):
                assert offer is not None and actor == offer, where
                owner = actor if kind == "handoff_accepted" else owner
                offer = None
            elif kind == "followup":
                assert status == "answered", where
                status = "claimed"
            elif kind in ("closed", "cancelled"):
                assert status in OPEN, where
                status, offer = kind, None
            else:
                assert kind in ("message", "note") and status in OPEN, where
        return status, owner, offer

    @invariant()
    def buttons_follow_the_rules(self):
        """After every change, each caller's buttons (available_actions) on the
        consult are the actions the rules allow them; perform checks that the API
        does what the buttons say."""
        if self.changed is None:
            return
        model = self.model[self.changed]
        for name, shown in self.buttons(model.id, sorted(self.world.callers)).items():
            allowed = self.allowed(model, name)
            assert shown == allowed, ("buttons", name, sorted(shown), model)

    @invariant()
    def visibility_never_widens(self):
        """A consult is seen only by admins, its requester and its department.

        After every change, each caller who may not see it gets a 404 for it;
        when a consult appears or changes department, every caller's listing
        shows it exactly if they may see it (again for all at the end of each
        example). A refused step changes nothing: perform checks that.
        """
        if self.changed is None:
            return
        model = self.model[self.changed]
        for name, caller in sorted(self.world.callers.items()):
            if not self.may_see(name, model):
                response = caller.get(f"/api/consults/{model.id}")
                assert response.status_code == 404, ("seen by", name, model)
        if self.moved:
            self.check_listings()

    def check_listings(self):
        for name, caller in sorted(self.world.callers.items()):
            seen = {c["id"] for c in self.listed(caller)} & set(self.model)
            expected = {m.id for m in self.model.values() if self.may_see(name, m)}
            assert seen == expected, (name, seen, expected)

    def teardown(self):
        """At the end of an example: every listing, and everyone's owner=me.

        Skipped when a step has failed (Hypothesis tears down in a `finally`):
        that failure is the one to report.
        """
        if sys.exc_info()[0] is not None:
            return
        self.check_listings()
        self.check_owner_lists(self.model.values(), self.world.callers)


def test_random_actions_keep_the_ownership_rules(app, hospital, make_caller):
    kim = make_caller("kim@h.test", "Dr Kim", {"cardiology": True})
    callers = {
        "okafor": hospital.okafor,
        "castillo": hospital.castillo,
        "nguyen": hospital.nguyen,
        "lee": hospital.lee,
        "kim": kim,
        "patel": hospital.patel,
        "admin": hospital.admin,
        "outsider": hospital.outsider,
    }
    world = World(
        app=app,
        everyone=callers,
        members={
            "radiology": {"okafor", "castillo", "nguyen"},
            "cardiology": {"lee", "kim"},
        },
        chiefs={"radiology": {"okafor"}, "cardiology": {"kim"}},
        admins={"admin"},
    )
    machine = type("Machine", (ConsultMachine,), {"world": world})
    run_state_machine_as_test(machine, settings=SETTINGS)
