"""Marshmallow schemas: everything the API reads is validated here, everything it writes is shaped here."""

from datetime import UTC, datetime

from marshmallow import Schema, ValidationError, fields, pre_load, validate

from broker.extensions import db
from broker.models import EventKind, ShiftRole, Status, Urgency, User

URGENCIES = [u.value for u in Urgency]
STATUSES = [s.value for s in Status]
SHIFT_ROLES = [r.value for r in ShiftRole]


def _unstorable(value) -> str | None:
    """Why no database can store this text, if none can.

    PostgreSQL text cannot hold NUL; a lone surrogate (JSON allows "\\ud800") is
    not Unicode, and neither database driver can encode it.
    """
    if "\x00" in str(value):
        return "Contains a NUL character."
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return "Contains a character that is not valid Unicode."
    return None


class Input(Schema):
    """Base of every schema that reads client input."""

    @pre_load
    def refuse_unstorable_text(self, data, **kwargs):
        """Text no database can store is invalid input, field by field."""
        if hasattr(data, "items"):
            bad = {k: [why] for k, v in data.items() if (why := _unstorable(v))}
            if bad:
                raise ValidationError(bad)
        return data


def _text(max_length: int, **kwargs) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=max_length), **kwargs)


class AwareDateTime(fields.AwareDateTime):
    """An ISO 8601 instant, read as UTC; one given without an offset is taken as UTC.

    Bounded, so that any instant taken can be stored, and moved by the days a
    report period spans, without leaving the range of a datetime.
    """

    EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
    LATEST = datetime(9999, 1, 1, tzinfo=UTC)
    OUT_OF_RANGE = "An instant from 1900 to 9998 (UTC)."

    def __init__(self, **kwargs):
        super().__init__(default_timezone=UTC, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        instant = super()._deserialize(value, attr, data, **kwargs)
        try:
            instant = instant.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 is in the year 0 in UTC
            raise ValidationError(self.OUT_OF_RANGE) from None
        if not self.EARLIEST <= instant < self.LATEST:
            raise ValidationError(self.OUT_OF_RANGE)
        return instant


class UserRef(fields.Integer):
    """A user id in, the User out; an unknown id is a validation error."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        user_id = super()._deserialize(value, attr, data, **kwargs)
        user = db.session.get(User, user_id) if 0 < user_id < 2**31 else None
        if user is None:
            raise ValidationError("No such user.")
        return user


class UserSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    email = fields.String()


class MeSchema(UserSchema):
    departments = fields.List(fields.String(), metadata={"description": "slugs"})
    chief_of = fields.List(fields.String(), metadata={"description": "slugs"})
    roles = fields.List(
        fields.String(),
        metadata={"description": "requester, consultant, chief, admin"},
    )


class TokenRequestSchema(Input):
    email = fields.String(required=True)
    password = fields.String(required=True, load_only=True)


class TokenSchema(Schema):
    token = fields.String()


class MinutesSchema(Schema):
    claim_minutes = fields.Integer()
    answer_minutes = fields.Integer()
    followup_minutes = fields.Integer()


class DepartmentSchema(Schema):
    slug = fields.String()
    name = fields.String()
    policy = fields.Method(
        "policy_by_urgency",
        metadata={"description": "minutes per urgency: stat, urgent, routine"},
    )

    def policy_by_urgency(self, department) -> dict:
        return {p.urgency: MinutesSchema().dump(p) for p in department.policies}


class MemberSchema(UserSchema):
    chief = fields.Boolean()


class HandoffSchema(Schema):
    to = fields.Nested(UserSchema)
    note = fields.String()
    offered_at = fields.DateTime()


class ConsultSchema(Schema):
    id = fields.Integer()
    department = fields.String(
        attribute="department.slug", metadata={"description": "slug"}
    )
    urgency = fields.String(metadata={"enum": URGENCIES})
    status = fields.String(metadata={"enum": STATUSES})
    requester = fields.Nested(UserSchema)
    owner = fields.Nested(UserSchema, allow_none=True)
    handoff = fields.Nested(HandoffSchema, allow_none=True)
    patient_ref = fields.String()
    question = fields.String()
    study_ref = fields.String(allow_none=True)
    created_at = fields.DateTime()
    routed_at = fields.DateTime()
    claimed_at = fields.DateTime(allow_none=True)
    answered_at = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()
    claim_due_at = fields.DateTime()
    answer_due_at = fields.DateTime()
    escalation_level = fields.Integer()
    overdue = fields.Boolean()
    rating = fields.Integer(allow_none=True)
    version = fields.Integer(
        metadata={"description": "increases with every change to the consult"}
    )


class EventSchema(Schema):
    kind = fields.String(metadata={"enum": [k.value for k in EventKind]})
    actor = fields.Nested(UserSchema, allow_none=True)
    at = fields.DateTime()
    body = fields.String(allow_none=True)
    subject = fields.Nested(
        UserSchema,
        allow_none=True,
        metadata={"description": "the colleague the action concerned"},
    )
    detail = fields.String(allow_none=True)


class ConsultDetailSchema(ConsultSchema):
    timeline = fields.List(fields.Nested(EventSchema))


class ConsultListArgs(Input):
    department = fields.String()
    updated_since = AwareDateTime(
        metadata={
            "description": "consults changed since this instant, reaching back 5 s "
            "further (a reconnecting client asks for what it missed, and skips "
            "versions it already has)"
        }
    )
    status = fields.String(validate=validate.OneOf(STATUSES))
    owner = fields.String(validate=validate.OneOf(["me"]))
    requester = fields.String(validate=validate.OneOf(["me"]))
    overdue = fields.Boolean()


class NewConsultSchema(Input):
    department = fields.String(required=True, metadata={"description": "slug"})
    urgency = fields.String(required=True, validate=validate.OneOf(URGENCIES))
    patient_ref = _text(64, required=True)
    question = _text(10_000, required=True)
    study_ref = fields.String(
        validate=validate.Length(max=64), allow_none=True, load_default=None
    )


class NewConsultHeaders(Input):
    request_key = fields.String(
        data_key="Idempotency-Key",
        validate=[
            validate.Length(min=1, max=64),
            validate.Regexp(r"^[\x21-\x7e]+$", error="Printable ASCII, no spaces."),
        ],
        metadata={
            "description": "any unique value chosen by the client (a UUID, say): a "
            "retry with the same key answers the consult the first request created "
            "(header Idempotent-Replayed: true) instead of creating another; the same "
            "key for another patient or question is a 409"
        },
    )


class ReasonSchema(Input):
    reason = _text(2_000, required=True)


class AssignSchema(Input):
    assignee = UserRef(required=True, data_key="user_id")


class HandoffOfferSchema(Input):
    to_user = UserRef(required=True, data_key="to_user_id")
    note = _text(2_000, required=True)


class BodySchema(Input):
    body = _text(10_000, required=True)


class RedirectSchema(Input):
    department = fields.String(required=True, metadata={"description": "slug"})
    reason = _text(2_000, required=True)


class CloseSchema(Input):
    rating = fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=5),
        allow_none=True,
        load_default=None,
    )
    comment = fields.String(
        validate=validate.Length(max=2_000), allow_none=True, load_default=None
    )


def _minutes() -> fields.Integer:
    return fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=60 * 24 * 30)
    )


class PolicyMinutesSchema(Input):
    claim_minutes = _minutes()
    answer_minutes = _minutes()
    followup_minutes = _minutes()


class PolicyUpdateSchema(Input):
    """Minutes per urgency; urgencies left out keep their current minutes."""

    stat = fields.Nested(PolicyMinutesSchema)
    urgent = fields.Nested(PolicyMinutesSchema)
    routine = fields.Nested(PolicyMinutesSchema)


class ShiftSchema(Input):
    id = fields.Integer(dump_only=True)
    user = fields.Nested(UserSchema, dump_only=True)
    user_id = UserRef(required=True, load_only=True)
    role = fields.String(required=True, validate=validate.OneOf(SHIFT_ROLES))
    starts_at = AwareDateTime(required=True)
    ends_at = AwareDateTime(required=True)


class ShiftRangeArgs(Input):
    start = AwareDateTime(data_key="from")
    end = AwareDateTime(data_key="to")


class OnCallSchema(Schema):
    department = fields.String()
    at = fields.DateTime()
    primary = fields.Nested(UserSchema, allow_none=True)
    backup = fields.Nested(UserSchema, allow_none=True)
    backups = fields.List(fields.Nested(UserSchema))


class NotificationSchema(Schema):
    id = fields.Integer()
    kind = fields.String()
    consult_id = fields.Integer(allow_none=True)
    message = fields.String()
    created_at = fields.DateTime()
    read_at = fields.DateTime(allow_none=True)


class NotificationArgs(Input):
    unread = fields.Boolean()


class ReadSchema(Schema):
    user = fields.Nested(UserSchema)
    at = fields.DateTime()
    via = fields.String(metadata={"enum": ["api", "page", "live"]})
