"""Domain errors. Adapters map them: NotFound 404, NotAllowed 403, Conflict 409, Invalid 422."""


class DomainError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    """Unknown, or not visible to the caller (the two are indistinguishable on purpose)."""


class NotAllowed(DomainError):
    """The caller may see the consult but may not do this to it."""


class Conflict(DomainError):
    """The consult's state does not allow the action (or it changed meanwhile)."""


class Invalid(DomainError):
    """Bad input. `field` names what to correct."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
