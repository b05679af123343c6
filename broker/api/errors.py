"""One shape for every API error: {code, status, message, errors?}.

422 answers name each bad field in `errors` ({field: [messages]}). Nothing a
client sent is echoed back, so patient data cannot leak through an error.
"""

from http import HTTPStatus

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from broker.consults.errors import Conflict, DomainError, Invalid, NotAllowed, NotFound

STATUS_OF = {NotFound: 404, NotAllowed: 403, Conflict: 409, Invalid: 422}


def error_response(code: int, message: str, errors: dict | None = None):
    body = {"code": code, "status": HTTPStatus(code).phrase, "message": message}
    if errors:
        body["errors"] = errors
    return jsonify(body), code


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


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        code = STATUS_OF[type(error)]
        errors = {error.field: [error.message]} if isinstance(error, Invalid) else None
        return error_response(code, error.message, errors)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if not _wants_json():
            return error
        fields = _fields_from_webargs(error)
        if fields:  # webargs says 400 for a body that is not JSON: still invalid input
            return error_response(422, "Invalid input.", fields)
        return error_response(error.code, error.description)

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception):
        if isinstance(error, HTTPException):
            return http_error(error)
        app.logger.exception(
            "Unhandled %s on %s %s", type(error).__name__, request.method, request.path
        )
        if _wants_json():
            return error_response(500, "Internal error. The action was not saved.")
        return "Internal error. The action was not saved.", 500
