"""Time while generating: whole microseconds since the epoch (UTC), for speed.

The deadline functions of broker/consults/deadlines.py take these with
`minute=MINUTE`; the writers turn them into what the database driver expects.
"""

from datetime import UTC, datetime, timedelta

SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
SWEEP_EVERY = 30 * SECOND  # the service's default sweep interval
EPOCH = datetime(1970, 1, 1)
AWARE_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(instant: datetime) -> int:
    delta = instant.astimezone(UTC) - AWARE_EPOCH
    return (delta.days * 86_400 + delta.seconds) * SECOND + delta.microseconds


def weekday(at: int) -> int:
    """Monday is 0."""
    return (at // DAY + 3) % 7  # 1 January 1970 was a Thursday


def year(at: int) -> int:
    return (EPOCH + timedelta(microseconds=at)).year


def next_sweep(at: int) -> int:
    """The first sweep at or after `at` (sweeps run at whole multiples of SWEEP_EVERY)."""
    return -(-at // SWEEP_EVERY) * SWEEP_EVERY
