"""Settings read from the environment, with documented defaults.

Every setting can be overridden by an environment variable of the same name.
"""

import os


def normalise_database_url(url: str) -> str:
    """Accept the plain `postgresql://` (and Heroku-style `postgres://`) forms.

    SQLAlchemy would pick psycopg2 for them; the broker ships psycopg 3.
    """
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Config:
    # Signs session cookies and CSRF tokens: a long random value, the same in every process.
    # There is no built-in one: without it the service refuses to start, except in
    # development (FLASK_DEBUG) and tests, which get a random key per process.
    SECRET_KEY = os.environ.get("SECRET_KEY", "")

    # Default: a SQLite file in the instance folder (filled in by create_app).
    DATABASE_URL = os.environ.get("DATABASE_URL", "")

    # Optional Redis URL: the Socket.IO message queue shared by several processes.
    REDIS_URL = os.environ.get("REDIS_URL", "")

    # The Redis pub/sub channel of this deployment's live pushes. Redis channels ignore the
    # database number: two deployments sharing a Redis server must use different channels,
    # or each would push its consults to the other's clients.
    SOCKETIO_CHANNEL = os.environ.get("SOCKETIO_CHANNEL", "consult-broker")

    # Socket.IO server mode: threading for `make run` and the tests; `make serve` sets gevent
    # (docs/deployment.md says why, by measurement).
    SOCKETIO_ASYNC_MODE = os.environ.get("SOCKETIO_ASYNC_MODE", "threading")

    # Seconds between deadline sweeps inside the running service (0 turns it off).
    SWEEP_INTERVAL_SECONDS = int(os.environ.get("SWEEP_INTERVAL_SECONDS", "30"))
    # Pages show and read times on this clock (an IANA name, e.g. Europe/London);
    # the API and the database keep UTC.
    HOSPITAL_TIME_ZONE = os.environ.get("HOSPITAL_TIME_ZONE", "UTC")
    # Pages re-read what changed this often even while connected (0: never): a push
    # lost without the socket dropping (a server that lost Redis) is caught up.
    LIVE_RESYNC_SECONDS = int(os.environ.get("LIVE_RESYNC_SECONDS", "60"))

    # Hours after an answer with no follow-up before the system closes a consult.
    AUTO_CLOSE_HOURS = int(os.environ.get("AUTO_CLOSE_HOURS", "72"))

    # Bearer tokens expire after this many hours (a long shift); DELETE /api/tokens/current revokes.
    TOKEN_LIFETIME_HOURS = int(os.environ.get("TOKEN_LIFETIME_HOURS", "12"))

    # Signing in (broker/throttle.py, docs/security.md). Hard limits (429): attempts per
    # client address, and failed attempts per account from one address.
    SIGN_IN_LIMIT_PER_ADDRESS = os.environ.get(
        "SIGN_IN_LIMIT_PER_ADDRESS", "30 per minute"
    )
    SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS = os.environ.get(
        "SIGN_IN_FAILURES_PER_ACCOUNT_AND_ADDRESS", "10 per 15 minutes"
    )
    # Per account from anywhere, no lock-out: past this many failures each attempt waits,
    # SIGN_IN_SLOW_DOWN_SECONDS at first, twice as long after each further failure, at most
    # SIGN_IN_SLOW_DOWN_MAX_SECONDS.
    SIGN_IN_FAILURES_BEFORE_SLOW_DOWN = os.environ.get(
        "SIGN_IN_FAILURES_BEFORE_SLOW_DOWN", "5 per 15 minutes"
    )
    SIGN_IN_SLOW_DOWN_SECONDS = float(os.environ.get("SIGN_IN_SLOW_DOWN_SECONDS", "1"))
    SIGN_IN_SLOW_DOWN_MAX_SECONDS = float(
        os.environ.get("SIGN_IN_SLOW_DOWN_MAX_SECONDS", "10")
    )
    # Proxies in front of the service whose X-Forwarded-For, -Proto and -Host are believed
    # (0: none; 1 behind docs/nginx.conf).
    TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", "0"))

    # The largest request body taken (bytes; larger is a 413), and the deepest nesting of a
    # JSON body (deeper is a 422).
    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", str(1024 * 1024)))
    JSON_MAX_DEPTH = int(os.environ.get("JSON_MAX_DEPTH", "32"))

    # Werkzeug hash method for passwords: scrypt at its default cost. Tests lower the cost.
    PASSWORD_HASH_METHOD = os.environ.get("PASSWORD_HASH_METHOD", "scrypt")

    # Sign-in with a password of the broker's own (the page and POST /api/tokens);
    # false when everyone signs in through the hospital's identity provider.
    LOCAL_PASSWORDS = os.environ.get("LOCAL_PASSWORDS", "true") == "true"
    # OpenID Connect sign-in (README: Keycloak, Entra ID, Okta): off unless OIDC_ISSUER is set.
    # The provider's redirect URI for the broker is https://<host>/sign-in/oidc/callback.
    OIDC_ISSUER = os.environ.get("OIDC_ISSUER", "")
    OIDC_CLIENT_ID = os.environ.get("OIDC_CLIENT_ID", "")
    OIDC_CLIENT_SECRET = os.environ.get("OIDC_CLIENT_SECRET", "")
    # A first sign-in by someone unknown here makes their user (in no department).
    OIDC_CREATE_USERS = os.environ.get("OIDC_CREATE_USERS", "false") == "true"
    # What the sign-in page's button says.
    OIDC_NAME = os.environ.get("OIDC_NAME", "the hospital's sign-in")

    SQLALCHEMY_TRACK_MODIFICATIONS = False
    # Tests: reading a consult's people lazily raises (broker/lazy_loads.py).
    RAISE_ON_LAZY_LOAD = os.environ.get("RAISE_ON_LAZY_LOAD", "false") == "true"

    # flask-smorest / OpenAPI
    API_TITLE = "Consult broker"
    API_VERSION = "1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "openapi.json"
    API_SPEC_OPTIONS = {
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}
        },
        "security": [{"bearerAuth": []}],
    }

    # Browser sessions (kept on the server: broker/sessions.py) end after this many
    # minutes without a page request, and this many hours after signing in, whatever.
    SESSION_IDLE_MINUTES = int(os.environ.get("SESSION_IDLE_MINUTES", "15"))
    SESSION_ABSOLUTE_HOURS = int(os.environ.get("SESSION_ABSOLUTE_HOURS", "12"))
    PERMANENT_SESSION_LIFETIME = 3600 * SESSION_ABSOLUTE_HOURS
    # A process checks the credentials of its open sockets this often (expiry has no event).
    LIVE_CREDENTIAL_CHECK_SECONDS = float(
        os.environ.get("LIVE_CREDENTIAL_CHECK_SECONDS", "5")
    )

    # Send the session cookie back only when the session changed: a live refresh in flight
    # must not put back a cookie that an action's answer has since replaced.
    SESSION_REFRESH_EACH_REQUEST = False
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # Secure cookies need HTTPS: on by default; `make run` on plain http turns it off.
    SESSION_COOKIE_SECURE = os.environ.get("SESSION_COOKIE_SECURE", "true") == "true"
