"""The hospital's wall clock on the pages.

Instants are kept and exchanged in UTC (database, API, live pushes). The pages
show them, and read the times people type, in HOSPITAL_TIME_ZONE: a radiologist
reading "claim by 09:15" must not have to add the offset from UTC in their head.
"""

from datetime import date, datetime, time
from functools import lru_cache
from zoneinfo import ZoneInfo

from flask import current_app

from broker import clock


@lru_cache
def _zone_named(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone() -> ZoneInfo:
    return _zone_named(current_app.config["HOSPITAL_TIME_ZONE"])


def shown(instant: datetime | None, fmt: str = "%d %b %H:%M") -> str:
    """'24 Nov 09:15 EST': an instant on the hospital's clock, with its zone's name."""
    if instant is None:
        return ""
    local = instant.astimezone(zone())
    return f"{local.strftime(fmt)} {local.tzname()}"


def typed(wall_clock: datetime | None) -> datetime | None:
    """A time typed on a page (no zone: the hospital's clock) as an aware instant."""
    return wall_clock.replace(tzinfo=zone()) if wall_clock else None


def today() -> date:
    return clock.now().astimezone(zone()).date()


def start_of(day: date) -> datetime:
    """Midnight at the hospital at the start of `day`."""
    return datetime.combine(day, time.min, tzinfo=zone())
