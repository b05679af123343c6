"""Tokens, the caller, departments."""

from flask import current_app
from flask.views import MethodView
from sqlalchemy import select
from werkzeug.exceptions import Unauthorized

from broker import accounts
from broker.api.auth import bearer_token, caller, require_caller
from broker.api.blueprint import ApiBlueprint
from broker.api.schemas import (
    DepartmentSchema,
    MemberSchema,
    MeSchema,
    TokenRequestSchema,
    TokenSchema,
)
from broker.consults import access
from broker.extensions import db
from broker.models import Department
from broker.throttle import sign_in_limits

tokens = ApiBlueprint(
    "tokens",
    __name__,
    url_prefix="/api/tokens",
    description="Sign in",
    signed_in=False,
)
me = ApiBlueprint("me", __name__, url_prefix="/api/me", description="The caller")
departments = ApiBlueprint(
    "departments", __name__, url_prefix="/api/departments", description="Departments"
)


@tokens.route("")
class Tokens(MethodView):
    @sign_in_limits
    @tokens.arguments(TokenRequestSchema)
    @tokens.response(201, TokenSchema)
    @tokens.refuses(401, 429, descriptions={401: "Wrong email or password"})
    @tokens.doc(security=[])
    def post(self, credentials):
        """Exchange email and password for a bearer token."""
        if not current_app.config["LOCAL_PASSWORDS"]:
            raise Unauthorized(
                "Password sign-in is off: sign in on the page through the hospital's "
                "identity provider and make a personal token on your account page."
            )
        user = accounts.authenticate(credentials["email"], credentials["password"])
        if user is None:
            raise Unauthorized("Wrong email or password.")
        if user.must_change_password:
            raise Unauthorized("Set a new password first: sign in on the page.")
        return {"token": accounts.issue_token(user)}


@tokens.route("/current")
class CurrentToken(MethodView):
    @tokens.response(204)
    @tokens.refuses(401)
    def delete(self):
        """Revoke the token this request carries (sign out of the API)."""
        require_caller()
        accounts.revoke_token(bearer_token())


@me.route("")
class Me(MethodView):
    @me.response(200, MeSchema)
    def get(self):
        """The signed-in user, with departments and roles."""
        user = caller()
        slugs = sorted(m.department.slug for m in user.memberships)
        chief_of = sorted(m.department.slug for m in user.memberships if m.is_chief)
        return {
            "id": user.id,
            "name": user.name,
            "email": user.email,
            "departments": slugs,
            "chief_of": chief_of,
            "roles": access.roles_of(user),
        }


@departments.route("")
class Departments(MethodView):
    @departments.response(200, DepartmentSchema(many=True))
    def get(self):
        """Every department, with its deadline policy."""
        return db.session.scalars(select(Department).order_by(Department.name))


@departments.route("/<slug:slug>/members")
class Members(MethodView):
    @departments.response(200, MemberSchema(many=True))
    @departments.refuses(403, 404, descriptions={403: "Not a member, chief or admin"})
    def get(self, slug):
        """The department's members (to hand off to, or assign): for its members, its
        chiefs and admins only."""
        department = accounts.department_by_slug(slug)
        access.may_see_department(caller(), department).enforce()
        return [
            {"id": u.id, "name": u.name, "email": u.email, "chief": m.is_chief}
            for m, u in access.members_of(department)
        ]
