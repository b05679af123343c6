"""The sweep inside the running service: a background thread, one pass every interval.

Every process of the service may run one; the database settles who fires what.
"""

import threading
from datetime import timedelta

from flask import Flask

from broker import clock
from broker.consults.escalation import sweep

_started: set[int] = set()
_lock = threading.Lock()


def start_sweeper(app: Flask) -> None:
    """Start the sweeper once per app (on its first request), unless the interval is 0."""
    interval = app.config["SWEEP_INTERVAL_SECONDS"]
    if interval <= 0:
        return
    with _lock:
        if id(app) in _started:
            return
        _started.add(id(app))
    auto_close_after = timedelta(hours=app.config["AUTO_CLOSE_HOURS"])
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(interval):
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

    threading.Thread(target=run, name="deadline-sweeper", daemon=True).start()
