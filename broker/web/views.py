"""Page views. Each parses a form, calls one domain function, and renders or redirects.

Domain errors become a message on the page (with the status the API would
give); a form with errors is shown again with what was typed. Pages that
update live render a fragment of themselves when asked with ?fragment=1.
"""

import json
import uuid
from datetime import timedelta

from flask import (
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, logout_user
from sqlalchemy import func, select

from broker import accounts, clock, sessions
from broker.consults import access, actions, oncall, registry
from broker.consults.audit import record_shown
from broker.consults.deadlines import PARTS, Minutes, check_policy, set_policy
from broker.consults.errors import Conflict, DomainError, Invalid, NotFound
from broker.consults.notifications import (
    inbox,
    mark_all_read,
    mark_read_for_consult,
)
from broker.consults.queries import (
    ConsultFilter,
    department_queue,
    timeline,
    visible_consult,
    visible_consults,
)
from broker.extensions import db
from broker.http_errors import status_of
from broker.models import OPEN_STATUSES, Consult, Department, Status, Urgency, User
from broker.throttle import sign_in_limits
from broker.web import forms, local_time, queue_filters, schedule, web


def _user() -> User:
    return current_user._get_current_object()


def _fragment() -> bool:
    return request.args.get("fragment") == "1"


@web.before_app_request
def end_idle_sessions():
    """A session found idle (SESSION_IDLE_MINUTES) sends a page to sign in again, saying why."""
    if request.path.startswith(("/static", "/api")):  # (without loading a user first)
        return None
    if current_user.is_authenticated or request.endpoint in (None, "web.sign_in"):
        return None
    if g.get("session_ended") == "idle":
        session.clear()
        flash("You were signed out after a period of inactivity.")
        return redirect(url_for("web.sign_in"))
    return None


@web.app_template_filter("local")
def local_filter(instant, fmt: str = "%d %b %H:%M") -> str:
    return local_time.shown(instant, fmt)


@web.app_context_processor
def page_context():
    if not current_user.is_authenticated:
        return {}
    user = _user()
    # The newest unread alerts, each with the count of all unread (a window over
    # them all, counted before the LIMIT): one statement for the menu and its badge.
    newest = db.session.execute(
        inbox(user, unread_only=True).add_columns(func.count().over()).limit(8)
    ).all()
    unread = [notification for notification, _ in newest]
    unread_count = newest[0][1] if newest else 0
    return {
        "me": user,
        "my_departments": sorted(
            (m.department for m in user.memberships), key=lambda d: d.name
        ),
        "chief_of": {m.department.slug for m in user.memberships if m.is_chief},
        "unread_notifications": unread,
        "unread_count": unread_count,
        # The alerts shown as the page is made; the page's catch-up adds only newer ones.
        "newest_alert_id": unread[0].id if unread else 0,
        "rendered_at": clock.now().isoformat(),
        "resync_seconds": current_app.config["LIVE_RESYNC_SECONDS"],
        "time_zone": current_app.config["HOSPITAL_TIME_ZONE"],
    }


@web.get("/")
@login_required
def home():
    departments = sorted(
        (m.department for m in _user().memberships), key=lambda d: d.name
    )
    if departments:
        return redirect(url_for("web.queue", slug=departments[0].slug))
    return redirect(url_for("web.my_consults"))


def begin_session(user: User) -> None:
    """Sign `user` in on this browser: a new session kept on the server (sessions.py)."""
    session.clear()
    session["key"] = sessions.start(
        user, request.remote_addr, request.user_agent.string
    )
    session.permanent = True


@web.route("/sign-in", methods=["GET", "POST"])
@sign_in_limits
def sign_in():
    form = forms.SignInForm()
    if form.validate_on_submit():
        user = accounts.authenticate(form.email.data, form.password.data)
        if user is not None:
            begin_session(user)
            return redirect(url_for("web.home"))
        form.password.errors.append("Wrong email or password.")
    return render_template("sign_in.html", form=form), 200 if not form.errors else 401


@web.post("/sign-out")
def sign_out():
    if forms.ActionForm().validate_on_submit():
        sessions.end_by_key(session.get("key"))
        logout_user()
        session.clear()
        flash("Signed out.")
    return redirect(url_for("web.sign_in"))


def _department_choices() -> list[tuple[str, str]]:
    departments = db.session.scalars(select(Department).order_by(Department.name))
    return [(d.slug, d.name) for d in departments]


def _create_once(form: forms.NewConsultForm):
    """The form's consult; sent again (same request_key), the one it made first."""
    fields = {
        "department": form.department.data,
        "urgency": form.urgency.data,
        "patient_ref": form.patient_ref.data,
        "question": form.question.data,
        "study_ref": form.study_ref.data,
    }
    if not form.request_key.data:  # a form rendered before forms carried a key
        return actions.create(_user(), **fields)
    return actions.create_once(_user(), form.request_key.data, **fields)[0]


@web.route("/consults/new", methods=["GET", "POST"])
@login_required
def new_consult():
    form = forms.NewConsultForm()
    form.department.choices = forms.options(
        [("", "Choose a department"), *_department_choices()]
    )
    status = 200
    if form.validate_on_submit():
        try:
            consult = _create_once(form)
        except Invalid as error:
            show_errors(form, error)
        except Conflict:  # this form was sent before, with another patient or question
            form.request_key.data = uuid.uuid4().hex
            flash(
                "This form was already sent as another consult (see My consults). "
                "Send it again to make this one a new consult."
            )
            status = 409
        else:
            flash(f"Consult #{consult.id} sent to {consult.department.name}.")
            return redirect(url_for("web.consult_page", consult_id=consult.id))
    if form.errors:
        status = 422
    return render_template("new_consult.html", form=form), status


@web.get("/consults")
@login_required
def my_consults():
    query = visible_consults(_user(), ConsultFilter(requester_is_me=True)).limit(100)
    consults = list(db.session.scalars(query))
    open_ = [c for c in consults if c.status in OPEN_STATUSES]
    done = [c for c in consults if c.status not in OPEN_STATUSES]
    record_shown(_user(), consults, "page-my-consults")
    template = "_my_consults.html" if _fragment() else "my_consults.html"
    return render_template(template, open_consults=open_, done_consults=done)


@web.get("/queue/<slug:slug>")
@login_required
def queue(slug):
    department = _department_or_404(slug)
    if not access.may_see_department(_user(), department):
        abort(403)
    picked = queue_filters.chosen(request.args)
    consults = department_queue(department, queue_filters.queue_filter(picked, _user()))
    record_shown(_user(), consults, "page-queue")
    by_status = {s: [c for c in consults if c.status == s] for s in OPEN_STATUSES}
    template = "_queue.html" if _fragment() else "queue.html"
    return render_template(
        template,
        department=department,
        filters=picked,
        urgencies=queue_filters.URGENCIES,
        statuses=queue_filters.STATUSES,
        pending=by_status[Status.PENDING],
        claimed=by_status[Status.CLAIMED],
        answered=by_status[Status.ANSWERED],
        coverage=oncall.on_call_now(department),
    )


def _department_or_404(slug: str) -> Department:
    try:
        return accounts.department_by_slug(slug)
    except NotFound:
        abort(404)


def _consult_or_404(consult_id: int) -> Consult:
    try:
        return visible_consult(_user(), consult_id)
    except NotFound:
        abort(404)


def action_forms(consult: Consult, failed: tuple | None = None) -> list[tuple]:
    """(action, form) for each action this user may take now, in the registry's order;
    `failed` = (action name, the form as sent), shown again with its errors."""
    user = _user()
    made = []
    for action in registry.available_actions(user, consult):
        if failed and failed[0] == action.name:
            made.append((action, failed[1]))
        else:
            made.append((action, forms.action_form(action, consult, user)))
    return made


def _render_consult(
    consult: Consult, failed: tuple | None = None, status: int = 200, **shown
):
    """The consult page; `shown` adds `unsent` (texts a refusal kept) or `alerts`."""
    template = "_consult.html" if _fragment() else "consult.html"
    page = render_template(
        template,
        consult=consult,
        events=timeline(consult),
        actions=action_forms(consult, failed),
        members=access.members_of(consult.department),
        **shown,
    )
    record_shown(_user(), [consult], "page")
    return page, status


@web.get("/consults/<id:consult_id>")
@login_required
def consult_page(consult_id):
    consult, user = _consult_or_404(consult_id), _user()
    if _fragment():  # a live refresh: it reads the consult, not the alerts
        page = _render_consult(consult)
    else:
        alerts = mark_read_for_consult(user, consult)
        unsent = session.pop("unsent", None)
        if unsent and unsent["consult"] != consult.id:
            unsent = None
        page = _render_consult(
            consult, alerts=alerts, unsent=unsent and unsent["texts"]
        )
    return page


# A refused form's text rides to the consult's page in the session cookie when it is
# this small as JSON (a cookie holds about 4 kB); a longer one is shown at once instead.
UNSENT_IN_SESSION_MAX = 1_500


def _refused(consult: Consult, action, form, message: str, status: int):
    """Back to the consult's page with why, and what was typed shown as unsent text."""
    flash(message, "error")
    texts = [
        [form[f.key].label.text, form[f.key].data]
        for f in action.inputs
        if isinstance(form[f.key].data, str) and form[f.key].data.strip()
    ]
    if len(json.dumps(texts)) <= UNSENT_IN_SESSION_MAX:
        if texts:
            session["unsent"] = {"consult": consult.id, "texts": texts}
        return redirect(url_for("web.consult_page", consult_id=consult.id), 303)
    return _render_consult(consult, status=status, unsent=texts)


def show_errors(form, error: Invalid, field_named=lambda key: key) -> bool:
    """Put each of the domain's field errors beside its field; False if a field is
    not on this form (then the page shows the message at the top)."""
    placed = True
    for key, messages in _flat(error.errors):
        field = getattr(form, field_named(key), None)
        if field is None:
            placed = False
        else:
            field.errors = [*field.errors, *messages]
    return placed


def _flat(errors: dict, prefix: str = ""):
    """({"stat": {"claim_minutes": [..]}} -> ("stat.claim_minutes", [..]), ...)"""
    for key, value in errors.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


@web.post("/consults/<id:consult_id>/<name>")
@login_required
def consult_action(consult_id, name):
    action = registry.ACTIONS.get(name) or abort(404)
    consult = _consult_or_404(consult_id)
    user = _user()
    form = forms.action_form(action, consult, user, formdata=request.form)
    verdict = action.may(user, consult)
    if not verdict:
        return _refused(
            consult, action, form, verdict.reason, status_of(verdict.refusal)
        )
    if not form.validate_on_submit():
        return _render_consult(consult, (name, form), 422)
    try:
        registry.perform(name, consult, user, forms.action_input(action, form))
    except DomainError as error:
        db.session.expire_all()
        consult = _consult_or_404(consult_id)
        if isinstance(error, Invalid) and show_errors(form, error):
            return _render_consult(consult, (name, form), status_of(error))
        return _refused(consult, action, form, error.message, status_of(error))
    flash(action.done)
    if not access.can_see(user, consult):
        return redirect(url_for("web.home"))
    return redirect(url_for("web.consult_page", consult_id=consult_id))


@web.get("/notifications")
@login_required
def notifications():
    items = list(db.session.scalars(inbox(_user()).limit(100)))
    return render_template("notifications.html", notifications=items)


@web.post("/notifications/read-all")
@login_required
def notifications_read_all():
    if forms.ActionForm().validate_on_submit():
        mark_all_read(_user())
    return redirect(url_for("web.notifications"))  # never an unchecked Referer


@web.get("/oncall")
@login_required
def on_call():
    departments = db.session.scalars(select(Department).order_by(Department.name))
    return render_template(
        "oncall.html",
        coverage=[(d, oncall.on_call_now(d)) for d in departments],
    )


def _manageable_department(slug: str) -> Department:
    department = _department_or_404(slug)
    if not access.may_manage_department(_user(), department):
        abort(403)
    return department


def _policy_form(department: Department, formdata=None) -> forms.PolicyForm:
    form = forms.PolicyForm(formdata=formdata, prefix="policy")
    if formdata is None:
        for p in department.policies:
            getattr(form, f"{p.urgency}_claim").data = p.claim_minutes
            getattr(form, f"{p.urgency}_answer").data = p.answer_minutes
            getattr(form, f"{p.urgency}_followup").data = p.followup_minutes
    return form


def _shift_form(department: Department, formdata=None) -> forms.ShiftForm:
    form = forms.ShiftForm(formdata=formdata, prefix="shift")
    form.user_id.choices = forms.options(
        (u.id, u.name) for _, u in access.members_of(department)
    )
    return form


def _render_settings(department, policy_form=None, shift_form=None, status=200):
    shifts = db.session.scalars(
        oncall.shifts_between(department, clock.now() - timedelta(hours=12), None)
    )
    return render_template(
        "department_settings.html",
        department=department,
        policy_form=policy_form or _policy_form(department),
        shift_form=shift_form or _shift_form(department),
        shifts=list(shifts),
        weeks=schedule.two_weeks(department),
        delete_form=forms.ActionForm(),
    ), status


@web.get("/departments/<slug:slug>/settings")
@login_required
def department_settings(slug):
    return _render_settings(_manageable_department(slug))


@web.post("/departments/<slug:slug>/policy")
@login_required
def department_policy(slug):
    department = _manageable_department(slug)
    form = _policy_form(department, request.form)
    valid = form.validate_on_submit()
    minutes = _typed_minutes(form)
    try:  # every error at once: the fields' own, and answer-before-claim
        check_policy(minutes)
    except Invalid as error:
        show_errors(form, error, field_named=_policy_field)
    else:
        if valid:
            set_policy(_user(), department, minutes)
            flash("Deadlines saved. They apply to consults sent from now on.")
            return redirect(url_for("web.department_settings", slug=slug))
    return _render_settings(department, policy_form=form, status=422)


def _typed_minutes(form: forms.PolicyForm) -> dict[str, Minutes]:
    """The minutes of each urgency whose three fields hold valid numbers."""
    typed = {}
    for urgency in Urgency:
        parts = [form[f"{urgency.value}_{p}"] for p in PARTS]
        if not any(f.errors for f in parts):
            typed[urgency.value] = Minutes(*(f.data for f in parts))
    return typed


def _policy_field(key: str) -> str:
    """The domain's "stat.answer_minutes" is the form's "stat_answer"."""
    return key.replace(".", "_").removesuffix("_minutes")


@web.post("/departments/<slug:slug>/shifts")
@login_required
def department_add_shift(slug):
    department = _manageable_department(slug)
    form = _shift_form(department, request.form)
    status = 422
    if form.validate_on_submit():
        try:
            oncall.add_shift(
                _user(),
                department,
                db.session.get(User, form.user_id.data),
                form.role.data,
                local_time.typed(form.starts_at.data),
                local_time.typed(form.ends_at.data),
            )
        except Invalid as error:
            show_errors(form, error)
        except DomainError as error:
            form.starts_at.errors.append(error.message)
            status = status_of(error)
        else:
            flash("Shift added.")
            return redirect(url_for("web.department_settings", slug=slug))
    return _render_settings(department, shift_form=form, status=status)


@web.post("/departments/<slug:slug>/shifts/<id:shift_id>/delete")
@login_required
def department_remove_shift(slug, shift_id):
    department = _manageable_department(slug)
    if forms.ActionForm().validate_on_submit():
        try:
            oncall.remove_shift(_user(), department, shift_id)
            flash("Shift removed.")
        except NotFound:
            abort(404)
    return redirect(url_for("web.department_settings", slug=slug))
