"""The one clock of the broker. Everything that needs "now" asks `now()`.

Tests and the `sweep --at` command set the instant with `frozen_at(...)`.
"""

from contextlib import contextmanager
from datetime import UTC, datetime

_frozen: datetime | None = None


def now() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return _frozen or datetime.now(UTC)


def set_now(instant: datetime | None) -> None:
    """Freeze the clock at `instant` (aware), or unfreeze it with None."""
    global _frozen
    if instant is not None and instant.tzinfo is None:
        raise ValueError("the clock takes timezone-aware instants")
    _frozen = instant.astimezone(UTC) if instant else None


@contextmanager
def frozen_at(instant: datetime):
    previous = _frozen
    set_now(instant)
    try:
        yield
    finally:
        set_now(previous)
