"""Administration pages: users, departments, members, the admin log; one's own account.

Thin, like the other pages: each form calls one function of `broker/staff.py`,
which checks who may do it; a refusal is shown as the API would give it.
"""

from flask import abort, flash, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, PasswordField, SelectField
from wtforms.validators import DataRequired, InputRequired

from broker import accounts, staff
from broker.consults import access, limits
from broker.consults.errors import DomainError, Invalid, NotFound
from broker.extensions import db
from broker.http_errors import status_of
from broker.models import ApiToken, Department, Membership, User
from broker.web import forms, web
from broker.web.views import show_errors


class UserForm(FlaskForm):
    email = forms.text_field(limits.EMAIL, "Email")
    name = forms.text_field(limits.PERSON_NAME, "Name")
    admin = BooleanField("Administrator")


class NewUserForm(UserForm):
    password = PasswordField(
        "Password (optional: without one, they sign in through the identity "
        "provider or after a reset)"
    )


class DepartmentForm(FlaskForm):
    slug = forms.text_field(limits.SLUG, "Slug (in addresses)")
    name = forms.text_field(limits.DEPARTMENT_NAME, "Name")


class RenameForm(FlaskForm):
    name = forms.text_field(limits.DEPARTMENT_NAME, "New name")


class MemberForm(FlaskForm):
    user_id = SelectField(
        "Who", coerce=int, validators=[InputRequired()], validate_choice=False
    )
    chief = BooleanField("Chief")


class PasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired()])
    new_password = PasswordField(
        "New password (at least 12 characters, not your email, not a common one)",
        validators=[forms.LimitCheck(limits.PASSWORD)],
    )


class TokenForm(FlaskForm):
    name = forms.text_field(limits.TOKEN_NAME, "Token name")
    days = forms.number_field(limits.TOKEN_DAYS, "Valid for (days)")


def _me() -> User:
    return current_user._get_current_object()


def _admin_only() -> None:
    if not staff.may_administer(_me()):
        abort(403)


def _attempt(form, do, *args) -> tuple[object, int]:
    """Run one staff change; on a refusal put it on the form (or the page): (result, status)."""
    try:
        return do(*args), 200
    except Invalid as error:
        if not show_errors(form, error):
            flash(error.message, "error")
        return None, 422
    except DomainError as error:
        flash(error.message, "error")
        return None, status_of(error)


@web.before_app_request
def require_a_new_password():
    """After an admin's reset, nothing but setting a new password (or signing out)."""
    if (
        current_user.is_authenticated
        and current_user.must_change_password
        and request.endpoint not in ("web.account", "web.sign_out", "static")
        and not request.path.startswith("/api")
    ):
        flash("Set a new password to go on.")
        return redirect(url_for("web.account"))
    return None


# Users


@web.route("/admin/users", methods=["GET", "POST"])
@login_required
def admin_users():
    _admin_only()
    form, status = NewUserForm(), 200
    if form.validate_on_submit():
        user, status = _attempt(
            form,
            staff.create_user,
            _me(),
            form.email.data,
            form.name.data,
            form.password.data or None,
            form.admin.data,
        )
        if user is not None:
            flash(f"{user.name} created. A chief can now add them to a department.")
            return redirect(url_for("web.admin_users"))
    elif form.errors:
        status = 422
    users = db.session.scalars(select(User).order_by(User.active.desc(), User.name))
    return render_template("admin_users.html", users=list(users), form=form), status


def _user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


@web.route("/admin/users/<id:user_id>", methods=["GET", "POST"])
@login_required
def admin_user(user_id):
    _admin_only()
    user, status = _user_or_404(user_id), 200
    form = UserForm(obj=user if request.method == "GET" else None)
    if request.method == "GET":
        form.admin.data = user.is_admin
    if form.validate_on_submit():
        done, status = _attempt(
            form,
            staff.edit_user,
            _me(),
            user,
            form.name.data,
            form.email.data,
            form.admin.data,
        )
        if done is not None:
            flash("Saved.")
            return redirect(url_for("web.admin_user", user_id=user.id))
    elif form.errors:
        status = 422
    return render_template(
        "admin_user.html", user=user, form=form, button=forms.ActionForm()
    ), status


@web.post("/admin/users/<id:user_id>/<change>")
@login_required
def admin_user_change(user_id, change):
    _admin_only()
    user = _user_or_404(user_id)
    changes = {
        "deactivate": (staff.deactivate_user, f"{user.name} is deactivated."),
        "reactivate": (staff.reactivate_user, f"{user.name} may sign in again."),
        "reset": (staff.reset_password, None),
    }
    if change not in changes:
        abort(404)
    if forms.ActionForm().validate_on_submit():
        do, done = changes[change]
        result, status = _attempt(None, do, _me(), user)
        if status == 200:
            flash(
                done
                or f"Temporary password for {user.name} (shown once): {result} — "
                "they must set a new one when they sign in."
            )
    return redirect(url_for("web.admin_user", user_id=user.id))


# Departments


