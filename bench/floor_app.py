"""The floor of the request path: a bare Flask app answering what the broker answers.

Served exactly as the broker is (gunicorn, one gevent worker), on the same
database, driver (psycopg 3) and connection pool (SQLAlchemy's QueuePool, pre-ping),
it answers the benchmark's requests with Core statements and plain dicts: the same
JSON byte for byte (bench/request_path.py checks), and for the queue a page with the
same rows and the same facts in each. It keeps the broker's rules only as far as the
benchmark exercises them (a valid token or session, department membership, a pending
consult to claim, the timeline event, the on-call alert, and the access audit of every
answer that shows a consult: the list, the detail, the claim's answer, the queue page);
it has no limiter, no CSRF, no OpenAPI, no live push. It is the cost a request cannot go below in Flask.

    DATABASE_URL=... gunicorn --worker-class gevent bench.floor_app:app
"""

import hashlib
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from flask import Flask, abort, jsonify, request, session
from sqlalchemy import (
    and_,
    case,
    create_engine,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.orm import aliased

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from broker.config import Config, normalise_database_url  # noqa: E402
from broker.models import (  # noqa: E402
    ApiToken,
    Consult,
    ConsultEvent,
    DeadlinePolicy,
    Department,
    Membership,
    Notification,
    Shift,
    User,
    UserSession,
)

app = Flask(__name__)
app.config["SECRET_KEY"] = Config.SECRET_KEY
engine = create_engine(
    normalise_database_url(os.environ["DATABASE_URL"]),
    pool_pre_ping=True,
    hide_parameters=True,
)

users, consults, events = User.__table__, Consult.__table__, ConsultEvent.__table__
memberships, departments = Membership.__table__, Department.__table__
requester, owner, handoff_to = (aliased(users) for _ in range(3))
actor, subject = aliased(users), aliased(users)
OPEN = ("pending", "claimed", "answered")


def now() -> datetime:
    return datetime.now(UTC)


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def person(row, prefix: str) -> dict | None:
    if row[f"{prefix}_id"] is None:
        return None
    return {
        "id": row[f"{prefix}_id"],
        "name": row[f"{prefix}_name"],
        "email": row[f"{prefix}_email"],
    }


def people_columns(table, prefix: str) -> list:
    return [
        table.c.id.label(f"{prefix}_id"),
        table.c.name.label(f"{prefix}_name"),
        table.c.email.label(f"{prefix}_email"),
    ]


CONSULT_COLUMNS = [
    consults,
    departments.c.slug.label("department_slug"),
    departments.c.name.label("department_name"),
    *people_columns(requester, "rq"),
    *people_columns(owner, "ow"),
    *people_columns(handoff_to, "ho"),
]


def consult_select():
    return select(*CONSULT_COLUMNS).select_from(
        consults.join(departments, departments.c.id == consults.c.department_id)
        .join(requester, requester.c.id == consults.c.requester_id)
        .outerjoin(owner, owner.c.id == consults.c.owner_id)
        .outerjoin(handoff_to, handoff_to.c.id == consults.c.handoff_to_id)
    )


def overdue(c, at: datetime) -> bool:
    if c["status"] == "pending":
        return at >= c["claim_due_at"]
    if c["status"] == "claimed":
        return at >= c["answer_due_at"]
    return False


def consult_dict(c, at: datetime) -> dict:
    handoff = person(c, "ho")
    return {
        "id": c["id"],
        "department": c["department_slug"],
        "urgency": c["urgency"],
        "status": c["status"],
        "requester": person(c, "rq"),
        "owner": person(c, "ow"),
        "handoff": None
        if handoff is None
        else {
            "to": handoff,
            "note": c["handoff_note"],
            "offered_at": iso(c["handoff_offered_at"]),
        },
        "patient_ref": c["patient_ref"],
        "question": c["question"],
        "study_ref": c["study_ref"],
        "created_at": iso(c["created_at"]),
        "routed_at": iso(c["routed_at"]),
        "claimed_at": iso(c["claimed_at"]),
        "answered_at": iso(c["answered_at"]),
        "closed_at": iso(c["closed_at"]),
        "updated_at": iso(c["updated_at"]),
        "claim_due_at": iso(c["claim_due_at"]),
        "answer_due_at": iso(c["answer_due_at"]),
        "escalation_level": c["escalation_level"],
        "overdue": overdue(c, at),
        "rating": c["rating"],
        "version": c["version"],
    }


def with_timeline(conn, c, at: datetime) -> dict:
    rows = conn.execute(
        select(
            events.c.kind,
            events.c.at,
            events.c.body,
            events.c.detail,
            *people_columns(actor, "ac"),
            *people_columns(subject, "sb"),
        )
        .select_from(
            events.outerjoin(actor, actor.c.id == events.c.actor_id).outerjoin(
                subject, subject.c.id == events.c.subject_id
            )
        )
        .where(events.c.consult_id == c["id"])
        .order_by(events.c.id)
    ).mappings()
    timeline = [
        {
            "kind": e["kind"],
            "actor": person(e, "ac"),
            "at": iso(e["at"]),
            "body": e["body"],
            "subject": person(e, "sb"),
            "detail": e["detail"],
        }
        for e in rows
    ]
    return {**consult_dict(c, at), "timeline": timeline}


def caller_where(conn, where) -> dict:
    """The user (one SELECT with memberships and their departments), or 401."""
    rows = conn.execute(
        select(
            users.c.id,
            users.c.name,
            users.c.email,
            users.c.is_admin,
            memberships.c.department_id,
            memberships.c.is_chief,
            departments.c.slug,
        )
        .select_from(
            users.outerjoin(memberships, memberships.c.user_id == users.c.id).outerjoin(
                departments, departments.c.id == memberships.c.department_id
            )
        )
        .where(where)
    ).all()
    if not rows:
        abort(401)
    first = rows[0]
    member = [r for r in rows if r.department_id is not None]
    return {
        "id": first.id,
        "name": first.name,
        "email": first.email,
        "is_admin": first.is_admin,
        "departments": {r.department_id: r.slug for r in member},
        "chief_of": sorted(r.slug for r in member if r.is_chief),
    }


def token_caller(conn) -> dict:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        abort(401)
    digest = hashlib.sha256(token.strip().encode()).hexdigest()
    tokens = ApiToken.__table__
    valid = (
        select(tokens.c.user_id)
        .where(
            tokens.c.token_digest == digest,
            tokens.c.revoked_at.is_(None),
            or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > now()),
        )
        .scalar_subquery()
    )
    return caller_where(conn, users.c.id == valid)


