"""Reports for chiefs (their departments) and admins (all): turnaround, escalations, open now."""

import re
from datetime import UTC, timedelta

from flask import Response
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from broker import clock, reports
from broker.api.auth import caller
from broker.api.blueprint import ApiBlueprint
from broker.api.schemas import URGENCIES, AwareDateTime, Input, UserSchema

DEFAULT_DAYS = 30

blp = ApiBlueprint(
    "reports",
    __name__,
    url_prefix="/api/reports",
    description="Reports for chiefs (their departments) and admins (all departments)",
)
# Every report refuses those who may not read it; bad input (422) comes with the arguments.
not_a_chief = blp.refuses(
    403, descriptions={403: "Not a chief of the department, nor an admin"}
)


class PeriodArgs(Input):
    start = AwareDateTime(
        data_key="from",
        metadata={"description": f"default: {DEFAULT_DAYS} days before `to`"},
    )
    end = AwareDateTime(
        data_key="to",
        metadata={"description": "exclusive; default: now"},
    )
    department = fields.String(
        metadata={"description": "slug; default: all the caller may see"}
    )


class TurnaroundArgs(PeriodArgs):
    group_by = fields.String(
        load_default="department", validate=validate.OneOf(reports.GROUPINGS)
    )
    format = fields.String(
        load_default="json", validate=validate.OneOf(["json", "csv"])
    )


class DepartmentArgs(Input):
    department = fields.String(metadata={"description": "slug"})


def _minutes(description: str) -> fields.Float:
    return fields.Float(allow_none=True, metadata={"description": description})


def _share(description: str) -> fields.Float:
    return fields.Float(
        allow_none=True, metadata={"description": f"0..1, {description}"}
    )


class TurnaroundRowSchema(Schema):
    group = fields.String(
        metadata={
            "description": "department slug, consultant's name or '(unclaimed)', "
            "urgency, or the Monday (UTC) of the week, YYYY-MM-DD"
        }
    )
    count = fields.Integer(metadata={"description": "consults created in the period"})
    claim_p50_minutes = _minutes("median time from routing to the first claim")
    claim_p90_minutes = _minutes("90th percentile time to the first claim")
    answer_p50_minutes = _minutes("median time from routing to the first answer")
    answer_p90_minutes = _minutes("90th percentile time to the first answer")
    claimed_in_time_share = _share("of the claimed ones, claimed by the deadline")
    answered_in_time_share = _share("of the answered ones, answered by the deadline")
    escalated = fields.Integer(metadata={"description": "consults escalated at all"})
    followups = fields.Integer()
    handoffs = fields.Integer(metadata={"description": "accepted handoffs"})
    redirects = fields.Integer()
    mean_rating = fields.Float(allow_none=True)


class PeriodSchema(Schema):
    start = fields.DateTime(data_key="from")
    end = fields.DateTime(data_key="to")


class TurnaroundSchema(PeriodSchema):
    group_by = fields.String(metadata={"enum": list(reports.GROUPINGS)})
    rows = fields.List(fields.Nested(TurnaroundRowSchema))


class EscalationRowSchema(Schema):
    consult_id = fields.Integer()
    department = fields.String(metadata={"description": "slug"})
    urgency = fields.String(metadata={"enum": URGENCIES})
    created_at = fields.DateTime()
    max_level = fields.Integer(metadata={"description": "the highest level reached"})
    reasons = fields.List(
        fields.String(),
        metadata={"description": "each escalation, oldest first: 'level N: why'"},
    )
    status = fields.String(metadata={"description": "how it ended, or where it stands"})
    ended_at = fields.DateTime(
        allow_none=True, metadata={"description": "closed or cancelled at"}
    )


class EscalationsSchema(PeriodSchema):
    rows = fields.List(fields.Nested(EscalationRowSchema))


class OpenRowSchema(Schema):
    owner = fields.Nested(
        UserSchema, allow_none=True, metadata={"description": "null: unclaimed"}
    )
    department = fields.String(metadata={"description": "slug"})
    open = fields.Integer(metadata={"description": "pending, claimed or answered"})
    overdue = fields.Integer(metadata={"description": "past the deadline that applies"})


class OpenSchema(Schema):
    at = fields.DateTime()
    rows = fields.List(fields.Nested(OpenRowSchema))


def _period(args) -> reports.Period:
    end = args.get("end") or clock.now()
    start = args.get("start") or end - timedelta(days=DEFAULT_DAYS)
    return reports.Period(start, end)


def _csv_filename(args, period: reports.Period) -> str:
    """Names the report (department, grouping, UTC dates), never anything about a patient."""
    department = re.sub(r"[^a-z0-9-]", "", (args.get("department") or "").lower())
    parts = ["turnaround", department, "by", args["group_by"]]
    parts += [
        f"{instant.astimezone(UTC):%Y%m%d}" for instant in (period.start, period.end)
    ]
    return "-".join(p for p in parts if p) + ".csv"


@blp.route("/turnaround")
class Turnaround(MethodView):
    @blp.arguments(TurnaroundArgs, location="query")
    @blp.response(200, TurnaroundSchema)
    @blp.doc(
        responses={
            200: {
                "description": "JSON; with `format=csv`, the rows as CSV "
                "(a header of the row keys)",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        }
    )
    @not_a_chief
    def get(self, args):
        """Turnaround per department, consultant, urgency or week of consults created in [from, to)."""
        period = _period(args)
        rows = reports.turnaround(
            caller(), period, args.get("department"), args["group_by"]
        )
        if args["format"] == "csv":
            return Response(
                reports.turnaround_csv(rows),
                mimetype="text/csv",
                headers={
                    "Content-Disposition": "attachment; "
                    f'filename="{_csv_filename(args, period)}"'
                },
            )
        return {
            "start": period.start,
            "end": period.end,
            "group_by": args["group_by"],
            "rows": rows,
        }


@blp.route("/escalations")
class Escalations(MethodView):
    @blp.arguments(PeriodArgs, location="query")
    @blp.response(200, EscalationsSchema)
    @not_a_chief
    def get(self, args):
        """Consults created in [from, to) that escalated: to what level, why, how they ended."""
        period = _period(args)
        rows = reports.escalations(caller(), period, args.get("department"))
        return {"start": period.start, "end": period.end, "rows": rows}


@blp.route("/open")
class OpenNow(MethodView):
    @blp.arguments(DepartmentArgs, location="query")
    @blp.response(200, OpenSchema)
    @not_a_chief
    def get(self, args):
        """Open and overdue consults now, per department and owner (null: unclaimed)."""
        at = clock.now()
        rows = reports.open_and_overdue_by_owner(caller(), args.get("department"))
        return {"at": at, "rows": rows}
