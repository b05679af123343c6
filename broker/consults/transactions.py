"""One action, one transaction."""

from collections.abc import Callable
from functools import wraps

from sqlalchemy.orm.exc import StaleDataError

from broker.consults.errors import Conflict
from broker.extensions import db

CHANGED_MEANWHILE = "The consult changed meanwhile; reload it and try again."


def transaction(action: Callable) -> Callable:
    """Commit the action's work as one transaction, or roll all of it back."""

    @wraps(action)
    def run(*args, **kwargs):
        try:
            result = action(*args, **kwargs)
            db.session.commit()
        except StaleDataError:
            db.session.rollback()
            raise Conflict(CHANGED_MEANWHILE) from None
        except BaseException:
            db.session.rollback()
            raise
        return result

    return run
