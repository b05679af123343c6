"""The consult endpoints. Each view parses, calls one domain function, and shapes the result.

The action routes (`POST /api/consults/<id>/<action>`) are made from the action
registry when the app is built (`consults_blueprint()`): one route, one input
schema and one OpenAPI operation per registered action.
"""

from flask.views import MethodView

from broker.api.auth import caller
from broker.api.blueprint import ApiBlueprint
from broker.api.pagination import SelectPage, ShownConsultsPage
from broker.api.schemas import (
    ConsultDetailSchema,
    ConsultListArgs,
    ConsultSchema,
    NewConsultHeaders,
    NewConsultSchema,
    ReadSchema,
    action_schema,
)
from broker.consults import actions, registry
from broker.consults.audit import access_log, record_read
from broker.consults.queries import (
    ConsultFilter,
    timeline,
    visible_consult,
    visible_consult_views,
)

NO_SUCH_CONSULT = {404: "No such consult, or not visible to you"}


def with_timeline(consult):
    """The consult as GET /api/consults/<id> shows it."""
    consult.timeline = timeline(consult)
    return consult


def consults_blueprint() -> ApiBlueprint:
    """The consult endpoints, with one route per action registered now."""
    blp = ApiBlueprint(
        "consults", __name__, url_prefix="/api/consults", description="Consults"
    )
    _register_reads_and_create(blp)
    for action in registry.ACTIONS.values():
        _register_action(blp, action)
    return blp


def _register_reads_and_create(blp: ApiBlueprint) -> None:
    @blp.route("")
    class Consults(MethodView):
        @blp.arguments(ConsultListArgs, location="query")
        @blp.response(200, ConsultSchema(many=True))
        @blp.paginate(ShownConsultsPage, page_size=50, max_page_size=200)
        def get(self, args):
            """The consults the caller may see, newest first; filters combine. Audited."""
            wanted = ConsultFilter(
                department=args.get("department"),
                status=args.get("status"),
                owner_is_me=args.get("owner") == "me",
                requester_is_me=args.get("requester") == "me",
                overdue=args.get("overdue"),
                updated_since=args.get("updated_since"),
            )
            return visible_consult_views(caller(), wanted)

        @blp.arguments(NewConsultSchema)
        @blp.arguments(NewConsultHeaders, location="headers")
        @blp.response(201, ConsultSchema)
        @blp.refuses(
            409, descriptions={409: "The Idempotency-Key was used for another consult"}
        )
        def post(self, data, headers):
            """Send a new consult to a department's queue (once per Idempotency-Key)."""
            request_key = headers.get("request_key")
            if request_key is None:
                return actions.create(caller(), **data)
            consult, created = actions.create_once(caller(), request_key, **data)
            return consult, 201, ({} if created else {"Idempotent-Replayed": "true"})

    @blp.route("/<id:consult_id>")
    class ConsultDetail(MethodView):
        @blp.response(200, ConsultDetailSchema)
        @blp.refuses(404, descriptions=NO_SUCH_CONSULT)
        def get(self, consult_id):
            """The consult with its timeline, oldest event first. The read is audited."""
            consult = with_timeline(visible_consult(caller(), consult_id))
            record_read(consult, caller(), "api")
            return consult

    @blp.route("/<id:consult_id>/access-log")
    class AccessLog(MethodView):
        @blp.response(200, ReadSchema(many=True))
        @blp.paginate(SelectPage, page_size=100, max_page_size=500)
        @blp.refuses(
            403,
            404,
            descriptions={
                **NO_SUCH_CONSULT,
                403: "Not a chief of its department, nor an admin",
            },
        )
        def get(self, consult_id):
            """Who read the consult's details, and when, newest first (its chiefs, admins)."""
            consult = visible_consult(caller(), consult_id)
            return access_log(caller(), consult)


def _register_action(blp: ApiBlueprint, action: registry.Action) -> None:
    """POST /api/consults/<id>/<path>: the action; answers the consult with its
    timeline. Refused as its predicate says (403, 409); 404 if not visible."""

    def take(consult_id, data):
        consult = visible_consult(caller(), consult_id, with_timeline=True)
        done = registry.perform(
            action.name, consult, caller(), data, shown_via="api-action"
        )
        return with_timeline(done)

    if action.inputs:

        def view(data, consult_id):
            return take(consult_id, data)
    else:

        def view(consult_id):
            return take(consult_id, {})

    view.__doc__ = action.doc
    view = blp.refuses(403, 404, 409, descriptions=NO_SUCH_CONSULT)(view)
    view = blp.response(200, ConsultDetailSchema)(view)
    if action.inputs:
        view = blp.arguments(action_schema(action))(view)
    endpoint = "consult_" + action.name
    blp.route(f"/<id:consult_id>/{action.path}", endpoint=endpoint, methods=["POST"])(
        view
    )
