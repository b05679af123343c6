"""Bounds on what one request may carry, checked before anything parses it.

The size of a body is Flask's MAX_CONTENT_LENGTH (413). A JSON body nested deeper
than JSON_MAX_DEPTH is refused (422) before a parser recurses into it: past about
a thousand levels Python's own parser fails with a RecursionError.
"""

import re
from itertools import accumulate

from flask import current_app, request
from werkzeug.exceptions import UnprocessableEntity

# A JSON string, escapes included; one left open runs to the end. Possessive, and
# never failing once started: linear whatever the body holds.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
# An opening bracket becomes +1, a closing one -1 (0xff read as a signed byte).
_STEPS = bytes.maketrans(_BRACKETS, b"\x01\xff\x01\xff")


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (0 for a scalar)."""
    steps = _STRING.sub(b"", body).translate(_STEPS, delete=_NOT_BRACKETS)
    return max(accumulate(memoryview(steps).cast("b")), default=0)


def refuse_deep_json() -> None:
    """before_request: a JSON body nested deeper than JSON_MAX_DEPTH is a 422."""
    if not request.is_json:
        return
    limit = current_app.config["JSON_MAX_DEPTH"]
    if json_depth(request.get_data(cache=True)) > limit:
        error = UnprocessableEntity(f"JSON nested deeper than {limit} levels.")
        # In the shape webargs gives a body it cannot read, so the API names it.
        error.data = {"messages": {"json": [error.description]}}
        raise error
