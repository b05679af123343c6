"""One shape for every API error: {code, status, message, errors?}.

422 answers name each bad field in `errors` ({field: [messages]}). Nothing a
client sent is echoed back, so patient data cannot leak through an error.
When the database cannot be reached (down, restarting, the connection lost), the
answer is 503 with Retry-After and the same process serves again once it is back.
Every action is one transaction, so nothing of it was saved, unless the outage
struck after its commit, while the answer was being read: then the 503 says so.
"""

from http import HTTPStatus

from flask import Flask, current_app, g, has_request_context, jsonify, request
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from broker.consults.changes import committing
from broker.consults.errors import DomainError, Invalid
from broker.extensions import db
from broker.http_errors import status_of

DATABASE_UNAVAILABLE = (
    "The database is unavailable; nothing was saved. Try again shortly."
)
SAVED_THEN_UNAVAILABLE = (
    "The action was saved, but the database became unavailable before the answer "
    "was complete. Reload shortly to see it."
)
RETRY_AFTER_SECONDS = 5


def error_response(code: int, message: str, errors: dict | None = None):
    body = {"code": code, "status": HTTPStatus(code).phrase, "message": message}
    if errors:
        body["errors"] = errors
    return jsonify(body), code


# What a person sees on a page for these; the rest keep Werkzeug's own text. None of
# them repeats anything that was sent.
PAGE_MESSAGES = {
    403: "You are signed in, but this is not yours to see or do.",
    404: "There is no such page, or it is not one you may see.",
}


def error_page(code: int, message: str):
    """A plain page for a browser, rendered without the pages' context (which reads
    the database: it must render in an outage too)."""
    template = current_app.jinja_env.get_template("error.html")
    html = template.render(title=f"{code} {HTTPStatus(code).phrase}", message=message)
    return html, code


def _fields_from_webargs(error: HTTPException) -> dict | None:
    """webargs nests messages by location ({"json": {...}}); clients want the fields."""
    messages = getattr(error, "data", {}).get("messages")
    if not messages:
        return None
    fields = {}
    for location, per_location in messages.items():
        if isinstance(per_location, dict):
            fields.update(per_location)
        else:  # the location as a whole is bad, e.g. a body that is not JSON
            fields[location] = per_location
    return fields


def _wants_json() -> bool:
    return request.path.startswith("/api")


def _database_unavailable(error: DBAPIError) -> bool:
    """The database could not be reached or dropped the connection: an outage, not a bug."""
    return error.connection_invalidated or isinstance(
        error, OperationalError | InterfaceError
    )


@committing.connect
def _note_saved(session, changes):
    """Once committed: a change to a consult was saved in this request."""

    def saved() -> None:
        if has_request_context():
            g.consult_change_saved = True

    return saved


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        code = status_of(error)
        errors = error.errors if isinstance(error, Invalid) else None
        return error_response(code, error.message, errors)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if not _wants_json():
            return error_page(
                error.code, PAGE_MESSAGES.get(error.code, error.description)
            )
        fields = _fields_from_webargs(error)
        if fields:  # webargs says 400 for a body that is not JSON: still invalid input
            return error_response(422, "Invalid input.", fields)
        return error_response(error.code, error.description)

    @app.errorhandler(DBAPIError)
    def database_error(error: DBAPIError):
        if not _database_unavailable(error):
            return unexpected_error(error)
        app.logger.error(
            "Database unavailable on %s %s: %s",
            request.method,
            request.path,
            type(error.orig).__name__,
        )
        saved = g.get("consult_change_saved", False)
        message = SAVED_THEN_UNAVAILABLE if saved else DATABASE_UNAVAILABLE
        if _wants_json():
            response, code = error_response(503, message)
        else:
            response, code = error_page(503, message)
        return response, code, {"Retry-After": str(RETRY_AFTER_SECONDS)}

    @app.teardown_appcontext
    def end_session(error: BaseException | None) -> None:
        """End the request's session before Flask-SQLAlchemy's teardown does (the last
        registered runs first). Its closing rollback fails on a connection that the
        database dropped since the last query; that connection is discarded by then,
        and the answer already made stands instead of turning into a bare 500."""
        try:
            db.session.remove()
        except DBAPIError as failure:
            if not _database_unavailable(failure):
                raise
            db.session.remove()

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        app.logger.exception(
            "Unhandled %s on %s %s", type(error).__name__, request.method, request.path
        )
        if _wants_json():
            return error_response(500, "Internal error. The action was not saved.")
        return error_page(500, "Something went wrong on our side. Nothing was saved.")
