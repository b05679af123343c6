"""The pages' forms (Flask-WTF: each carries a CSRF token)."""

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
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
)


def options(pairs) -> list[SelectChoice]:
    """A select or radio field's choices, from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]


URGENCY_CHOICES = [
    ("stat", "Stat — minutes matter"),
    ("urgent", "Urgent — within hours"),
    ("routine", "Routine"),
]


class ActionForm(FlaskForm):
    """A button with nothing to fill in (claim, accept): only the CSRF token."""


class SignInForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


class NewConsultForm(FlaskForm):
    department = SelectField("Department", validators=[DataRequired()])
    urgency = RadioField(
        "Urgency", choices=options(URGENCY_CHOICES), validators=[DataRequired()]
    )
    patient_ref = StringField(
        "Patient reference (MRN)", validators=[DataRequired(), Length(max=64)]
    )
    question = TextAreaField(
        "Question", validators=[DataRequired(), Length(max=10_000)]
    )
    study_ref = StringField(
        "Study or specimen reference (optional)",
        validators=[Optional(), Length(max=64)],
    )
    # One per rendered form: a second submit of it (a double click, a resend after a
    # lost answer) finds the consult the first one made.
    request_key = HiddenField(
        default=lambda: uuid.uuid4().hex, validators=[Optional(), Length(max=64)]
    )


class ReasonForm(FlaskForm):
    reason = TextAreaField("Reason", validators=[DataRequired(), Length(max=2_000)])


class BodyForm(FlaskForm):
    body = TextAreaField("Text", validators=[DataRequired(), Length(max=10_000)])


class HandoffForm(FlaskForm):
    to_user_id = SelectField("Hand off to", coerce=int, validators=[InputRequired()])
    note = TextAreaField("Note for your colleague", validators=[DataRequired()])


class AssignForm(FlaskForm):
    user_id = SelectField("Assign to", coerce=int, validators=[InputRequired()])


class RedirectForm(FlaskForm):
    department = SelectField("Send to department", validators=[DataRequired()])
    reason = TextAreaField("Why it belongs there", validators=[DataRequired()])


class CloseForm(FlaskForm):
    rating = RadioField(
        "How helpful was the answer? (optional)",
        choices=options((str(n), str(n)) for n in range(1, 6)),
        validators=[Optional()],
    )
    comment = TextAreaField(
        "Comment (optional)", validators=[Optional(), Length(max=2_000)]
    )


class PolicyForm(FlaskForm):
    """Minutes per urgency: fields named <urgency>_<claim|answer|followup>."""

    stat_claim = IntegerField("Stat: claim within", validators=[NumberRange(min=1)])
    stat_answer = IntegerField("Stat: answer within", validators=[NumberRange(min=1)])
    stat_followup = IntegerField(
        "Stat: follow-up answer within", validators=[NumberRange(min=1)]
    )
    urgent_claim = IntegerField("Urgent: claim within", validators=[NumberRange(min=1)])
    urgent_answer = IntegerField(
        "Urgent: answer within", validators=[NumberRange(min=1)]
    )
    urgent_followup = IntegerField(
        "Urgent: follow-up answer within", validators=[NumberRange(min=1)]
    )
    routine_claim = IntegerField(
        "Routine: claim within", validators=[NumberRange(min=1)]
    )
    routine_answer = IntegerField(
        "Routine: answer within", validators=[NumberRange(min=1)]
    )
    routine_followup = IntegerField(
        "Routine: follow-up answer within", validators=[NumberRange(min=1)]
    )


class ShiftForm(FlaskForm):
    user_id = SelectField("Who", coerce=int, validators=[InputRequired()])
    role = SelectField(
        "Role", choices=options([("primary", "Primary"), ("backup", "Backup")])
    )
    starts_at = DateTimeLocalField(
        "Starts (hospital time)", validators=[DataRequired()]
    )
    ends_at = DateTimeLocalField("Ends (hospital time)", validators=[DataRequired()])
