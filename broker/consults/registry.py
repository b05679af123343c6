"""The action registry: every action on a consult, declared once.

An `Action` holds its name (the page's and the button's), its name in the API's
URL (SPEC.md), the domain function, the input it takes (each field with the
limit that bounds it), the predicate that decides who may take it now, and the
words a person sees: the button and the message on success. `actions.py`
declares each one with `@consult_action(...)` above its function; the API's
routes, the page routes, the buttons and the live layer read `ACTIONS`.

Calling an action (`actions.answer(consult, user, body=...)`) runs it as one
transaction: the predicate is enforced, every input is checked against its
limit (all the bad fields reported at once), then the function runs.
"""

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from broker.consults import access, audit
from broker.consults.errors import Invalid
from broker.consults.limits import clean_all
from broker.consults.transactions import transaction
from broker.models import Consult, User


@dataclass(frozen=True)
class Field:
    """One input of an action: `key` as clients send it, `limit` bounding it,
    `param` the domain function's argument (default: the key). `choices`, for a
    pick from a list (a colleague, a department): (consult, user) -> [(value, label)]."""

    key: str
    limit: object
    param: str = ""
    choices: Callable[[Consult, User], list[tuple]] | None = None
    # What a page calls it, when not the limit's own label: text, or (consult, user) -> text.
    label: "Words | None" = None

    @property
    def argument(self) -> str:
        return self.param or self.key

    def label_for(self, consult: Consult, user: User) -> str | None:
        return self.label(consult, user) if callable(self.label) else self.label


Words = str | Callable[[Consult, User], str]


@dataclass(frozen=True)
class Action:
    name: str
    path: str
    do: Callable
    may: Callable[[User, Consult], access.Verdict]
    inputs: tuple[Field, ...] = ()
    done: str = "Done."
    button: Words = ""
    # Where a page shows it: "offer" (answering a handoff), "main", or "more" (after
    # the main ones); `title` names it in the page's composer (else its button does);
    # `emphasis` "primary" or "danger" marks its button.
    placement: str = "main"
    title: str = ""
    emphasis: str = ""
    doc: str = field(default="", compare=False)

    def __call__(
        self,
        consult: Consult,
        user: User,
        *args,
        shown_via: str | None = None,
        **kwargs,
    ):
        """The action itself: enforced, validated, one transaction. With `shown_via`
        (one of audit.VIAS), the consult it leaves is recorded as shown to the user
        that way, in the same transaction: the answer that shows it is the action's."""
        return transaction(self._run)(
            consult, user, *args, shown_via=shown_via, **kwargs
        )

    def _run(self, consult: Consult, user: User, *args, shown_via=None, **kwargs):
        self.may(user, consult).enforce()
        given = dict(zip((f.argument for f in self.inputs), args, strict=False))
        given.update(kwargs)
        done = self.do(consult, user, **self.cleaned(consult, given))
        if shown_via is not None:
            audit.write(audit.rows_for([user.id], [done.id], shown_via))
        return done

    def cleaned(self, consult: Consult, given: dict) -> dict:
        """Every input checked against its limit; references resolved."""
        checks, resolved, errors = {}, {}, {}
        for f in self.inputs:
            value = given.get(f.argument)
            if hasattr(f.limit, "resolve"):
                try:
                    resolved[f.argument] = f.limit.resolve(f.key, consult, value)
                except Invalid as error:
                    errors.update(error.errors)
            else:
                checks[f.key] = (f.limit, value)
        try:
            cleaned = clean_all(**checks)
        except Invalid as error:
            errors = {**error.errors, **errors}
            cleaned = {}
        if errors:
            raise Invalid.of(errors)
        by_key = {f.key: f.argument for f in self.inputs}
        return {**{by_key[k]: v for k, v in cleaned.items()}, **resolved}

    def button_for(self, consult: Consult, user: User) -> str:
        return self.button(consult, user) if callable(self.button) else self.button


ACTIONS: dict[str, Action] = {}


def consult_action(name: str, *, path: str | None = None, **declared):
    """Declare the function below as the consult action `name` (see `Action`)."""

    def register(function: Callable) -> Action:
        action = Action(
            name=name,
            path=path or name,
            do=function,
            doc=inspect.getdoc(function) or "",
            **declared,
        )
        add(action)
        return action

    return register


def add(action: Action) -> None:
    if action.name in ACTIONS:
        raise ValueError(f"An action named {action.name!r} exists already.")
    ACTIONS[action.name] = action


def remove(name: str) -> None:
    ACTIONS.pop(name, None)


def available_actions(user: User, consult: Consult) -> list[Action]:
    """What this user may do to this consult now: the page's buttons."""
    return [a for a in ACTIONS.values() if a.may(user, consult)]


def perform(
    name: str, consult: Consult, user: User, data: dict, shown_via: str | None = None
):
    """Take the action called `name` with the input as clients send it (by key);
    `shown_via` as for `Action.__call__`."""
    action = ACTIONS[name]
    by_key = {f.key: f.argument for f in action.inputs}
    given = {by_key[k]: v for k, v in data.items()}
    return action(consult, user, shown_via=shown_via, **given)
