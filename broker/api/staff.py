"""Administration over the API: users, departments, memberships, the admin log, one's password.

Thin: each call is one function of `broker/staff.py`, which checks who may do it.
"""

from flask import g
from flask.views import MethodView
from marshmallow import Schema, fields
from sqlalchemy import select

from broker import accounts, staff
from broker.api.auth import caller
from broker.api.blueprint import ApiBlueprint
from broker.api.schemas import (
    DepartmentSchema,
    Input,
    MemberSchema,
    UserSchema,
    checked_by,
    limited,
)
from broker.consults import limits
from broker.consults.errors import NotFound
from broker.extensions import db
from broker.models import Membership, User

users = ApiBlueprint(
    "users", __name__, url_prefix="/api/users", description="Users (administrators)"
)
members = ApiBlueprint(
    "members",
    __name__,
    url_prefix="/api/departments",
    description="Departments and their members (administrators; chiefs for members)",
)
admin_log = ApiBlueprint(
    "admin_log",
    __name__,
    url_prefix="/api/admin-log",
    description="The administrative log (administrators)",
)
password = ApiBlueprint(
    "password", __name__, url_prefix="/api/me/password", description="The caller"
)

NOT_ADMIN = {403: "Not an administrator"}
NOT_MANAGER = {403: "Not a chief of this department, nor an administrator"}


class AccountSchema(UserSchema):
    """A user as administrators see them."""

    active = fields.Boolean()
    admin = fields.Boolean(attribute="is_admin")
    must_change_password = fields.Boolean()
    departments = fields.Method("slugs", metadata={"description": "slugs"})

    def slugs(self, user) -> list[str]:
        return sorted(m.department.slug for m in user.memberships)


class NewUserSchema(Input):
    email = limited(limits.EMAIL)
    name = limited(limits.PERSON_NAME)
    password = fields.String(
        load_default=None,
        metadata={
            "description": "optional: without one the user signs in through the "
            "identity provider, or after a reset; at least 12 characters, not "
            "containing the email, not a common password",
            "minLength": limits.PASSWORD.min_length,
        },
    )
    admin = fields.Boolean(load_default=False)


class UserChangeSchema(Input):
    email = limited(limits.EMAIL, required=False)
    name = limited(limits.PERSON_NAME, required=False)
    active = fields.Boolean(
        metadata={"description": "false deactivates (SPEC rule 7), true reactivates"}
    )
    admin = fields.Boolean()


class TemporaryPasswordSchema(Schema):
    temporary_password = fields.String(
        metadata={"description": "shown once: the user must change it at sign-in"}
    )


class NewDepartmentSchema(Input):
    slug = limited(limits.SLUG)
    name = limited(limits.DEPARTMENT_NAME)


class DepartmentChangeSchema(Input):
    name = limited(limits.DEPARTMENT_NAME, required=False)
    archived = fields.Boolean(metadata={"description": "true archives it"})


class MembershipSchema(Input):
    chief = fields.Boolean(load_default=False)


class AdminEventSchema(Schema):
    id = fields.Integer()
    at = fields.AwareDateTime()
    kind = fields.String()
    actor = fields.Nested(UserSchema, allow_none=True)
    user = fields.Nested(UserSchema, allow_none=True)
    department = fields.Function(
        lambda e: e.department.slug if e.department else None, allow_none=True
    )
    detail = fields.String()


class AdminLogArgs(Input):
    before_id = fields.Integer(
        load_default=None,
        validate=checked_by(limits.ROW_ID),
        metadata={"description": "older than this event"},
    )


class PasswordChangeSchema(Input):
    current_password = fields.String(required=True)
    new_password = fields.String(
        required=True, metadata={"minLength": limits.PASSWORD.min_length}
    )


