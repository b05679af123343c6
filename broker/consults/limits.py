"""Every bound on what people may type, declared once.

The domain enforces these itself (so no adapter can bypass them); the API's
marshmallow schemas and the pages' forms are built from the same declarations
(`broker/api/fields.py`, `broker/web/forms.py`), with the same words, and the
OpenAPI document shows them. A limit checks one value and answers the cleaned
value or raises `Invalid` naming the field; `clean_all` checks several at once,
so a person sees every error of a form together.
"""

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from broker.consults.errors import Invalid
from broker.extensions import db
from broker.models import Consult, Department, ShiftRole, Urgency, User


def unstorable(text: str) -> str | None:
    """Why no database can store this text, if none can.

    PostgreSQL text cannot hold NUL; a lone surrogate (JSON allows "\\ud800") is
    not Unicode, and neither database driver can encode it.
    """
    if "\x00" in text:
        return "Contains a NUL character."
    try:
        text.encode()
    except UnicodeEncodeError:
        return "Contains a character that is not valid Unicode."
    return None


@dataclass(frozen=True)
class Text:
    """Free text: trimmed, at most `max_length` characters, storable."""

    label: str
    max_length: int
    required: bool = True
    multiline: bool = True
    pattern: str | None = None  # a regular expression the whole text must match
    pattern_means: str = ""  # ... said in words

    def problem(self, value) -> str | None:
        """What is wrong with `value` as typed, or None."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return f"{self.label} is required." if self.required else None
        if not isinstance(value, str):
            return "Must be text."
        if why := unstorable(value):
            return why
        if self.pattern and not re.fullmatch(self.pattern, value):
            return self.pattern_means
        if len(value.strip()) > self.max_length:
            return (
                f"At most {self.max_length:,} characters "
                f"({len(value.strip()):,} typed)."
            )
        return None

    def clean(self, field: str, value) -> str | None:
        if why := self.problem(value):
            raise Invalid(field, why)
        return (value or "").strip() or None


@dataclass(frozen=True)
class WholeNumber:
    """An integer from `minimum` to `maximum`, both included."""

    label: str
    minimum: int
    maximum: int
    required: bool = True

    def problem(self, value) -> str | None:
        if value is None or value == "":
            return f"{self.label} is required." if self.required else None
        if isinstance(value, bool) or not isinstance(value, int):
            return "Must be a whole number."
        if not self.minimum <= value <= self.maximum:
            return f"A whole number from {self.minimum:,} to {self.maximum:,}."
        return None

    def clean(self, field: str, value) -> int | None:
        if why := self.problem(value):
            raise Invalid(field, why)
        return None if value in (None, "") else value


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of values (an enum)."""

    label: str
    values: tuple[str, ...]
    required: bool = True

    def problem(self, value) -> str | None:
        if value is None or value == "":
            return f"{self.label} is required." if self.required else None
        if value not in self.values:
            return f"One of: {', '.join(self.values)}."
        return None

    def clean(self, field: str, value) -> str | None:
        if why := self.problem(value):
            raise Invalid(field, why)
        return value or None


@dataclass(frozen=True)
class Instant:
    """A moment that any database stores and a report period can be moved from."""

    label: str
    earliest: datetime = datetime(1900, 1, 1, tzinfo=UTC)
    latest: datetime = datetime(9999, 1, 1, tzinfo=UTC)

    @property
    def range_message(self) -> str:
        return f"An instant from {self.earliest.year} to {self.latest.year - 1} (UTC)."

    def problem(self, value) -> str | None:
        if value is None:
            return f"{self.label} is required."
        if not isinstance(value, datetime) or value.tzinfo is None:
            return "Must be a date and time with its time zone."
        try:
            inside = self.earliest <= value.astimezone(UTC) < self.latest
        except OverflowError:
            inside = False
        return None if inside else self.range_message

    def clean(self, field: str, value) -> datetime:
        if why := self.problem(value):
            raise Invalid(field, why)
        return value.astimezone(UTC)


@dataclass(frozen=True)
class Colleague:
    """A member of the consult's department, given by id (or as the User)."""

    label: str
    required: bool = True

    def resolve(self, field: str, consult: Consult, value) -> User:
        user = value if isinstance(value, User) else None
        if user is None and isinstance(value, int) and not isinstance(value, bool):
            user = db.session.get(User, value) if 0 < value < 2**31 else None
        member_ids = {m.user_id for m in consult.department.memberships}
        if user is None or user.id not in member_ids:
            raise Invalid(field, f"Choose a member of {consult.department.name}.")
        return user


@dataclass(frozen=True)
class OtherDepartment:
    """Another department than the consult's, given by its slug."""

    label: str
    required: bool = True

    def resolve(self, field: str, consult: Consult, value) -> Department:
        found = None
        if isinstance(value, str) and DEPARTMENT.problem(value) is None:
            found = db.session.scalar(
                select(Department).where(Department.slug == value)
            )
        if found is None:
            raise Invalid(field, "No such department.")
        if found.id == consult.department_id:
            raise Invalid(field, "Choose a different department.")
        return found


