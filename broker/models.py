"""The broker's tables, as SQLAlchemy 2 typed models.

Rules the database itself keeps (CHECK constraints), whatever the code does:
- a pending consult has no owner; a claimed or answered one has one;
- a handoff can only be on offer while the consult is claimed or answered;
- the timeline (ConsultEvent) is append-only: see `refuse_timeline_rewrites`.
"""

import enum
from datetime import UTC, datetime

from flask_login import UserMixin
from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    event,
    text,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from sqlalchemy.types import TypeDecorator
from werkzeug.security import check_password_hash, generate_password_hash

from broker import clock
from broker.extensions import db


class UTCDateTime(TypeDecorator):
    """Stores instants as naive UTC and hands them back timezone-aware.

    SQLite keeps no offset; PostgreSQL would convert to the session's zone.
    Storing plain UTC behaves the same on both.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def result_processor(self, dialect, coltype):
        """Instants read back as aware UTC, in one call per value (not TypeDecorator's
        process_result_value and its layers: a list of 50 consults reads 700)."""
        read = self.impl_instance.result_processor(dialect, coltype)
        if read is None:
            return _aware
        return lambda value: _aware(read(value))


def _aware(value):
    return None if value is None else value.replace(tzinfo=UTC)


def render_for_migrations(type_, obj, autogen_context):
    """Alembic autogenerate: write UTCDateTime columns as plain sa.DateTime()."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime()"
    return False


class Urgency(enum.StrEnum):
    STAT = "stat"
    URGENT = "urgent"
    ROUTINE = "routine"


