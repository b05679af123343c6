"""The one clock of the broker. Everything that needs "now" asks `now()`.

"Now" is a context variable, not a process-wide setting: `frozen_at(instant)`
changes it only for the code running inside it (a test's requests, one sweep
pass at `--at`), never for the other requests a server is serving meanwhile.
Threads and greenlets start with the real clock unless they are handed a copy
of the context (`contextvars.copy_context()`).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

_frozen: ContextVar[datetime | None] = ContextVar("broker_frozen_now", default=None)


def now() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return _frozen.get() or datetime.now(UTC)


@contextmanager
def frozen_at(instant: datetime) -> Iterator[datetime]:
    """Inside this block (and only in this context), `now()` is `instant`."""
    if instant.tzinfo is None:
        raise ValueError("the clock takes timezone-aware instants")
    token = _frozen.set(instant.astimezone(UTC))
    try:
        yield instant
    finally:
        _frozen.reset(token)
