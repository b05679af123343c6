"""Rate limits on signing in: per client address, and failed attempts per account."""

from flask import current_app, request

from broker.extensions import limiter


def _account() -> str:
    """The account being signed into, from a JSON or form body."""
    data = request.get_json(silent=True) if request.is_json else request.form
    email = (data or {}).get("email", "") if hasattr(data, "get") else ""
    return "account:" + str(email).strip().lower()


def _failed(response) -> bool:
    return response.status_code == 401


def sign_in_limits(view):
    """Both limits, read from the config when a request comes in."""
    view = limiter.limit(
        lambda: current_app.config["SIGN_IN_LIMIT_PER_ADDRESS"], methods=["POST"]
    )(view)
    return limiter.limit(
        lambda: current_app.config["SIGN_IN_FAILURES_PER_ACCOUNT"],
        key_func=_account,
        deduct_when=_failed,
        methods=["POST"],
    )(view)
