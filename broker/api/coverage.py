"""A department's deadline policy and on-call schedule; the caller's notification inbox."""

from flask.views import MethodView

from broker import accounts, clock
from broker.api.auth import caller
from broker.api.blueprint import ApiBlueprint
from broker.api.pagination import SelectPage
from broker.api.schemas import (
    DepartmentSchema,
    NotificationArgs,
    NotificationSchema,
    OnCallSchema,
    PolicyUpdateSchema,
    ShiftRangeArgs,
    ShiftSchema,
)
from broker.consults import access, oncall
from broker.consults.deadlines import Minutes, set_policy
from broker.consults.notifications import inbox, mark_all_read, mark_read

coverage = ApiBlueprint(
    "coverage",
    __name__,
    url_prefix="/api/departments",
    description="Deadline policy and on-call coverage",
)
notifications = ApiBlueprint(
    "notifications",
    __name__,
    url_prefix="/api/notifications",
    description="The caller's personal alerts",
)
NOT_A_MANAGER = {403: "Not a chief of this department, nor an admin"}


@coverage.route("/<slug:slug>/policy")
class Policy(MethodView):
    @coverage.arguments(PolicyUpdateSchema)
    @coverage.response(200, DepartmentSchema)
    @coverage.refuses(403, 404, descriptions=NOT_A_MANAGER)
    def put(self, data, slug):
        """Set the minutes to claim, answer and answer a follow-up, per urgency (chief, admin).

        Applies to consults routed from now on; those already routed keep their deadlines.
        """
        department = accounts.department_by_slug(slug)
        minutes = {
            urgency: Minutes(
                m["claim_minutes"], m["answer_minutes"], m["followup_minutes"]
            )
            for urgency, m in data.items()
        }
        set_policy(caller(), department, minutes)
        return department


@coverage.route("/<slug:slug>/oncall")
class OnCall(MethodView):
    @coverage.response(200, OnCallSchema)
    @coverage.refuses(404)
    def get(self, slug):
        """Who covers the department now: the primary and the backup(s) on shift."""
        department = accounts.department_by_slug(slug)
        now = oncall.on_call_now(department)
        return {
            "department": department.slug,
            "at": clock.now(),
            "primary": now.primary,
            "backup": now.backup,
            "backups": now.backups,
        }


@coverage.route("/<slug:slug>/shifts")
class Shifts(MethodView):
    @coverage.arguments(ShiftRangeArgs, location="query")
    @coverage.response(200, ShiftSchema(many=True))
    @coverage.paginate(SelectPage, page_size=100, max_page_size=500)
    @coverage.refuses(403, 404, descriptions={403: "Not a member of this department"})
    def get(self, args, slug):
        """The schedule: shifts overlapping [from, to); by default those not yet over (members)."""
        department = accounts.department_by_slug(slug)
        access.may_see_department(caller(), department).enforce()
        return oncall.shifts_between(department, args.get("start"), args.get("end"))

    @coverage.arguments(ShiftSchema)
    @coverage.response(201, ShiftSchema)
    @coverage.refuses(
        403,
        404,
        409,
        descriptions={**NOT_A_MANAGER, 409: "Overlaps another primary shift"},
    )
    def post(self, data, slug):
        """Schedule a shift for a member (chief, admin)."""
        department = accounts.department_by_slug(slug)
        return oncall.add_shift(
            caller(),
            department,
            data["user_id"],
            data["role"],
            data["starts_at"],
            data["ends_at"],
        )


@coverage.route("/<slug:slug>/shifts/<id:shift_id>")
class ShiftDetail(MethodView):
    @coverage.response(204)
    @coverage.refuses(403, 404, descriptions=NOT_A_MANAGER)
    def delete(self, slug, shift_id):
        """Remove a shift (chief, admin)."""
        oncall.remove_shift(caller(), accounts.department_by_slug(slug), shift_id)


@notifications.route("")
class Inbox(MethodView):
    @notifications.arguments(NotificationArgs, location="query")
    @notifications.response(200, NotificationSchema(many=True))
    @notifications.paginate(SelectPage, page_size=50, max_page_size=200)
    def get(self, args):
        """Your notifications, newest first; `unread=true` for the unread only."""
        return inbox(caller(), unread_only=args.get("unread", False))


@notifications.route("/<id:notification_id>/read")
class MarkRead(MethodView):
    @notifications.response(200, NotificationSchema)
    @notifications.refuses(404)
    def post(self, notification_id):
        """Mark one notification read."""
        return mark_read(caller(), notification_id)


@notifications.route("/read-all")
class MarkAllRead(MethodView):
    @notifications.response(204)
    def post(self):
        """Mark all your notifications read."""
        mark_all_read(caller())
