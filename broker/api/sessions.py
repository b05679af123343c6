"""The caller's sessions and tokens (see and end them); an administrator ends all of a user's."""

from flask.views import MethodView
from marshmallow import Schema, fields

from broker import sessions
from broker.api.auth import caller, credential
from broker.api.blueprint import ApiBlueprint
from broker.consults.errors import NotAllowed, NotFound
from broker.extensions import db
from broker.models import User

blp = ApiBlueprint(
    "sessions",
    __name__,
    url_prefix="/api/sessions",
    description="Your sessions and tokens",
)
user_sessions = ApiBlueprint(
    "user_sessions", __name__, url_prefix="/api/users", description="Users (admin)"
)

KINDS = ("session", "token")


class CredentialSchema(Schema):
    id = fields.String(metadata={"description": "`session-<n>` or `token-<n>`"})
    kind = fields.String(metadata={"enum": list(KINDS)})
    started_at = fields.DateTime()
    last_used_at = fields.DateTime(
        allow_none=True, metadata={"description": "sessions only"}
    )
    expires_at = fields.DateTime(allow_none=True)
    address = fields.String(allow_none=True)
    browser = fields.String(allow_none=True)
    current = fields.Boolean(metadata={"description": "the one of this request"})


def listed(user: User, current: sessions.Credential | None) -> list[dict]:
    """The user's sessions and tokens in force, as the API and the page show them."""
    held = sessions.of(user)
    rows = []
    for record in held["sessions"]:
        rows.append(
            {
                "id": f"session-{record.id}",
                "kind": "session",
                "started_at": record.started_at,
                "last_used_at": record.last_used_at,
                "expires_at": record.started_at + sessions.absolute_limit(),
                "address": record.address,
                "browser": record.browser,
                "current": current == sessions.Credential("session", record.id),
            }
        )
    for token in held["tokens"]:
        rows.append(
            {
                "id": f"token-{token.id}",
                "kind": "token",
                "started_at": token.created_at,
                "last_used_at": None,
                "expires_at": token.expires_at,
                "address": None,
                "browser": None,
                "current": current == sessions.Credential("token", token.id),
            }
        )
    return rows


def parse_id(text: str) -> tuple[str, int]:
    """`session-12` -> ("session", 12); anything else is not found."""
    kind, _, number = text.partition("-")
    if kind not in KINDS or not number.isdigit() or len(number) > 9:
        raise NotFound("No such session or token of yours.")
    return kind, int(number)


@blp.route("")
class Sessions(MethodView):
    @blp.response(200, CredentialSchema(many=True))
    def get(self):
        """Your sessions and tokens in force: started, last used, from where."""
        return listed(caller(), credential())

    @blp.response(204)
    def delete(self):
        """End all your sessions and tokens, this one included (signed out everywhere)."""
        sessions.end_all(caller())


@blp.route("/<string:credential_id>")
class OneSession(MethodView):
    @blp.response(204)
    @blp.refuses(404, descriptions={404: "No such session or token of yours"})
    def delete(self, credential_id):
        """End one of your sessions or tokens; its live connections close."""
        sessions.end_one(caller(), *parse_id(credential_id))


@user_sessions.route("/<id:user_id>/sessions")
class UserSessions(MethodView):
    @user_sessions.response(204)
    @user_sessions.refuses(403, 404, descriptions={403: "Not an administrator"})
    def delete(self, user_id):
        """End all of a user's sessions and tokens (admin)."""
        if not caller().is_admin:
            raise NotAllowed("Only an administrator may end another user's sessions.")
        user = db.session.get(User, user_id)
        if user is None:
            raise NotFound("No such user.")
        sessions.end_all(user)