def session_caller(conn) -> dict:
    """The user of the server-side session whose key the cookie carries (the broker's
    rule: not ended, not idle, not too old), or 401."""
    key = session.get("key")
    if not key:
        abort(401)
    sessions_ = UserSession.__table__
    at = now()
    in_force = (
        select(sessions_.c.user_id)
        .where(
            sessions_.c.key_digest == hashlib.sha256(key.encode()).hexdigest(),
            sessions_.c.ended_at.is_(None),
            sessions_.c.started_at
            > at - timedelta(hours=Config.SESSION_ABSOLUTE_HOURS),
            sessions_.c.last_used_at
            >= at - timedelta(minutes=Config.SESSION_IDLE_MINUTES),
        )
        .scalar_subquery()
    )
    return caller_where(conn, users.c.id == in_force)


READS = text(
    "INSERT INTO consult_reads (consult_id, user_id, at, via) SELECT "
    "unnest(CAST(:consult_ids AS integer[])), CAST(:user_id AS integer), "
    "CAST(:at AS timestamp), CAST(:via AS varchar)"
)


def record_shown(conn, user, consult_ids, via: str, at, commit: bool = True) -> None:
    """The access audit (issue 13): the user was shown these consults; one INSERT of
    the ids' array, as the broker writes it on PostgreSQL, and its commit."""
    if consult_ids:
        conn.execute(
            READS,
            {
                "consult_ids": consult_ids,
                "user_id": user["id"],
                "at": at.astimezone(UTC).replace(tzinfo=None),
                "via": via,
            },
        )
    if commit:
        conn.commit()


def visible(user: dict):
    if user["is_admin"]:
        return consults.c.id.is_not(None)
    return or_(
        consults.c.requester_id == user["id"],
        consults.c.department_id.in_(list(user["departments"])),
    )


@app.get("/api/me")
def me():
    with engine.connect() as conn:
        user = token_caller(conn)
    roles = ["requester"]
    if user["departments"]:
        roles.append("consultant")
    if user["chief_of"]:
        roles.append("chief")
    if user["is_admin"]:
        roles.append("admin")
    return jsonify(
        {
            "id": user["id"],
            "name": user["name"],
            "email": user["email"],
            "departments": sorted(user["departments"].values()),
            "chief_of": user["chief_of"],
            "roles": roles,
        }
    )


@app.get("/api/consults")
def consult_list():
    page = int(request.args.get("page", 1))
    size = int(request.args.get("page_size", 50))
    at = now()
    with engine.connect() as conn:
        user = token_caller(conn)
        query = consult_select().where(visible(user))
        if "department" in request.args:
            query = query.where(departments.c.slug == request.args["department"])
        rows = (
            conn.execute(
                query.order_by(consults.c.created_at.desc(), consults.c.id.desc())
                .offset((page - 1) * size)
                .limit(size + 1)
            )
            .mappings()
            .all()
        )
        record_shown(conn, user, [c["id"] for c in rows[:size]], "api-list", at)
    header = {"page": page, "page_size": size, "first_page": 1}
    if page > 1:
        header["previous_page"] = page - 1
    if len(rows) > size:
        header["next_page"] = page + 1
    response = jsonify([consult_dict(c, at) for c in rows[:size]])
    response.headers["X-Pagination"] = json.dumps(header)
    return response


