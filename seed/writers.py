"""Writing the generated rows in bulk, not through the ORM.

A writer takes one batch at a time (its consults and their events) and commits
it: COPY on PostgreSQL, executemany elsewhere. It also decides how times are
handed to the driver (`dt`).
"""

import math
import queue
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.exc import SQLAlchemyError

from broker.extensions import db
from broker.models import Consult, ConsultEvent
from seed.times import AWARE_EPOCH, EPOCH

BATCH_CONSULTS = 10_000

CONSULT_COLUMNS = [
    "id", "version", "department_id", "urgency", "status", "requester_id", "owner_id",
    "patient_ref", "question", "study_ref", "handoff_to_id", "handoff_note",
    "handoff_offered_at", "created_at", "routed_at", "claimed_at", "answered_at",
    "first_answered_at", "closed_at", "updated_at", "claim_due_at", "answer_due_at",
    "escalation_level", "level1_escalation_at", "level2_escalation_at", "rating",
    "rating_comment", "claim_seconds", "answer_seconds", "claimed_in_time",
    "answered_in_time", "followup_count", "handoff_count", "redirect_count",
    "max_escalation_level",
]  # fmt: skip
EVENT_COLUMNS = [
    "id", "consult_id", "kind", "actor_id", "at", "body", "subject_id", "detail",
]  # fmt: skip


def writer(total: int, progress):
    """The fastest writer for the database in use."""
    name = db.engine.dialect.name
    if name == "postgresql":
        return _CopyWriter(total, progress)
    if name == "sqlite":
        return _SqliteWriter(total, progress)
    return _CoreWriter(total, progress)


class WriteFailed(Exception):
    """The database refused a batch. The batches before it stay committed."""


class _Progress:
    """Counts committed batches; reports about every tenth of the way."""

    def __init__(self, total: int, progress):
        self.total = total
        self.progress = progress
        self.every = max(
            BATCH_CONSULTS, math.ceil(total / 10 / BATCH_CONSULTS) * BATCH_CONSULTS
        )
        self.consults = self.events = 0
        self.started = time.monotonic()

    def committed(self, consults: int, events: int):
        self.consults += consults
        self.events += events
        if self.progress and (
            self.consults % self.every == 0 or self.consults == self.total
        ):
            self.progress(
                f"  {self.consults:,} of {self.total:,} consults written "
                f"({self.events:,} events, {time.monotonic() - self.started:.0f} s)"
            )

    def failed(self, error: BaseException) -> WriteFailed:
        """One line: the database's reason, and what was kept."""
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()
        return WriteFailed(
            f"The database refused a batch ({reason[0] if reason else type(error).__name__}); "
            f"{self.consults:,} consults were written before it."
        )


class _CoreWriter(_Progress):
    """Any database: Core INSERTs with lists of parameters (the driver's executemany)."""

    @staticmethod
    def dt(micros: int) -> datetime:
        return AWARE_EPOCH + timedelta(microseconds=micros)

    def submit(self, rows, event_rows):
        try:
            self._insert(rows, event_rows)
            db.session.commit()
        except SQLAlchemyError as error:
            db.session.rollback()
            raise self.failed(error) from error
        self.committed(len(rows), len(event_rows))

    def _insert(self, rows, event_rows):
        for table, columns, batch in (
            (Consult.__table__, CONSULT_COLUMNS, rows),
            (ConsultEvent.__table__, EVENT_COLUMNS, event_rows),
        ):
            if batch:
                parameters = [dict(zip(columns, row, strict=True)) for row in batch]
                db.session.execute(insert(table), parameters)

    def finish(self):
        pass


class _SqliteWriter(_CoreWriter):
    """SQLite: the driver's executemany with the times already in SQLAlchemy's format.

    SQLAlchemy stores a SQLite DATETIME as 'YYYY-MM-DD HH:MM:SS.ffffff'; handing the
    strings over directly skips a type conversion per value. SQLite's integer keys
    follow max(id) by themselves.
    """

    @staticmethod
    def dt(micros: int) -> str:
        return (EPOCH + timedelta(microseconds=micros)).isoformat(" ", "microseconds")

    def _insert(self, rows, event_rows):
        connection = db.session.connection()
        for table, columns, batch in (
            ("consults", CONSULT_COLUMNS, rows),
            ("consult_events", EVENT_COLUMNS, event_rows),
        ):
            if batch:
                statement = (
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})"
                )
                connection.exec_driver_sql(statement, batch)


class _CopyWriter(_Progress):
    """PostgreSQL: COPY FROM STDIN on a connection of its own, in a thread of its own.

    While the database takes in one batch (most of its time goes to checking the
    foreign keys of each row), the next one is generated. Each batch is one
    transaction that also moves the id sequences past the explicit ids, so a
    normal insert made later (or while it runs) does not collide.
    """

    @staticmethod
    def dt(micros: int) -> datetime:
        return EPOCH + timedelta(microseconds=micros)  # naive UTC, as the columns hold

    def __init__(self, total: int, progress):
        super().__init__(total, progress)
        self.engine = db.engine
        self.batches: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._run, name="generate-copy", daemon=True
        )
        self.thread.start()

    def submit(self, rows, event_rows):
        self._raise()
        self.batches.put((rows, event_rows))

    def finish(self):
        self.batches.put(None)
        self.thread.join()
        self._raise()

    def _raise(self):
        if self.error is not None:
            raise self.failed(self.error) from self.error

    def _run(self):
        ended = False
        try:
            with self.engine.connect() as connection:
                raw = connection.connection.driver_connection
                while (batch := self.batches.get()) is not None:
                    self._copy(raw, *batch)
                ended = True
                for table in ("consults", "consult_events"):
                    raw.execute(f"ANALYZE {table}")
                raw.commit()
        except BaseException as error:  # handed over to the generating thread
            self.error = error
            while not ended and self.batches.get() is not None:
                pass  # let the generating thread put its batches and stop

    def _copy(self, raw, rows, event_rows):
        with raw.cursor() as cursor:
            for table, columns, batch in (
                ("consults", CONSULT_COLUMNS, rows),
                ("consult_events", EVENT_COLUMNS, event_rows),
            ):
                if not batch:
                    continue
                statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                with cursor.copy(statement) as copy:
                    for row in batch:
                        copy.write_row(row)
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT max(id) FROM {table}))"
                )
        raw.commit()
        self.committed(len(rows), len(event_rows))
