"""The command line of SPEC.md: `flask --app wsgi <command>`.

Each command exits non-zero with a one-line reason on bad input.
"""

from datetime import UTC, datetime, timedelta

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from broker import accounts, clock
from broker.consults.errors import DomainError, Invalid, NotFound
from broker.consults.escalation import sweep

users = AppGroup("users", help="Manage users.")
departments = AppGroup("departments", help="Manage departments and their members.")


def _or_fail(do, *args, **kwargs):
    """Run a directory operation; a domain error becomes a one-line click error (exit 1)."""
    try:
        return do(*args, **kwargs)
    except Invalid as error:
        reasons = "; ".join(f"{f}: {m[0]}" for f, m in error.errors.items())
        raise click.ClickException(reasons) from None
    except DomainError as error:
        raise click.ClickException(error.message) from None


@users.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--password", required=True)
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
def create_user(email, name, password, admin):
    user = _or_fail(accounts.create_user, email, name, password, is_admin=admin)
    click.echo(f"Created user {user.id} <{user.email}>{' (admin)' if admin else ''}.")


@users.command("deactivate")
@click.option("--email", required=True)
def deactivate_user(email):
    """Deactivate a user: signed out everywhere, their open consults handed on."""
    from broker import staff

    user = accounts.user_by_email(email)
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    _or_fail(staff.deactivate_user, None, user)
    click.echo(f"Deactivated {user.email}.")


@departments.command("create")
@click.option("--slug", required=True)
@click.option("--name", required=True)
def create_department(slug, name):
    department = _or_fail(accounts.create_department, slug, name)
    click.echo(f"Created department {department.slug}.")


@departments.command("add-member")
@click.option("--slug", required=True)
@click.option("--email", required=True)
@click.option("--chief", is_flag=True, help="Make the user the department's chief.")
def add_member(slug, email, chief):
    try:
        department = accounts.department_by_slug(slug)
    except NotFound:
        raise click.ClickException(f"No department {slug!r}.") from None
    user = accounts.user_by_email(email)
    if user is None:
        raise click.ClickException(f"No user with email {email}.")
    _or_fail(accounts.add_member, department, user, chief=chief)
    role = "chief" if chief else "member"
    click.echo(f"{user.email} is now {role} of {department.slug}.")


def _instant(ctx, param, value: str | None) -> datetime:
    """--at: an ISO 8601 instant; one without an offset is taken as UTC."""
    if value is None:
        return clock.now()
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise click.ClickException(f"--at is not an ISO 8601 time: {value!r}") from None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)


@click.command("sweep")
@click.option(
    "--at", callback=_instant, help="The instant to sweep as of (default: now)."
)
@with_appcontext
def sweep_command(at):
    """One deadline and escalation pass as of an instant."""
    result = sweep(at, timedelta(hours=current_app.config["AUTO_CLOSE_HOURS"]))
    click.echo(
        f"Swept as of {at.isoformat()}: {len(result.escalated)} escalation(s), "
        f"{len(result.closed)} closed automatically."
    )
    for consult_id, level in result.escalated:
        click.echo(f"  consult #{consult_id} escalated to level {level}")
    click.echo(_where_pushes_go(current_app.config))


def _where_pushes_go(config) -> str:
    """Whether this process's live pushes reach the pages open on the service."""
    if config["REDIS_URL"]:
        return "Changes pushed through Redis to the service's clients."
    return (
        "No REDIS_URL: this command cannot push to the pages open on the service; "
        "they catch up at their next resync (LIVE_RESYNC_SECONDS = "
        f"{config['LIVE_RESYNC_SECONDS']} s). To push at once, let the service sweep "
        "(SWEEP_INTERVAL_SECONDS) or set REDIS_URL for both."
    )


@click.command("demo")
@with_appcontext
def demo():
    """Load demo departments, users and consults (idempotent) and print the logins."""
    from seed.demo import load_demo

    created, logins = load_demo()
    click.echo("Demo data loaded." if created else "Demo data already present.")
    click.echo("Demo logins (email, password, who):")
    for email, name, role, password in logins:
        click.echo(f"  {email:<28} {password:<14} {name} — {role}")


def _positive(ctx, param, value: str | None) -> int:
    """--consults, --days, --seed: a whole number; a bad one is a one-line error."""
    name = f"--{param.name}"
    if value is None:
        raise click.ClickException(f"{name} is required.")
    try:
        number = int(value)
    except ValueError:
        raise click.ClickException(
            f"{name} must be a whole number: {value!r}"
        ) from None
    if number < 1 and param.name != "seed":
        raise click.ClickException(f"{name} must be at least 1, not {number}.")
    return number


@click.command("generate")
@click.option(
    "--consults", metavar="N", callback=_positive, help="How many consults to add."
)
@click.option(
    "--days", metavar="D", callback=_positive, help="Over how many days before the end."
)
@click.option(
    "--seed", metavar="S", default="1", callback=_positive, help="Random seed (1)."
)
@click.option(
    "--end",
    metavar="ISO-TIME",
    callback=_instant,
    help="When the history ends (default: now).",
)
@with_appcontext
def generate(consults, days, seed, end):
    """Add a realistic synthetic consult history, for reports and benchmarks."""
    import time

    from sqlalchemy.exc import SQLAlchemyError

    from seed.generate import WriteFailed, generate_history

    started = time.monotonic()
    click.echo(f"Generating {consults:,} consults over {days} days (seed {seed})...")
    try:
        made = generate_history(consults, days, seed, end, progress=click.echo)
    except WriteFailed as error:
        raise click.ClickException(str(error)) from None
    except SQLAlchemyError as error:  # before any consult: no tables, say
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise click.ClickException(f"Cannot generate: {reason}") from None
    seconds = time.monotonic() - started
    statuses = ", ".join(
        f"{n:,} {status}" for status, n in sorted(made["statuses"].items())
    )
    click.echo(
        f"Generated {made['consults']:,} consults (ids {made['first_consult_id']}-"
        f"{made['last_consult_id']}) with {made['events']:,} events in {seconds:.1f} s: "
        f"{statuses}."
    )
    click.echo(
        f"  {made['escalated']:,} escalated, {made['followed_up']:,} followed up, "
        f"{made['handed_off']:,} handed off, {made['redirected']:,} redirected; "
        f"{made['departments_created']} department(s) and {made['users_created']} "
        f"user(s) created under @gen.example."
    )


def register_commands(app: Flask) -> None:
    app.cli.add_command(users)
    app.cli.add_command(departments)
    app.cli.add_command(demo)
    app.cli.add_command(sweep_command)
    app.cli.add_command(generate)
