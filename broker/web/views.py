"""Page views. Each parses a form, calls one domain function, and renders or redirects.

Domain errors become a message on the page (with the status the API would
give); a form with errors is shown again with what was typed. Pages that
update live render a fragment of themselves when asked with ?fragment=1.
"""

import uuid
from datetime import timedelta

from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import case, select

from broker import accounts, clock
from broker.consults import access, actions, oncall
from broker.consults.audit import record_read
from broker.consults.deadlines import Minutes, set_policy
from broker.consults.errors import Conflict, DomainError, Invalid, NotFound
from broker.consults.notifications import inbox, mark_all_read
from broker.consults.queries import (
    ConsultFilter,
    timeline,
    visible_consult,
    visible_consults,
)
from broker.extensions import db
from broker.models import OPEN_STATUSES, Consult, Department, Status, Urgency, User
from broker.throttle import sign_in_limits
from broker.web import forms, local_time, web

STATUS_OF = {"NotFound": 404, "NotAllowed": 403, "Conflict": 409, "Invalid": 422}
URGENCY_FIRST = case(
    {Urgency.STAT.value: 0, Urgency.URGENT.value: 1}, value=Consult.urgency, else_=2
)


def _user() -> User:
    return current_user._get_current_object()


def _fragment() -> bool:
    return request.args.get("fragment") == "1"


@web.before_app_request
def end_idle_sessions():
    """Sign out after SESSION_IDLE_MINUTES without a page request (live refreshes don't count)."""
    if not current_user.is_authenticated or request.path.startswith(
        ("/static", "/api")
    ):
        return None
    now = clock.now().timestamp()
    idle = current_app.config["SESSION_IDLE_MINUTES"] * 60
    seen = session.get("seen_at", now)
    if now - seen > idle:
        logout_user()
        session.clear()
        flash("You were signed out after a period of inactivity.")
        return redirect(url_for("web.sign_in"))
    if not _fragment():
        session["seen_at"] = now
    return None


@web.app_template_filter("local")
def local_filter(instant, fmt: str = "%d %b %H:%M") -> str:
    return local_time.shown(instant, fmt)


