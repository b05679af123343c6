"""ApiBlueprint: a flask-smorest Blueprint whose document lists every error its views answer.

A client reading /api/openapi.json must see every status an operation can give. Every
error has the one JSON shape of errors.py (`{code, status, message, errors?}`, the
document's `Error` schema). Each operation lists, besides its success:

- 503 (the database is unavailable): every operation reads the database;
- 401 (no valid bearer token), on a blueprint whose callers must sign in, which the
  blueprint also enforces;
- 422 (invalid input) wherever the view takes arguments: flask-smorest lists it;
- whatever the view names with `@blp.refuses(...)`: 403, 404, 409, 429 ...

tests/test_schema.py runs Schemathesis against the document and fails on a status
an operation answers that it does not list.
"""

import json

from flask_smorest import Blueprint

from broker.api.auth import require_caller
from broker.api.dumping import use_compiled_dump
from broker.api.pagination import PAGE_HEADER, pagination_metadata
from broker.extensions import rest_api

DESCRIPTIONS = {
    401: "Not signed in: no bearer token, or one that expired or was revoked",
    403: "Signed in, but not allowed to do this",
    404: "Unknown, or not visible to you",
    409: "The current state does not allow this (or it changed meanwhile)",
    422: "Invalid input: `errors` names each bad field",
    429: "Too many attempts: try again after Retry-After seconds",
    503: "The database is unavailable: nothing was saved, unless the message says "
    "otherwise; try again after Retry-After seconds",
}

RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}


def documented_error(status: int, description: str | None = None) -> dict:
    """One documented error response, in the shape errors.py answers it."""
    response = {
        "description": description or DESCRIPTIONS[status],
        "content": {"application/json": {"schema": rest_api.ERROR_SCHEMA}},
    }
    if status in (429, 503):
        response["headers"] = RETRY_AFTER
    return response


class ApiBlueprint(Blueprint):
    """A Blueprint of the API. `signed_in`: every call needs a bearer token (else 401)."""

    def __init__(self, *args, signed_in: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.signed_in = signed_in
        if signed_in:
            self.before_request(require_caller)
        # The steps that write each operation's document, one per flask-smorest feature
        # (arguments, response, pagination, ETag); refusals come last.
        self._prepare_doc_cbks.append(self._prepare_refusals_doc)

    def arguments(self, schema, **kwargs):
        """flask-smorest's `arguments`, the schema made once: given a class, webargs
        would make an instance of it on every request."""
        return super().arguments(
            schema() if isinstance(schema, type) else schema, **kwargs
        )

    def response(self, status_code, schema=None, **kwargs):
        """flask-smorest's `response`, dumping with the schema compiled (dumping.py)."""
        if schema is not None:
            schema = use_compiled_dump(schema() if isinstance(schema, type) else schema)
        return super().response(status_code, schema, **kwargs)

    @staticmethod
    def refuses(*statuses: int, descriptions: dict[int, str] | None = None):
        """Decorator: the view answers these error statuses too (descriptions optional)."""
        descriptions = descriptions or {}
        if not set(descriptions) <= set(statuses):
            raise ValueError("A description for a status the view does not refuse.")

        def decorator(view):
            refusals = view.__dict__.setdefault("_apidoc", {}).setdefault(
                "refusals", {}
            )
            refusals.update({s: descriptions.get(s) for s in statuses})
            return view

        return decorator

    def _set_pagination_metadata(self, page_params, result, headers):
        """X-Pagination without a total (pagination.py says why)."""
        headers = {} if headers is None else headers
        headers[self.PAGINATION_HEADER_NAME] = json.dumps(
            pagination_metadata(page_params)
        )
        return result, headers

    def _document_pagination_metadata(self, spec, resp_doc):
        resp_doc.setdefault("headers", {})[self.PAGINATION_HEADER_NAME] = PAGE_HEADER

    def _prepare_refusals_doc(self, doc, doc_info, **kwargs):
        """Adds the operation's error responses to its document (a flask-smorest doc step)."""
        refusals = {503: None, **({401: None} if self.signed_in else {})}
        refusals.update(doc_info.get("refusals", {}))
        responses = doc.setdefault("responses", {})
        for status, description in refusals.items():
            responses[status] = documented_error(status, description)
        doc["responses"] = dict(sorted(responses.items(), key=lambda r: str(r[0])))
        return doc
