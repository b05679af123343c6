"""The pages' forms (Flask-WTF: each carries a CSRF token), built from the domain's limits.

No bound is restated here: every field checks its value with the limit of
`broker/consults/limits.py` it is made from (`LimitCheck`), so a page refuses
exactly what the API and the domain refuse, with the same words. Fields carry
no `maxlength` (a browser would cut a long text silently); they say their
limit in `data-max-length`, and the page counts what is left as one types.
Each consult action's form is made from its registry entry (`action_form`).
"""

import uuid

from flask_wtf import FlaskForm
from wtforms import (
    DateTimeLocalField,
    EmailField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Optional, StopValidation

from broker.consults import limits
from broker.consults.deadlines import PARTS
from broker.consults.registry import Action
from broker.models import Consult, User


def options(pairs) -> list[SelectChoice]:
    """A select or radio field's choices, from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]


class LimitCheck:
    """A form validator made from a domain limit: the same bound, the same words."""

    def __init__(self, limit):
        self.limit = limit

    def __call__(self, form, field):
        if field.process_errors:  # not even a number or a date: say only that
            raise StopValidation()
        field.errors[:] = []  # the limit's words, not a second opinion on a choice
        if why := self.limit.problem(field.data):
            raise StopValidation(why)


def text_field(limit: limits.Text, label: str, **kwargs):
    """A text input (one line) or text area for a Text limit."""
    kind = TextAreaField if limit.multiline else StringField
    render_kw = {"data-max-length": limit.max_length, **kwargs.pop("render_kw", {})}
    return kind(label, validators=[LimitCheck(limit)], render_kw=render_kw, **kwargs)


def number_field(limit: limits.WholeNumber, label: str):
    """Radio buttons for a small range (a rating), a number input otherwise."""
    checks = [LimitCheck(limit)] if limit.required else [Optional(), LimitCheck(limit)]
    if limit.maximum - limit.minimum < 10:
        numbers = range(limit.minimum, limit.maximum + 1)
        return RadioField(
            label, choices=options((n, str(n)) for n in numbers), coerce=int,
            validators=checks,
        )  # fmt: skip
    return IntegerField(
        label, validators=checks, render_kw={"min": limit.minimum, "max": limit.maximum}
    )


def choice_field(limit: limits.Choice, label: str, labels: dict, radio=False):
    kind = RadioField if radio else SelectField
    return kind(
        label,
        choices=options((v, labels.get(v, v)) for v in limit.values),
        validators=[LimitCheck(limit)],
    )


def _with_optional(label: str, limit) -> str:
    return label if getattr(limit, "required", True) else f"{label} (optional)"


class ActionForm(FlaskForm):
    """A button with nothing to fill in (claim, accept, sign out): only the CSRF token."""


def action_form(action: Action, consult: Consult, user: User, formdata=None):
    """The form of one consult action, from its registry entry, under its own prefix."""

    class Form(ActionForm):
        pass

    for f in action.inputs:
        label = _with_optional(f.label_for(consult, user) or f.limit.label, f.limit)
        if f.choices is not None:
            coerce = int if isinstance(f.limit, limits.Colleague) else str
            field = SelectField(label, coerce=coerce, validators=[InputRequired()])
        elif isinstance(f.limit, limits.WholeNumber):
            field = number_field(f.limit, label)
        else:
            field = text_field(f.limit, label)
        setattr(Form, f.key, field)
    form = Form(formdata=formdata, prefix=action.name)
    for f in action.inputs:
        if f.choices is not None:
            form[f.key].choices = options(f.choices(consult, user))
    return form


def action_input(action: Action, form) -> dict:
    """What the form's fields hold, keyed as the action takes them."""
    return {f.key: form[f.key].data for f in action.inputs}


class SignInForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


URGENCY_LABELS = {
    "stat": "Stat — minutes matter",
    "urgent": "Urgent — within hours",
    "routine": "Routine",
}


class NewConsultForm(FlaskForm):
    department = SelectField("Department", validators=[LimitCheck(limits.DEPARTMENT)])
    urgency = choice_field(limits.URGENCY, "Urgency", URGENCY_LABELS, radio=True)
    patient_ref = text_field(limits.PATIENT_REF, "Patient reference (MRN)")
    question = text_field(limits.QUESTION, "Question")
    study_ref = text_field(limits.STUDY_REF, "Study or specimen reference (optional)")
    # One per rendered form: a second submit of it (a double click, a resend after a
    # lost answer) finds the consult the first one made.
    request_key = HiddenField(
        default=lambda: uuid.uuid4().hex,
        validators=[Optional(), LimitCheck(limits.REQUEST_KEY)],
    )


class PolicyForm(FlaskForm):
    """Minutes per urgency: fields named <urgency>_<claim|answer|followup>."""


POLICY_WORDS = {
    "claim": "claim within",
    "answer": "answer within",
    "followup": "follow-up answer within",
}
for _urgency in limits.URGENCY.values:
    for _part in PARTS:
        _words = POLICY_WORDS[_part]
        setattr(
            PolicyForm,
            f"{_urgency}_{_part}",
            number_field(limits.MINUTES, f"{_urgency.capitalize()}: {_words}"),
        )


class ShiftForm(FlaskForm):
    user_id = SelectField("Who", coerce=int, validators=[InputRequired()])
    role = choice_field(
        limits.SHIFT_ROLE, "Role", {"primary": "Primary", "backup": "Backup"}
    )
    starts_at = DateTimeLocalField(
        "Starts (hospital time)", validators=[DataRequired()]
    )
    ends_at = DateTimeLocalField("Ends (hospital time)", validators=[DataRequired()])
