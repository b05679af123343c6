"""Domain errors as HTTP statuses: the one mapping, read by the API and the pages."""

from broker.consults.errors import Conflict, DomainError, Invalid, NotAllowed, NotFound

STATUS_OF: dict[type[DomainError], int] = {
    NotFound: 404,
    NotAllowed: 403,
    Conflict: 409,
    Invalid: 422,
}


def status_of(error: DomainError) -> int:
    return STATUS_OF[type(error)]
