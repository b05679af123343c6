"""The sweep inside the running service: a background thread, one pass every interval.

Every process of the service may run one; the database settles who fires what.
The health check (broker/health.py) asks `sweeper_alive` whether it still turns.
"""

import threading
import time
from datetime import timedelta

from flask import Flask

from broker import clock
from broker.consults.escalation import sweep

_lock = threading.Lock()


class _Sweeper:
    def __init__(self, interval: int, thread: threading.Thread):
        self.interval = interval
        self.thread = thread
        self.stop = threading.Event()
        self.last_beat = time.monotonic()  # the start of its latest wait or pass

    def alive(self) -> bool:
        """Its thread runs and began a pass or a wait lately (a slow pass is allowed for)."""
        stale_after = 3 * self.interval + 30
        return (
            self.thread.is_alive() and time.monotonic() - self.last_beat < stale_after
        )


def start_sweeper(app: Flask) -> None:
    """Start the sweeper once per app (on its first request), unless the interval is 0."""
    interval = app.config["SWEEP_INTERVAL_SECONDS"]
    if interval <= 0:
        return
    auto_close_after = timedelta(hours=app.config["AUTO_CLOSE_HOURS"])

    def run() -> None:
        while not sweeper.stop.wait(interval):
            sweeper.last_beat = time.monotonic()
            with app.app_context():
                try:
                    result = sweep(clock.now(), auto_close_after)
                    if result.escalated or result.closed:
                        app.logger.info(
                            "sweep: %d escalation(s), %d auto-closed",
                            len(result.escalated),
                            len(result.closed),
                        )
                except Exception:
                    app.logger.exception("sweep failed; will try again")
            sweeper.last_beat = time.monotonic()

    with _lock:
        if "sweeper" in app.extensions:
            return
        thread = threading.Thread(target=run, name="deadline-sweeper", daemon=True)
        sweeper = app.extensions["sweeper"] = _Sweeper(interval, thread)
        thread.start()


def sweeper_alive(app: Flask) -> bool | None:
    """None when the sweep is off in this process, else whether its thread still turns."""
    if app.config["SWEEP_INTERVAL_SECONDS"] <= 0:
        return None
    sweeper = app.extensions.get("sweeper")
    return sweeper is not None and sweeper.alive()