@dataclass(frozen=True)
class Password:
    """A new password: long enough, not the person's e-mail, not a common one.

    The common passwords are the 30,000 of zxcvbn's list (its `passwords`
    frequency list, from leaked password sets). `for_email` binds the e-mail
    it must not contain.
    """

    label: str
    min_length: int = 12
    max_length: int = 200
    email: str = ""
    required: bool = True
    multiline: bool = False

    def for_email(self, email: str | None) -> "Password":
        return replace(self, email=(email or "").strip().lower())

    def problem(self, value) -> str | None:
        if not isinstance(value, str) or not value:
            return f"{self.label} is required."
        if why := unstorable(value):
            return why
        if len(value) < self.min_length:
            return f"At least {self.min_length} characters ({len(value)} typed)."
        if len(value) > self.max_length:
            return f"At most {self.max_length} characters."
        lowered = value.lower()
        local_part = self.email.split("@")[0]
        if self.email and (
            self.email in lowered or len(local_part) >= 4 and local_part in lowered
        ):
            return "Must not contain your email address."
        if (
            lowered in _common_passwords()
            or lowered.replace(" ", "") in _common_passwords()
        ):
            return "This is one of the most common passwords: choose another."
        return None

    def clean(self, field: str, value) -> str:
        if why := self.problem(value):
            raise Invalid(field, why)
        return value


def _common_passwords() -> frozenset[str]:
    global _COMMON
    if _COMMON is None:
        from zxcvbn.frequency_lists import FREQUENCY_LISTS

        _COMMON = frozenset(FREQUENCY_LISTS["passwords"])
    return _COMMON


_COMMON: frozenset[str] | None = None


def clean_all(**checks) -> dict:
    """`clean_all(reason=(REASON, value), ...)`: every value cleaned, or one Invalid
    naming every bad field at once."""
    cleaned, errors = {}, {}
    for field, (limit, value) in checks.items():
        why = limit.problem(value)
        if why:
            errors[field] = [why]
        else:
            cleaned[field] = limit.clean(field, value)
    if errors:
        raise Invalid.of(errors)
    return cleaned


# The consult
URGENCY = Choice("Urgency", tuple(u.value for u in Urgency))
PATIENT_REF = Text("Patient reference", 64, multiline=False)
QUESTION = Text("Question", 10_000)
STUDY_REF = Text("Study reference", 64, required=False, multiline=False)
DEPARTMENT = Text("Department", 64, multiline=False)  # a slug
REQUEST_KEY = Text(  # optional where it is taken: an empty one is still invalid
    "Request key",
    64,
    multiline=False,
    pattern=r"[\x21-\x7e]+",
    pattern_means="Printable ASCII, no spaces.",
)

# What is written on its thread
ANSWER = Text("Answer", 10_000)
MESSAGE = Text("Message", 10_000)
REASON = Text("Reason", 2_000)
HANDOFF_NOTE = Text("Note", 2_000)
RATING = WholeNumber("Rating", 1, 5, required=False)
HANDOFF_TO = Colleague("Hand off to")
ASSIGNEE = Colleague("Assign to")
REDIRECT_TO = OtherDepartment("Send to department")
COMMENT = Text("Comment", 2_000, required=False)

# A department's deadlines: up to 30 days each.
MINUTES = WholeNumber("Minutes", 1, 60 * 24 * 30)

# A row's id, as a client may give one (a list's "older than" cursor): a database integer.
ROW_ID = WholeNumber("Id", 1, 2**31 - 1, required=False)

# Any instant taken in (a shift, a report period, updated_since)
INSTANT = Instant("Instant")

# People and departments (administration)
EMAIL = Text(
    "Email",
    254,
    multiline=False,
    pattern=r"[^@\s]+@[^@\s]+\.[^@\s]+",
    pattern_means="A valid email address is required.",
)
PERSON_NAME = Text("Name", 200, multiline=False)
PASSWORD = Password("Password")
SLUG = Text(
    "Slug",
    64,
    multiline=False,
    pattern=r"[a-z0-9]+(-[a-z0-9]+)*",
    pattern_means="Lower-case letters, digits and dashes.",
)
DEPARTMENT_NAME = Text("Name", 200, multiline=False)
TOKEN_NAME = Text("Token name", 100, multiline=False)
TOKEN_DAYS = WholeNumber("Valid for (days)", 1, 365)

# On-call shifts
SHIFT_ROLE = Choice("Role", tuple(r.value for r in ShiftRole))
SHIFT_START = Instant("Start")
SHIFT_END = Instant("End")
LONGEST_SHIFT = timedelta(days=14)
