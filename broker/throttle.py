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
    """Both limits, shared by every way of signing in (the API and the page)."""
    view = limiter.shared_limit(
        lambda: current_app.config["SIGN_IN_LIMIT_PER_ADDRESS"],
        scope="sign-in-address",
        methods=["POST"],
    )(view)
    return limiter.shared_limit(
        lambda: current_app.config["SIGN_IN_FAILURES_PER_ACCOUNT"],
        scope="sign-in-account",
        key_func=_account,
        deduct_when=_failed,
        methods=["POST"],
    )(view)
