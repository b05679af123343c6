"""The JSON API under /api (flask-smorest): blueprints and the OpenAPI document."""

from flask_smorest import Api


def register_api(api: Api) -> None:
    from broker.api.accounts import departments, me, tokens
    from broker.api.consults import blp as consults
    from broker.api.coverage import coverage, notifications

    for blueprint in (tokens, me, departments, coverage, consults, notifications):
        api.register_blueprint(blueprint)
