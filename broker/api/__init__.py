"""The JSON API under /api (flask-smorest): blueprints and the OpenAPI document."""

from flask import Flask
from flask_smorest import Api
from werkzeug.routing import IntegerConverter, UnicodeConverter, ValidationError

from broker.extensions import csrf


class IdConverter(IntegerConverter):
    """`<id:...>` in a URL: a database id. Anything out of range is simply not found."""

    def __init__(self, map):
        super().__init__(map, min=1, max=2**31 - 1)


class SlugConverter(UnicodeConverter):
    """`<slug:...>` in a URL: a department's slug. One that no database can hold is simply
    not found: longer than the column, or with a NUL (PostgreSQL cannot even compare it)."""

    def __init__(self, map):
        super().__init__(map, minlength=1, maxlength=64)

    def to_python(self, value: str) -> str:
        if "\x00" in value:
            raise ValidationError()
        return value


def register_api(app: Flask, api: Api) -> None:
    app.url_map.converters["id"] = IdConverter
    app.url_map.converters["slug"] = SlugConverter
    from broker.api.accounts import departments, me, tokens
    from broker.api.audit import blp as audit
    from broker.api.consults import consults_blueprint
    from broker.api.coverage import coverage, notifications
    from broker.api.reports import blp as reports
    from broker.api.sessions import blp as sessions
    from broker.api.sessions import user_sessions
    from broker.api.staff import admin_log, members, password, users

    for blueprint in (
        tokens,
        me,
        departments,
        coverage,
        consults_blueprint(),
        notifications,
        reports,
        users,
        members,
        password,
        admin_log,
        sessions,
        user_sessions,
        audit,
    ):
        # The API takes bearer tokens for every change, never the session: no CSRF to guard.
        csrf.exempt(blueprint)
        api.register_blueprint(blueprint)
