"""The account pages: your sessions and tokens (end any or all); the access audit (chiefs, admins)."""

from datetime import datetime, timedelta

from flask import (
    abort,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, logout_user

from broker import sessions
from broker.api.sessions import listed, parse_id
from broker.consults.audit import AuditQuery, search
from broker.consults.errors import Invalid, NotAllowed, NotFound
from broker.extensions import db
from broker.web import forms, local_time, web

AUDIT_PAGE_ROWS = 500


def _user():
    return current_user._get_current_object()


def _signed_out_everywhere():
    logout_user()
    session.clear()
    flash("Signed out everywhere.")
    return redirect(url_for("web.sign_in"))


@web.get("/account/sessions")
@login_required
def account_sessions():
    return render_template(
        "sessions.html", held=listed(_user(), g.credential), form=forms.ActionForm()
    )


@web.post("/account/sessions/<string:credential_id>/end")
@login_required
def end_session(credential_id):
    if not forms.ActionForm().validate_on_submit():
        abort(400)
    try:
        kind, number = parse_id(credential_id)
        sessions.end_one(_user(), kind, number)
    except NotFound:
        abort(404)
    if g.credential == sessions.Credential(kind, number):
        logout_user()
        session.clear()
        flash("Signed out.")
        return redirect(url_for("web.sign_in"))
    flash("Ended.")
    return redirect(url_for("web.account_sessions"))


@web.post("/account/sessions/end-all")
@login_required
def end_all_sessions():
    if not forms.ActionForm().validate_on_submit():
        abort(400)
    sessions.end_all(_user())
    return _signed_out_everywhere()


def _day(text: str | None, end: bool = False) -> datetime | None:
    """A date typed on the page (the hospital's days); an end date counts whole."""
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
        if end:
            day += timedelta(days=1)
        return local_time.start_of(day)
    except (ValueError, OverflowError):
        raise Invalid("to" if end else "from", "A date is YYYY-MM-DD.") from None


def _number(text: str | None, field: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or len(text) > 9:
        raise Invalid(field, "A number is required.")
    return int(text)


@web.route("/audit", methods=["GET", "POST"])
@login_required
def audit_page():
    """Search form by POST, so that no patient reference is ever in a URL."""
    form = request.form
    rows, error = None, None
    if request.method == "POST":
        if not forms.ActionForm().validate_on_submit():
            abort(400)
        try:
            wanted = AuditQuery(
                patient_ref=form.get("patient_ref", "").strip() or None,
                user_id=_number(form.get("user_id"), "user_id"),
                consult_id=_number(form.get("consult_id"), "consult_id"),
                start=_day(form.get("from")),
                end=_day(form.get("to"), end=True),
            )
            rows = list(
                db.session.scalars(search(_user(), wanted).limit(AUDIT_PAGE_ROWS))
            )
        except Invalid as invalid:
            error = invalid.message
    else:
        try:
            search(_user(), AuditQuery())
        except NotAllowed:
            abort(403)
    return render_template(
        "audit.html",
        rows=rows,
        error=error,
        typed=form,
        limit=AUDIT_PAGE_ROWS,
        form=forms.ActionForm(),
    ), 422 if error else 200