def _user(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


@users.route("")
class Users(MethodView):
    @users.response(200, AccountSchema(many=True))
    @users.refuses(403, descriptions=NOT_ADMIN)
    def get(self):
        """Every user, by name (administrators)."""
        staff.may_administer(caller()).enforce()
        return db.session.scalars(select(User).order_by(User.name))

    @users.arguments(NewUserSchema)
    @users.response(201, AccountSchema)
    @users.refuses(403, 409, descriptions=NOT_ADMIN)
    def post(self, data):
        """Create a user, in no department (administrators)."""
        return staff.create_user(caller(), **data)


@users.route("/<id:user_id>")
class OneUser(MethodView):
    @users.arguments(UserChangeSchema)
    @users.response(200, AccountSchema)
    @users.refuses(403, 404, 409, descriptions=NOT_ADMIN)
    def patch(self, data, user_id):
        """Change a user; `active: false` deactivates them (administrators).

        Deactivating ends their tokens, removes their shifts not yet over, withdraws
        handoffs offered to them and gives each open consult they own to its
        department's primary on call (else its chief). 409 when they are the last
        member or chief of a department.
        """
        user, actor = _user(user_id), caller()
        active = data.pop("active", None)
        if data:
            staff.edit_user(actor, user, **data)
        if active is False and user.active:
            staff.deactivate_user(actor, user)
        elif active is True and not user.active:
            staff.reactivate_user(actor, user)
        elif active is not None or not data:
            staff.may_administer(actor).enforce()
        return user


@users.route("/<id:user_id>/password-reset")
class PasswordReset(MethodView):
    @users.response(201, TemporaryPasswordSchema)
    @users.refuses(403, 404, descriptions=NOT_ADMIN)
    def post(self, user_id):
        """A temporary password for the user, who must set a new one at sign-in."""
        user = _user(user_id)
        return {"temporary_password": staff.reset_password(caller(), user)}


@members.route("")
class Departments(MethodView):
    @members.arguments(NewDepartmentSchema)
    @members.response(201, DepartmentSchema)
    @members.refuses(403, 409, descriptions=NOT_ADMIN)
    def post(self, data):
        """Create a department with the default deadlines (administrators)."""
        return staff.create_department(caller(), data["slug"], data["name"])


@members.route("/<slug:slug>")
class OneDepartment(MethodView):
    @members.arguments(DepartmentChangeSchema)
    @members.response(200, DepartmentSchema)
    @members.refuses(403, 404, 409, descriptions=NOT_ADMIN)
    def patch(self, data, slug):
        """Rename or archive a department (administrators)."""
        department, actor = accounts.department_by_slug(slug), caller()
        if "name" in data:
            staff.rename_department(actor, department, data["name"])
        if data.get("archived"):
            staff.archive_department(actor, department)
        staff.may_administer(actor).enforce()
        return department


@members.route("/<slug:slug>/members/<id:user_id>")
class OneMember(MethodView):
    @members.arguments(MembershipSchema)
    @members.response(200, MemberSchema)
    @members.refuses(403, 404, 409, descriptions=NOT_MANAGER)
    def put(self, data, slug, user_id):
        """Add the user to the department, or mark or unmark them chief."""
        department, user = accounts.department_by_slug(slug), _user(user_id)
        membership = staff.set_membership(caller(), department, user, data["chief"])
        return _member(membership)

    @members.response(204)
    @members.refuses(403, 404, 409, descriptions=NOT_MANAGER)
    def delete(self, slug, user_id):
        """Remove the user from the department: their open consults there go to the
        primary on call (else the chief), their shifts not yet over are removed.
        409 for the last member or chief."""
        department, user = accounts.department_by_slug(slug), _user(user_id)
        staff.remove_member(caller(), department, user)


def _member(membership: Membership) -> dict:
    user = membership.user
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "chief": membership.is_chief,
    }


@admin_log.route("")
class AdminLog(MethodView):
    @admin_log.arguments(AdminLogArgs, location="query")
    @admin_log.response(200, AdminEventSchema(many=True))
    @admin_log.refuses(403, descriptions=NOT_ADMIN)
    def get(self, args):
        """Who changed which user or department, when: newest first, 200 at a time."""
        staff.may_administer(caller()).enforce()
        return staff.admin_log(before_id=args["before_id"])


@password.route("")
class Password(MethodView):
    @password.arguments(PasswordChangeSchema)
    @password.response(204)
    def put(self, data):
        """Change your password (the current one required); your other sessions and
        tokens end."""
        staff.change_password(
            caller(),
            data["current_password"],
            data["new_password"],
            keeping=g.get("credential"),
        )