class Status(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    ANSWERED = "answered"
    CLOSED = "closed"
    CANCELLED = "cancelled"


OPEN_STATUSES = (Status.PENDING, Status.CLAIMED, Status.ANSWERED)
OWNED_STATUSES = (Status.CLAIMED, Status.ANSWERED)


class EventKind(enum.StrEnum):
    CREATED = "created"
    CLAIMED = "claimed"
    RELEASED = "released"
    ASSIGNED = "assigned"
    HANDOFF_OFFERED = "handoff_offered"
    HANDOFF_ACCEPTED = "handoff_accepted"
    HANDOFF_DECLINED = "handoff_declined"
    ANSWERED = "answered"
    MESSAGE = "message"
    FOLLOWUP = "followup"
    NOTE = "note"
    REDIRECTED = "redirected"
    ESCALATED = "escalated"
    CLOSED = "closed"
    CANCELLED = "cancelled"


def _sql_in(values) -> str:
    return "(" + ", ".join(f"'{v.value}'" for v in values) + ")"


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # Empty for a user who has no password here (made for sign-in with the hospital's
    # identity provider, or by an admin without one): no password matches it.
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    # A deactivated user signs in by no means and owns nothing (SPEC rule 7).
    active: Mapped[bool] = mapped_column(default=True, server_default=text("true"))
    # After an admin's reset: the next sign-in must set a new password first.
    must_change_password: Mapped[bool] = mapped_column(
        default=False, server_default=text("false")
    )
    # The identity provider's subject (OpenID Connect `sub`), once linked.
    oidc_subject: Mapped[str | None] = mapped_column(String(255), unique=True)

    memberships: Mapped[list["Membership"]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    def set_password(self, password: str, method: str = "scrypt") -> None:
        """Hash salted and memory-hard (scrypt; the cost is set by PASSWORD_HASH_METHOD)."""
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(
            self.password_hash, password
        )

    @property
    def is_active(self) -> bool:
        """Flask-Login signs in (and keeps signed in) only active users."""
        return self.active

    def __repr__(self) -> str:
        return f"<User {self.id}>"


class Department(db.Model):
    __tablename__ = "departments"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # An archived department takes no new consults and is left out of choices.
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    memberships: Mapped[list["Membership"]] = relationship(
        back_populates="department", cascade="all, delete-orphan"
    )
    policies: Mapped[list["DeadlinePolicy"]] = relationship(
        back_populates="department",
        cascade="all, delete-orphan",
        order_by="DeadlinePolicy.urgency",
    )

    def __repr__(self) -> str:
        return f"<Department {self.slug}>"


class Membership(db.Model):
    """A user's place in a department: a member, or its chief."""

    __tablename__ = "memberships"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    department_id: Mapped[int] = mapped_column(
        ForeignKey("departments.id"), primary_key=True
    )
    is_chief: Mapped[bool] = mapped_column(default=False)

    user: Mapped[User] = relationship(back_populates="memberships")
    department: Mapped[Department] = relationship(back_populates="memberships")


class DeadlinePolicy(db.Model):
    """Minutes a department allows, per urgency, to claim, answer and answer a follow-up."""

    __tablename__ = "deadline_policies"
    __table_args__ = (
        CheckConstraint(f"urgency IN {_sql_in(Urgency)}", name="urgency_known"),
        CheckConstraint(
            "claim_minutes > 0 AND answer_minutes >= claim_minutes "
            "AND followup_minutes > 0",
            name="minutes_sensible",
        ),
    )

    department_id: Mapped[int] = mapped_column(
        ForeignKey("departments.id"), primary_key=True
    )
    urgency: Mapped[str] = mapped_column(String(16), primary_key=True)
    claim_minutes: Mapped[int]
    answer_minutes: Mapped[int]
    followup_minutes: Mapped[int]

    department: Mapped[Department] = relationship(back_populates="policies")


class ApiToken(db.Model):
    """A bearer token. Only its SHA-256 digest is stored; the token is shown once."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    # A personal token's name, given by its owner (None: made by POST /api/tokens).
    name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()

    @property
    def valid(self) -> bool:
        at = clock.now()
        return self.revoked_at is None and (
            self.expires_at is None or at < self.expires_at
        )


class UserSession(db.Model):
    """A signed-in browser. The cookie carries a random key; only its digest is kept."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    key_digest: Mapped[str] = mapped_column(String(64), unique=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    address: Mapped[str] = mapped_column(String(64))
    browser: Mapped[str] = mapped_column(String(200))  # the user agent, cut short

    user: Mapped[User] = relationship()


class ConsultRead(db.Model):
    """The access audit: who was shown a consult's patient data, when, and through what.

    Append-only: the database refuses UPDATE and DELETE (`AUDIT_APPEND_ONLY`).
    """

    __tablename__ = "consult_reads"
    __table_args__ = (
        Index("ix_consult_reads_consult_id_at", "consult_id", "at"),
        Index("ix_consult_reads_user_id_at", "user_id", "at"),
        Index("ix_consult_reads_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    consult_id: Mapped[int] = mapped_column(ForeignKey("consults.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    via: Mapped[str] = mapped_column(String(32))  # see broker/consults/audit.py VIAS

    user: Mapped[User] = relationship()


# The audit's append-only rule, kept by the database itself (also in the migration).
AUDIT_APPEND_ONLY = {
    "postgresql": [
        """CREATE OR REPLACE FUNCTION consult_reads_append_only() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'the access audit is append-only'; END;
        $$ LANGUAGE plpgsql""",
        """CREATE TRIGGER consult_reads_append_only BEFORE UPDATE OR DELETE
        ON consult_reads FOR EACH ROW EXECUTE FUNCTION consult_reads_append_only()""",
    ],
    "sqlite": [
        f"""CREATE TRIGGER consult_reads_no_{verb.lower()} BEFORE {verb} ON consult_reads
        BEGIN SELECT RAISE(ABORT, 'the access audit is append-only'); END"""
        for verb in ("UPDATE", "DELETE")
    ],
}


@event.listens_for(ConsultRead.__table__, "after_create")
def _audit_append_only(table, connection, **kwargs):
    for statement in AUDIT_APPEND_ONLY.get(connection.dialect.name, []):
        connection.execute(text(statement))


REPORT_FACTS = [
    "urgency",
    "owner_id",
    "claim_seconds",
    "answer_seconds",
    "claimed_in_time",
    "answered_in_time",
    "followup_count",
    "handoff_count",
    "redirect_count",
    "max_escalation_level",
    "rating",
]


class Consult(db.Model):
    """A question to a department, with at most one accountable owner.

    `version` is bumped by every write and checked by it (SQLAlchemy's
    version_id_col): two actions racing on one consult cannot both commit,
    whichever database it is. The loser gets a Conflict.
    """

    __tablename__ = "consults"
    __table_args__ = (
        CheckConstraint(f"status IN {_sql_in(Status)}", name="status_known"),
        CheckConstraint(f"urgency IN {_sql_in(Urgency)}", name="urgency_known"),
        CheckConstraint(
            f"(status IN {_sql_in(OWNED_STATUSES)}) = (owner_id IS NOT NULL) "
            "OR status IN ('closed', 'cancelled')",
            name="owner_matches_status",
        ),
        CheckConstraint(
            f"handoff_to_id IS NULL OR status IN {_sql_in(OWNED_STATUSES)}",
            name="handoff_only_when_owned",
        ),
        CheckConstraint(
            "rating IS NULL OR (rating >= 1 AND rating <= 5)", name="rating_range"
        ),
        Index("ix_consults_department_status", "department_id", "status"),
        Index("ix_consults_status_answered_at", "status", "answered_at"),
        Index("ix_consults_created_at_department", "created_at", "department_id"),
        *(
            Index(
                f"ix_consults_{rung}",
                rung,
                postgresql_where=text(f"{rung} IS NOT NULL"),
                sqlite_where=text(f"{rung} IS NOT NULL"),
            )
            for rung in ("level1_escalation_at", "level2_escalation_at")
        ),
        # A retried request with the same key finds the consult it made (one per key).
        Index(
            "ix_consults_requester_id_request_key",
            "requester_id",
            "request_key",
            unique=True,
        ),
        # A department's reports read only this index on PostgreSQL (index-only scans).
        Index(
            "ix_consults_department_created_at",
            "department_id",
            "created_at",
            postgresql_include=REPORT_FACTS,
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(default=1)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    urgency: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=Status.PENDING)
    requester_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    patient_ref: Mapped[str] = mapped_column(String(64), index=True)  # audit search
    question: Mapped[str] = mapped_column(Text)
    study_ref: Mapped[str | None] = mapped_column(String(64))
    # The requester's Idempotency-Key (or the new-consult form's): a retry of the
    # same request answers the consult it created instead of making a second one.
    request_key: Mapped[str | None] = mapped_column(String(64))

    handoff_to_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    handoff_note: Mapped[str | None] = mapped_column(Text)
    handoff_offered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    routed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # answered_at is the latest answer; reports measure to the first one.
    first_answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claim_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answer_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    escalation_level: Mapped[int] = mapped_column(default=0)
    # When the current ladder's rungs fire; each is cleared once it has fired, and
    # both when the ladder ends. Their indexes are partial (NOT NULL): only what is
    # still to fire sits in them, however long the history.
    level1_escalation_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    level2_escalation_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rating: Mapped[int | None]
    rating_comment: Mapped[str | None] = mapped_column(Text)

    # Facts for the turnaround reports, kept by the actions as they happen so a
    # report is one scan of consults (no timeline joins) even at millions of rows.
    claim_seconds: Mapped[int | None]  # routed_at → first claim in this department
    answer_seconds: Mapped[int | None]  # routed_at → first answer
    claimed_in_time: Mapped[bool | None]
    answered_in_time: Mapped[bool | None]
    followup_count: Mapped[int] = mapped_column(default=0)
    handoff_count: Mapped[int] = mapped_column(default=0)  # accepted handoffs
    redirect_count: Mapped[int] = mapped_column(default=0)
    max_escalation_level: Mapped[int] = mapped_column(default=0)

    department: Mapped[Department] = relationship()
    requester: Mapped[User] = relationship(foreign_keys=[requester_id])
    owner: Mapped[User | None] = relationship(foreign_keys=[owner_id])
    handoff_to: Mapped[User | None] = relationship(foreign_keys=[handoff_to_id])
    events: Mapped[list["ConsultEvent"]] = relationship(
        back_populates="consult", order_by="ConsultEvent.id"
    )

    __mapper_args__ = {"version_id_col": version}

    @property
    def overdue(self) -> bool:
        """At or past the deadline that applies now (the instant the sweep escalates it too)."""
        at = clock.now()
        if self.status == Status.PENDING:
            return at >= self.claim_due_at
        if self.status == Status.CLAIMED:
            return at >= self.answer_due_at
        return False

    @property
    def handoff(self) -> dict | None:
        if self.handoff_to is None:
            return None
        return {
            "to": self.handoff_to,
            "note": self.handoff_note,
            "offered_at": self.handoff_offered_at,
        }

    def __repr__(self) -> str:
        return f"<Consult {self.id} {self.status}>"


class ShiftRole(enum.StrEnum):
    PRIMARY = "primary"
    BACKUP = "backup"


class Shift(db.Model):
    """A stretch of on-call coverage for a department: [starts_at, ends_at)."""

    __tablename__ = "shifts"
    __table_args__ = (
        CheckConstraint(f"role IN {_sql_in(ShiftRole)}", name="role_known"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        Index("ix_shifts_department_ends_at", "department_id", "ends_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    role: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)

    department: Mapped[Department] = relationship()
    user: Mapped[User] = relationship()


class Notification(db.Model):
    """A personal alert, kept until read so none is lost while nobody is connected.

    `message` is written by the system and never carries patient data.
    """

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_id_id", "user_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    consult_id: Mapped[int | None] = mapped_column(ForeignKey("consults.id"))
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AdminEvent(db.Model):
    """One line of the administrative log: who changed which user or department, when.

    `detail` is written by the system (names, roles, slugs), never a password.
    `actor_id` is None for the command line.
    """

    __tablename__ = "admin_events"
    __table_args__ = (Index("ix_admin_events_at", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    detail: Mapped[str] = mapped_column(String(300))

    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])
    user: Mapped[User | None] = relationship(foreign_keys=[user_id])
    department: Mapped[Department | None] = relationship()


class ConsultEvent(db.Model):
    """One line of a consult's timeline: who did what, when, with any text."""

    __tablename__ = "consult_events"
    __table_args__ = (
        CheckConstraint(f"kind IN {_sql_in(EventKind)}", name="kind_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    consult_id: Mapped[int] = mapped_column(ForeignKey("consults.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    body: Mapped[str | None] = mapped_column(Text)
    # The colleague the action concerned (assigned to, offered to, accepted from).
    subject_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # A short system-written line (e.g. "radiology → cardiology"); never user text.
    detail: Mapped[str | None] = mapped_column(String(200))

    consult: Mapped[Consult] = relationship(back_populates="events")
    actor: Mapped[User | None] = relationship(foreign_keys=[actor_id])
    subject: Mapped[User | None] = relationship(foreign_keys=[subject_id])


@event.listens_for(Session, "before_flush")
def refuse_timeline_rewrites(session, flush_context, instances):
    """Rule 6 of the spec: nothing on a timeline is ever changed or deleted."""
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, ConsultEvent | ConsultRead) and (
            obj in session.deleted or session.is_modified(obj)
        ):
            raise RuntimeError(f"{obj.__tablename__} is append-only")