def visible_one(conn, user: dict, consult_id: int):
    row = (
        conn.execute(consult_select().where(consults.c.id == consult_id, visible(user)))
        .mappings()
        .first()
    )
    if row is None:
        abort(404)
    return row


@app.get("/api/consults/<int:consult_id>")
def consult_detail(consult_id):
    at = now()
    with engine.connect() as conn:
        user = token_caller(conn)
        answer = with_timeline(conn, visible_one(conn, user, consult_id), at)
        record_shown(conn, user, [consult_id], "api", at)
    return jsonify(answer)


@app.post("/api/consults")
def create_consult():
    """The floor's create, in one piece on purpose: every statement a new consult
    costs, in order, so it reads line by line against the broker's path (it is
    the measure, not the product)."""
    given = request.get_json()
    at = now()
    with engine.begin() as conn:
        user = token_caller(conn)
        policies = DeadlinePolicy.__table__
        shifts = Shift.__table__
        primary = (
            select(shifts.c.user_id)
            .where(
                shifts.c.department_id == departments.c.id,
                shifts.c.role == "primary",
                shifts.c.starts_at <= at,
                shifts.c.ends_at > at,
            )
            .limit(1)
            .scalar_subquery()
        )
        target = conn.execute(
            select(
                departments.c.id,
                departments.c.name,
                policies.c.claim_minutes,
                policies.c.answer_minutes,
                primary.label("primary_id"),
            )
            .join(policies, policies.c.department_id == departments.c.id)
            .where(
                departments.c.slug == given["department"],
                policies.c.urgency == given["urgency"],
            )
        ).one()
        claim_due = at + timedelta(minutes=target.claim_minutes)
        values = {
            "department_id": target.id,
            "urgency": given["urgency"],
            "status": "pending",
            "requester_id": user["id"],
            "patient_ref": given["patient_ref"],
            "question": given["question"],
            "study_ref": given.get("study_ref"),
            "version": 1,
            "created_at": at,
            "routed_at": at,
            "updated_at": at,
            "claim_due_at": claim_due,
            "answer_due_at": at + timedelta(minutes=target.answer_minutes),
            "escalation_level": 0,
            "level1_escalation_at": claim_due,
            "level2_escalation_at": claim_due + timedelta(minutes=target.claim_minutes),
            "followup_count": 0,
            "handoff_count": 0,
            "redirect_count": 0,
            "max_escalation_level": 0,
        }
        consult_id = conn.execute(
            insert(consults).values(values).returning(consults.c.id)
        ).scalar_one()
        conn.execute(
            insert(events).values(
                consult_id=consult_id, kind="created", actor_id=user["id"], at=at
            )
        )
        if target.primary_id is not None:
            message = (
                f"New {given['urgency']} consult #{consult_id} to {target.name} "
                "awaits a claim."
            )
            conn.execute(
                insert(Notification.__table__).values(
                    user_id=target.primary_id,
                    consult_id=consult_id,
                    kind="new_consult",
                    message=message,
                    created_at=at,
                )
            )
    row = {
        **values,
        "id": consult_id,
        "department_slug": given["department"],
        "rq_id": user["id"],
        "rq_name": user["name"],
        "rq_email": user["email"],
        "ow_id": None,
        "ho_id": None,
        "handoff_note": None,
        "handoff_offered_at": None,
        "claimed_at": None,
        "answered_at": None,
        "closed_at": None,
        "rating": None,
    }
    return jsonify(consult_dict(row, at)), 201


@app.post("/api/consults/<int:consult_id>/claim")
def claim(consult_id):
    at = now()
    with engine.begin() as conn:
        user = token_caller(conn)
        claimed = conn.execute(
            update(consults)
            .where(
                consults.c.id == consult_id,
                consults.c.status == "pending",
                consults.c.department_id.in_(list(user["departments"])),
            )
            .values(
                status="claimed",
                owner_id=user["id"],
                claimed_at=func.coalesce(consults.c.claimed_at, at),
                updated_at=at,
                escalation_level=0,
                level1_escalation_at=consults.c.answer_due_at,
                version=consults.c.version + 1,
                claimed_in_time=case(
                    (consults.c.claimed_at.is_(None), consults.c.claim_due_at >= at),
                    else_=consults.c.claimed_in_time,
                ),
            )
            .returning(consults.c.id)
        ).first()
        if claimed is None:
            abort(409)
        conn.execute(
            insert(events).values(
                consult_id=consult_id, kind="claimed", actor_id=user["id"], at=at
            )
        )
        row = conn.execute(consult_select().where(consults.c.id == consult_id))
        answer = with_timeline(conn, row.mappings().one(), at)
        # The answer shows the consult: audited (in the same transaction, the cheapest).
        record_shown(conn, user, [consult_id], "api-action", at, commit=False)
    return jsonify(answer)