@web.app_context_processor
def page_context():
    if not current_user.is_authenticated:
        return {}
    user = _user()
    unread = list(db.session.scalars(inbox(user, unread_only=True).limit(8)))
    return {
        "me": user,
        "my_departments": sorted(
            (m.department for m in user.memberships), key=lambda d: d.name
        ),
        "chief_of": {m.department.slug for m in user.memberships if m.is_chief},
        "unread_notifications": unread,
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


@web.route("/sign-in", methods=["GET", "POST"])
@sign_in_limits
def sign_in():
    form = forms.SignInForm()
    if form.validate_on_submit():
        user = accounts.authenticate(form.email.data, form.password.data)
        if user is not None:
            session.clear()
            login_user(user)
            session.permanent = True
            session["seen_at"] = clock.now().timestamp()
            return redirect(url_for("web.home"))
        form.password.errors.append("Wrong email or password.")
    return render_template("sign_in.html", form=form), 200 if not form.errors else 401


@web.post("/sign-out")
def sign_out():
    if forms.ActionForm().validate_on_submit():
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
            getattr(form, error.field).errors.append(error.message)
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
    template = "_my_consults.html" if _fragment() else "my_consults.html"
    return render_template(template, open_consults=open_, done_consults=done)


@web.get("/queue/<slug:slug>")
@login_required
def queue(slug):
    department = _department_or_404(slug)
    if not (_user().is_admin or access.is_member(_user(), department)):
        abort(403)
    query = (
        select(Consult)
        .where(
            Consult.department_id == department.id, Consult.status.in_(OPEN_STATUSES)
        )
        .order_by(URGENCY_FIRST, Consult.claim_due_at)
    )
    consults = list(db.session.scalars(query))
    by_status = {s: [c for c in consults if c.status == s] for s in OPEN_STATUSES}
    template = "_queue.html" if _fragment() else "queue.html"
    return render_template(
        template,
        department=department,
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


def _members(consult: Consult, exclude: User | None = None) -> list[tuple[int, str]]:
    return [
        (user.id, user.name + (" (chief)" if m.is_chief else ""))
        for m, user in access.members_of(consult.department)
        if exclude is None or user.id != exclude.id
    ]


def action_forms(consult: Consult, formdata=None) -> dict:
    """One form per action the user may take now, each under its own field prefix."""
    user = _user()
    allowed = access.available_actions(user, consult)
    made = {}
    for name in sorted(allowed):
        form_class = ACTION_FORMS[name]
        form = form_class(formdata=formdata, prefix=name)
        if name == "answer":
            form.body.label.text = "Your answer"
        elif name == "handoff":
            form.to_user_id.choices = forms.options(_members(consult, exclude=user))
        elif name == "assign":
            form.user_id.choices = forms.options(
                _members(consult, exclude=consult.owner)
            )
        elif name == "redirect":
            form.department.choices = forms.options(
                (slug, label)
                for slug, label in _department_choices()
                if slug != consult.department.slug
            )
        made[name] = form
    return made


ACTION_FORMS = {
    "claim": forms.ActionForm,
    "accept": forms.ActionForm,
    "release": forms.ReasonForm,
    "decline": forms.ReasonForm,
    "cancel": forms.ReasonForm,
    "answer": forms.BodyForm,
    "message": forms.BodyForm,
    "handoff": forms.HandoffForm,
    "assign": forms.AssignForm,
    "redirect": forms.RedirectForm,
    "close": forms.CloseForm,
}


def _do(name: str, consult: Consult, form) -> Consult:
    """Call the domain action behind a page's form."""
    user = _user()
    match name:
        case "claim":
            return actions.claim(consult, user)
        case "accept":
            return actions.accept_handoff(consult, user)
        case "release":
            return actions.release(consult, user, form.reason.data)
        case "decline":
            return actions.decline_handoff(consult, user, form.reason.data)
        case "cancel":
            return actions.cancel(consult, user, form.reason.data)
        case "answer":
            return actions.answer(consult, user, form.body.data)
        case "message":
            return actions.post_message(consult, user, form.body.data)
        case "handoff":
            colleague = db.session.get(User, form.to_user_id.data)
            return actions.hand_off(consult, user, colleague, form.note.data)
        case "assign":
            return actions.assign(
                consult, user, db.session.get(User, form.user_id.data)
            )
        case "redirect":
            return actions.redirect(
                consult, user, form.department.data, form.reason.data
            )
        case "close":
            rating = int(form.rating.data) if form.rating.data else None
            return actions.close(consult, user, rating, form.comment.data)
    abort(404)


DONE = {
    "claim": "You own this consult now.",
    "accept": "Handoff accepted: you own this consult now.",
    "release": "Released back to the queue.",
    "decline": "Handoff declined.",
    "cancel": "Consult cancelled.",
    "answer": "Answer sent.",
    "message": "Sent.",
    "handoff": "Handoff offered. You stay the owner until it is accepted.",
    "assign": "Assigned.",
    "redirect": "Redirected.",
    "close": "Consult closed. Thank you.",
}


def _render_consult(consult: Consult, forms_by_action: dict, status: int = 200):
    template = "_consult.html" if _fragment() else "consult.html"
    return render_template(
        template,
        consult=consult,
        events=timeline(consult),
        forms=forms_by_action,
        members=access.members_of(consult.department),
    ), status


@web.get("/consults/<id:consult_id>")
@login_required
def consult_page(consult_id):
    consult = _consult_or_404(consult_id)
    page = _render_consult(consult, action_forms(consult))
    record_read(consult, _user(), "page")
    return page


@web.post("/consults/<id:consult_id>/<name>")
@login_required
def consult_action(consult_id, name):
    if name not in ACTION_FORMS:
        abort(404)
    consult = _consult_or_404(consult_id)
    all_forms = action_forms(consult)
    form = action_forms(consult, formdata=request.form).get(name)
    if form is None:
        flash("That action is no longer available on this consult.", "error")
        return _render_consult(consult, all_forms, 409)
    all_forms[name] = form
    if not form.validate_on_submit():
        return _render_consult(consult, all_forms, 422)
    try:
        _do(name, consult, form)
    except DomainError as error:
        if isinstance(error, Invalid) and hasattr(form, error.field):
            getattr(form, error.field).errors.append(error.message)
        else:
            flash(error.message, "error")
        db.session.expire_all()
        consult = _consult_or_404(consult_id)
        return _render_consult(consult, all_forms, STATUS_OF[type(error).__name__])
    flash(DONE[name])
    if not access.can_see(_user(), consult):
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
    return redirect(request.referrer or url_for("web.notifications"))


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
    if not access.can_manage_department(_user(), department):
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
    if form.validate_on_submit():
        minutes = {
            u.value: Minutes(
                getattr(form, f"{u.value}_claim").data,
                getattr(form, f"{u.value}_answer").data,
                getattr(form, f"{u.value}_followup").data,
            )
            for u in Urgency
        }
        try:
            set_policy(_user(), department, minutes)
        except Invalid as error:
            getattr(form, f"{error.field}_answer").errors.append(error.message)
        else:
            flash("Deadlines saved. They apply to consults sent from now on.")
            return redirect(url_for("web.department_settings", slug=slug))
    return _render_settings(department, policy_form=form, status=422)


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
        except DomainError as error:
            field = getattr(form, getattr(error, "field", ""), None) or form.starts_at
            field.errors.append(error.message)
            status = STATUS_OF[type(error).__name__]
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