@web.route("/admin/departments", methods=["GET", "POST"])
@login_required
def admin_departments():
    _admin_only()
    form, status = DepartmentForm(), 200
    if form.validate_on_submit():
        made, status = _attempt(
            form, staff.create_department, _me(), form.slug.data, form.name.data
        )
        if made is not None:
            flash(f"{made.name} created. Add its first chief on its members page.")
            return redirect(url_for("web.department_members", slug=made.slug))
    elif form.errors:
        status = 422
    return render_template(
        "admin_departments.html",
        departments=_all_departments(),
        form=form,
        button=forms.ActionForm(),
    ), status


def _all_departments():
    return list(
        db.session.scalars(
            select(Department).order_by(
                Department.archived_at.is_not(None), Department.name
            )
        )
    )


@web.post("/admin/departments/<slug:slug>/rename")
@login_required
def admin_department_rename(slug):
    _admin_only()
    department = _department(slug)
    form = RenameForm()
    if form.validate_on_submit():
        _, status = _attempt(
            form, staff.rename_department, _me(), department, form.name.data
        )
        if status == 200:
            flash("Renamed.")
    for error in form.name.errors:
        flash(error, "error")
    return redirect(url_for("web.department_members", slug=slug))


@web.post("/admin/departments/<slug:slug>/archive")
@login_required
def admin_department_archive(slug):
    _admin_only()
    department = _department(slug)
    if forms.ActionForm().validate_on_submit():
        _, status = _attempt(None, staff.archive_department, _me(), department)
        if status == 200:
            flash(f"{department.name} is archived.")
    return redirect(url_for("web.admin_departments"))


def _department(slug: str):
    try:
        return accounts.department_by_slug(slug)
    except NotFound:
        abort(404)


# Members (a department's chiefs, and administrators)


def _members_page(department, form, status=200):
    members = access.members_of(department)
    inside = {u.id for _, u in members}
    form.user_id.choices = forms.options(
        (u.id, f"{u.name} <{u.email}>")
        for u in db.session.scalars(select(User).where(User.active).order_by(User.name))
        if u.id not in inside
    )
    return render_template(
        "department_members.html",
        department=department,
        members=members,
        form=form,
        rename=RenameForm(name=department.name),
        button=forms.ActionForm(),
    ), status


@web.route("/departments/<slug:slug>/members", methods=["GET", "POST"])
@login_required
def department_members(slug):
    department = _department(slug)
    if not staff.may_manage_members(_me(), department):
        abort(403)
    form, status = MemberForm(), 200
    if request.method == "POST":
        user = db.session.get(User, request.form.get("user_id", type=int) or 0)
        if form.validate_on_submit() and user is not None:
            made, status = _attempt(
                None, staff.set_membership, _me(), department, user, form.chief.data
            )
            if made is not None:
                flash(
                    f"{user.name} is now a {'chief' if form.chief.data else 'member'}."
                )
                return redirect(url_for("web.department_members", slug=slug))
        else:
            status = 422
            form.user_id.errors = ["Choose someone to add."]
    return _members_page(department, form, status)


@web.post("/departments/<slug:slug>/members/<id:user_id>/<change>")
@login_required
def department_member_change(slug, user_id, change):
    department, user = _department(slug), _user_or_404(user_id)
    membership = db.session.get(Membership, (user.id, department.id))
    if membership is None or change not in ("chief", "member", "remove"):
        abort(404)
    if forms.ActionForm().validate_on_submit():
        if change == "remove":
            _, status = _attempt(None, staff.remove_member, _me(), department, user)
            done = f"{user.name} left {department.name}; their open consults moved on."
        else:
            chief = change == "chief"
            _, status = _attempt(
                None, staff.set_membership, _me(), department, user, chief
            )
            done = f"{user.name} is {'a chief' if chief else 'no longer chief'}."
        if status == 200:
            flash(done)
        elif status == 403:
            abort(403)
    return redirect(url_for("web.department_members", slug=slug))


# The log


@web.get("/admin/log")
@login_required
def admin_log():
    _admin_only()
    before = request.args.get("before", type=int)
    events = staff.admin_log(before_id=before)
    return render_template("admin_log.html", events=events)


# One's own account


@web.route("/account", methods=["GET", "POST"])
@login_required
def account():
    me = _me()
    password_form = PasswordForm(prefix="password")
    token_form = TokenForm(prefix="token")
    status, new_token = 200, None
    if "password-new_password" in request.form:
        if password_form.validate_on_submit():
            done, status = _attempt(
                password_form,
                staff.change_password,
                me,
                password_form.current_password.data,
                password_form.new_password.data,
                g.get("credential"),
            )
            if done is not None:
                flash("Password changed. Your other sessions and tokens have ended.")
                return redirect(url_for("web.account"))
        else:
            status = 422
    elif "token-name" in request.form:
        if token_form.validate_on_submit():
            new_token, status = _attempt(
                token_form,
                staff.make_token,
                me,
                token_form.name.data,
                token_form.days.data,
            )
        else:
            status = 422
    tokens = db.session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == me.id, ApiToken.name.is_not(None))
        .order_by(ApiToken.id.desc())
    )
    return render_template(
        "account.html",
        password_form=password_form,
        token_form=token_form,
        new_token=new_token,
        tokens=[t for t in tokens if t.valid],
        has_password=bool(me.password_hash),
        signed_in_by=session.get("signed_in_by", "password"),
    ), status
