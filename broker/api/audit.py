"""GET /api/audit: who was shown which consults, when and through what (chiefs, admins)."""

import csv
import io

from flask import Response, stream_with_context
from flask.views import MethodView
from marshmallow import Schema, fields, validate

from broker.api.auth import caller
from broker.api.blueprint import ApiBlueprint
from broker.api.pagination import SelectPage
from broker.api.schemas import AwareDateTime, Input, UserSchema, checked_by, limited
from broker.consults import limits
from broker.consults.audit import VIAS, AuditQuery, search
from broker.extensions import db
from broker.reports import _csv_cell

blp = ApiBlueprint(
    "audit",
    __name__,
    url_prefix="/api/audit",
    description="The access audit (chiefs: their departments' consults; admins: all)",
)

CSV_COLUMNS = ["at", "consult_id", "user_id", "user_name", "user_email", "via"]


class AuditArgs(Input):
    patient_ref = limited(limits.PATIENT_REF, required=False)
    user_id = fields.Integer(validate=checked_by(limits.ROW_ID))
    consult_id = fields.Integer(validate=checked_by(limits.ROW_ID))
    start = AwareDateTime(data_key="from", metadata={"description": "inclusive"})
    end = AwareDateTime(data_key="to", metadata={"description": "exclusive"})
    format = fields.String(
        load_default="json", validate=validate.OneOf(["json", "csv"])
    )


class AuditRowSchema(Schema):
    consult_id = fields.Integer()
    user = fields.Nested(UserSchema)
    at = fields.DateTime()
    via = fields.String(metadata={"enum": VIAS})


def query_of(args) -> AuditQuery:
    return AuditQuery(
        patient_ref=args.get("patient_ref"),
        user_id=args.get("user_id"),
        consult_id=args.get("consult_id"),
        start=args.get("start"),
        end=args.get("end"),
    )


class AuditPage(SelectPage):
    """A page of the search; the CSV answer (every row) passes through whole."""

    @property
    def items(self):
        if isinstance(self.collection, Response):
            return self.collection
        return super().items

    @property
    def item_count(self):
        if isinstance(self.collection, Response):
            return SelectPage(self.collection.rows, self.page_params).item_count
        return super().item_count


def audit_csv(query) -> Response:
    """Every matching row as CSV (streamed), text guarded against spreadsheet formulas."""

    def lines():
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for row in db.session.scalars(query.execution_options(yield_per=1000)):
            cells = [
                row.at.isoformat(),
                row.consult_id,
                row.user_id,
                row.user.name,
                row.user.email,
                row.via,
            ]
            writer.writerow([_csv_cell(cell) for cell in cells])
            yield out.getvalue()
            out.seek(0)
            out.truncate()
        yield out.getvalue()

    response = Response(
        stream_with_context(lines()),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="access-audit.csv"'},
    )
    response.rows = query  # counted for X-Pagination
    return response


@blp.route("")
class Audit(MethodView):
    @blp.arguments(AuditArgs, location="query")
    @blp.response(200, AuditRowSchema(many=True))
    @blp.paginate(AuditPage, page_size=100, max_page_size=1000)
    @blp.refuses(403, descriptions={403: "Not a chief of any department, nor an admin"})
    @blp.doc(
        responses={
            200: {
                "description": "JSON; with `format=csv`, every matching row as CSV",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            }
        }
    )
    def get(self, args):
        """Who was shown which consults, newest first; filters combine (patient, user,
        consult, [from, to)). Chiefs see their departments' consults, admins all."""
        query = search(caller(), query_of(args))
        if args["format"] == "csv":
            return audit_csv(query)
        return query
