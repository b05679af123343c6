"""Domain errors. Adapters map them to statuses in one place: `broker/http_errors.py`."""


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
    """Bad input. `errors` names every field to correct ({field: [messages]});
    `field` and `message` are the first of them."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.errors = {field: [message]}

    @classmethod
    def of(cls, errors: dict) -> "Invalid":
        """From {field: [messages]}; a field may nest further ({field: {part: [...]}})."""
        field, messages = next(iter(errors.items()))
        while isinstance(messages, dict):
            messages = next(iter(messages.values()))
        error = cls(field, messages[0])
        error.errors = errors
        return error
