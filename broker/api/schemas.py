"""Marshmallow schemas: everything the API reads is validated here, everything it writes is shaped here."""

from datetime import UTC

from marshmallow import Schema, ValidationError, fields, pre_load, validate

from broker.consults import limits
from broker.consults.actions import NEW_CONSULT
from broker.consults.audit import VIAS
from broker.extensions import db
from broker.models import EventKind, ShiftRole, Status, Urgency, User

URGENCIES = [u.value for u in Urgency]
STATUSES = [s.value for s in Status]
SHIFT_ROLES = [r.value for r in ShiftRole]


class Input(Schema):
    """Base of every schema that reads client input."""

    @pre_load
    def refuse_unstorable_text(self, data, **kwargs):
        """Text no database can store is invalid input, field by field."""
        if hasattr(data, "items"):
            bad = {
                k: [why]
                for k, v in data.items()
                if isinstance(v, str) and (why := limits.unstorable(v))
            }
            if bad:
                raise ValidationError(bad)
        return data


def checked_by(limit):
    """A marshmallow validator from a domain limit: the same bound, the same words."""

    def check(value) -> None:
        if why := limit.problem(value):
            raise ValidationError(why)

    return check


def limited(limit, **kwargs) -> fields.Field:
    """A schema field made from a domain limit (limits.py); the OpenAPI document
    shows its bounds."""
    optional = {} if limit.required else {"allow_none": True, "load_default": None}
    options = {"required": limit.required, **optional, **kwargs}
    validate = checked_by(limit)
    if isinstance(limit, limits.Text):
        bounds = {"maxLength": limit.max_length}
        if limit.required:
            bounds["minLength"] = 1
        if limit.pattern:
            bounds["pattern"] = limit.pattern
        metadata = {**bounds, **options.pop("metadata", {})}
        return fields.String(validate=validate, metadata=metadata, **options)
    if isinstance(limit, limits.WholeNumber):
        bounds = {"minimum": limit.minimum, "maximum": limit.maximum}
        return fields.Integer(
            strict=True, validate=validate, metadata=bounds, **options
        )
    if isinstance(limit, limits.Choice):
        return fields.String(
            validate=validate, metadata={"enum": list(limit.values)}, **options
        )
    if isinstance(limit, limits.Colleague):
        description = "the id of a member of the consult's department"
        return fields.Integer(
            strict=True, metadata={"description": description}, **options
        )
    if isinstance(limit, limits.OtherDepartment):
        return fields.String(
            metadata={"description": "another department's slug"}, **options
        )
    raise TypeError(f"No schema field for {limit!r}")


def action_schema(action) -> type[Schema]:
    """The input schema of a consult action, from its registry entry."""
    declared = {f.key: limited(f.limit) for f in action.inputs}
    name = "".join(part.capitalize() for part in action.name.split("_")) + "Input"
    return Input.from_dict(declared, name=name)


class AwareDateTime(fields.AwareDateTime):
    """An ISO 8601 instant, read as UTC; one given without an offset is taken as UTC.

    Bounded (limits.INSTANT), so that any instant taken can be stored, and moved
    by the days a report period spans, without leaving the range of a datetime.
    """

    def __init__(self, limit: limits.Instant = limits.INSTANT, **kwargs):
        super().__init__(default_timezone=UTC, **kwargs)
        self.limit = limit

    def _deserialize(self, value, attr, data, **kwargs):
        instant = super()._deserialize(value, attr, data, **kwargs)
        if why := self.limit.problem(instant):
            raise ValidationError(why)
        return instant.astimezone(UTC)


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


NewConsultSchema = Input.from_dict(
    {name: limited(limit) for name, limit in NEW_CONSULT.items()},
    name="NewConsultSchema",
)


class NewConsultHeaders(Input):
    request_key = limited(
        limits.REQUEST_KEY,
        required=False,
        data_key="Idempotency-Key",
        metadata={
            "description": "any unique value chosen by the client (a UUID, say): a "
            "retry with the same key answers the consult the first request created "
            "(header Idempotent-Replayed: true) instead of creating another; the same "
            "key for another patient or question is a 409"
        },
    )


class PolicyMinutesSchema(Input):
    claim_minutes = limited(limits.MINUTES)
    answer_minutes = limited(limits.MINUTES)
    followup_minutes = limited(limits.MINUTES)


class PolicyUpdateSchema(Input):
    """Minutes per urgency; urgencies left out keep their current minutes."""

    stat = fields.Nested(PolicyMinutesSchema)
    urgent = fields.Nested(PolicyMinutesSchema)
    routine = fields.Nested(PolicyMinutesSchema)


class ShiftSchema(Input):
    id = fields.Integer(dump_only=True)
    user = fields.Nested(UserSchema, dump_only=True)
    user_id = UserRef(required=True, load_only=True)
    role = limited(limits.SHIFT_ROLE)
    starts_at = AwareDateTime(limits.SHIFT_START, required=True)
    ends_at = AwareDateTime(limits.SHIFT_END, required=True)


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
    via = fields.String(metadata={"enum": VIAS})
