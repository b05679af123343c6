"""Limits on signing in, shared by every way of signing in (the API and the page).

Following OWASP's Authentication cheat sheet (account lockout) and Credential
Stuffing cheat sheet (docs/security.md says how):

- per client address, every attempt: a hard limit (429);
- per account *and* address, failed attempts: a hard limit (429), so one address
  cannot go on guessing one account's password;
- per account alone, failed attempts from anywhere: no lock-out (which anyone could
  trigger for anyone), but a slow-down: past the allowance, each attempt on that
  account waits, twice as long after each further failure, up to a ceiling. The
  right password still signs in, from any address.

What is counted is normalised first: an e-mail or password that is not one string
is refused (422) before anything is counted or checked, and the account's counters
are keyed on the e-mail as the directory compares it (stripped, lower-cased).
"""

import time
from functools import wraps

from flask import after_this_request, current_app, request
from limits import parse

from broker.accounts import normalise_email
from broker.consults.errors import Invalid
from broker.extensions import limiter

CREDENTIALS = ("email", "password")


def _credential(name: str) -> str:
    """The sent e-mail or password: one string, or nothing; anything else is a 422."""
    if request.is_json:
        body = request.get_json(silent=True)
        value = body.get(name, "") if isinstance(body, dict) else ""
    else:
        values = request.form.getlist(name)
        value = values[0] if len(values) == 1 else values or ""
    if not isinstance(value, str):
        raise Invalid(name, "A single text value is required.")
    return value


def _account() -> str:
    return "account:" + normalise_email(_credential("email"))


def _account_and_address() -> str:
    return f"{_account()}|address:{request.remote_addr}"


def _failed(response) -> bool:
    return response.status_code == 401


# Failures per account are counted against this many in the window: effectively no cap.
_UNCAPPED = 10**9


def _slow_down_limit():
    allowed = parse(current_app.config["SIGN_IN_FAILURES_BEFORE_SLOW_DOWN"])
    return allowed, type(allowed)(_UNCAPPED, allowed.multiples, allowed.namespace)


def _failures(account: str) -> int:
    """Failed sign-ins into this account, from any address, in the current window.

    Storage out of reach (Redis down, before Flask-Limiter falls back to memory) must
    not stop anyone signing in: then nothing is known, and nothing slows.
    """
    if not limiter.enabled:
        return 0
    _, counter = _slow_down_limit()
    try:
        stats = limiter.limiter.get_window_stats(counter, "sign-in-failures", account)
    except Exception:  # noqa: BLE001  (any storage failure: see above)
        current_app.logger.warning("Sign-in failures could not be read")
        return 0
    return _UNCAPPED - stats.remaining


def _count_failure(account: str) -> None:
    if not limiter.enabled:
        return
    _, counter = _slow_down_limit()
    try:
        limiter.limiter.hit(counter, "sign-in-failures", account)
    except Exception:  # noqa: BLE001  (as in _failures)
        current_app.logger.warning("A failed sign-in could not be counted")


def slow_down_seconds(failures: int) -> float:
    """How long an attempt on an account with this many recent failures waits."""
    allowed, _ = _slow_down_limit()
    excess = failures - allowed.amount
    if excess < 0:
        return 0.0
    first = current_app.config["SIGN_IN_SLOW_DOWN_SECONDS"]
    ceiling = current_app.config["SIGN_IN_SLOW_DOWN_MAX_SECONDS"]
    return min(ceiling, first * 2**excess)


def _slowed(view):
    """Wait as the account's failures ask (logged: an account under attack), count a failure."""

    @wraps(view)
    def attempt(*args, **kwargs):
        if request.method != "POST":
            return view(*args, **kwargs)
        for name in CREDENTIALS:
            _credential(name)
        account = _account()
        failures = _failures(account)
        delay = slow_down_seconds(failures)
        if delay:
            current_app.logger.warning(
                "Sign-in slowed by %.2f s: %d failed attempts on one account",
                delay,
                failures,
            )
            time.sleep(delay)

        @after_this_request
        def count_failure(response):
            if _failed(response):
                _count_failure(account)
            return response

        return view(*args, **kwargs)

    return attempt


def sign_in_limits(view):
    """Every limit on signing in, for a view that signs in."""
    view = limiter.shared_limit(
        lambda: current_app.config["SIGN_IN_LIMIT_PER_ADDRESS"],
        scope="sign-in-address",
        methods=["POST"],
    )(view)
    view = limiter.shared_limit(
        lambda: current_app.config["SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS"],
        scope="sign-in-account-address",
        key_func=_account_and_address,
        deduct_when=_failed,
        methods=["POST"],
    )(view)
    return _slowed(view)