QUEUE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{{ department }} queue</title></head><body><main>
<p class="oncall-line">On call now: primary <strong>{{ primary or "nobody" }}</strong>
{%- if backups %}, backup {{ backups | join(", ") }}{% endif %}.</p>
{% for heading, rows in sections %}<section><h2>{{ heading }} ({{ rows | length }})</h2>
<ul class="consults">{% for c in rows %}
<li class="consult-row urgency-{{ c.urgency }}{% if c.overdue %} is-overdue{% endif %}
{%- if c.escalation_level %} is-escalated{% endif %}" data-consult-id="{{ c.id }}">
  <a href="/consults/{{ c.id }}">
    <span class="row-head"><span class="badge urgency-{{ c.urgency }}">{{ c.urgency }}</span>
    <span class="badge status-{{ c.status }}">{{ c.status }}</span>
    {% if c.escalation_level %}<span class="badge escalated">escalated · level
    {{ c.escalation_level }}</span>{% endif %} <strong>#{{ c.id }}</strong></span>
    <span class="row-question">{{ c.question | truncate(140) }}</span>
    <span class="row-meta">{% if c.owner %}Owner: <span class="owner">{{ c.owner }}</span>
    {%- else %}<span class="owner">No owner yet</span>{% endif %} · from {{ c.requester }}
    {% if c.due %}<span class="due{% if c.overdue %} overdue{% endif %}"
    data-due="{{ c.due.isoformat() }}">by {{ c.due.strftime("%H:%M") }}</span>{% endif %}
    </span>
  </a>
</li>{% else %}<li class="empty">None.</li>{% endfor %}
</ul></section>
{% endfor %}</main></body></html>"""

QUEUE_PAGE = app.jinja_env.from_string(QUEUE)
HEADINGS = {
    "pending": "Waiting to be claimed",
    "claimed": "Claimed, awaiting an answer",
    "answered": "Answered, open for follow-up",
}


@app.get("/queue/<slug>")
def queue(slug):
    """The floor's queue page, in one piece on purpose: the statements and the HTML the
    broker's queue makes, in order, to read against it (it is the measure, not
    the product)."""
    at = now()
    with engine.connect() as conn:
        user = session_caller(conn)
        department = conn.execute(
            select(departments.c.id, departments.c.name).where(
                departments.c.slug == slug
            )
        ).one()
        if department.id not in user["departments"] and not user["is_admin"]:
            abort(403)
        urgency_first = case(
            {"stat": 0, "urgent": 1}, value=consults.c.urgency, else_=2
        )
        running = case(
            (consults.c.status == "pending", consults.c.claim_due_at),
            else_=consults.c.answer_due_at,
        )
        rows = conn.execute(
            consult_select()
            .where(
                consults.c.department_id == department.id,
                consults.c.status.in_(OPEN),
            )
            .order_by(urgency_first, running, consults.c.id)
        ).mappings()
        shifts = Shift.__table__
        on_call = conn.execute(
            select(shifts.c.role, users.c.name)
            .join(users, users.c.id == shifts.c.user_id)
            .where(
                and_(
                    shifts.c.department_id == department.id,
                    shifts.c.starts_at <= at,
                    shifts.c.ends_at > at,
                )
            )
            .order_by(shifts.c.starts_at)
        ).all()
        by_status = {s: [] for s in OPEN}
        for c in rows:
            due = {"pending": c["claim_due_at"], "claimed": c["answer_due_at"]}
            by_status[c["status"]].append(
                {
                    "id": c["id"],
                    "urgency": c["urgency"],
                    "status": c["status"],
                    "escalation_level": c["escalation_level"],
                    "question": c["question"],
                    "overdue": overdue(c, at),
                    "owner": c["ow_name"],
                    "requester": c["rq_name"],
                    "due": due.get(c["status"]),
                }
            )
        shown = [c["id"] for rows_ in by_status.values() for c in rows_]
        record_shown(conn, user, shown, "page-queue", at)
    primary = [name for role, name in on_call if role == "primary"]
    return QUEUE_PAGE.render(
        department=department.name,
        primary=primary[-1] if primary else None,
        backups=[name for role, name in on_call if role != "primary"],
        sections=[(HEADINGS[s], by_status[s]) for s in OPEN],
    )
