"""A schema's dump, compiled: the same output as marshmallow's, several times faster.

marshmallow dumps each value through several calls (the field's `serialize`, the
schema's accessor, `get_value`, the field's `_serialize`); a list of 50 consults
is about 1,500 values, and that was a sixth of the list's time (bench/README.md).
`compiled(schema)` reads the schema's fields once and makes one function per
field: the same attribute (dotted paths too), the same default when missing, the
same formatting. A schema with a field kind or a hook not compiled here keeps
marshmallow's own `dump`. tests/test_api_contract.py compares the two.
"""

from collections.abc import Callable
from operator import attrgetter

from marshmallow import Schema, fields, missing
from marshmallow.decorators import POST_DUMP, PRE_DUMP


def compiled(schema: Schema) -> Callable:
    """A function taking what `schema.dump` takes and answering what it answers."""
    plan = _plan(schema)
    if plan is None:
        return schema.dump

    def one(obj) -> dict:
        answer = {}
        # An object (a model, a view) is read attribute by attribute, each at once
        # (attrgetter); one missing falls back on marshmallow's way, as do mappings.
        by_attribute = not hasattr(obj, "__getitem__")
        for key, read, get, form in plan:
            if by_attribute:
                try:
                    value = read(obj)
                except AttributeError:
                    value = get(obj)
            else:
                value = get(obj)
            if value is None:
                answer[key] = None
                continue
            if value is missing:
                continue
            if form is not None:
                value = form(value)
                if value is missing:
                    continue
            answer[key] = value
        return answer

    def dump(obj, *, many: bool | None = None):
        many = schema.many if many is None else bool(many)
        if many and obj is not None:
            return [one(item) for item in obj]
        return one(obj)

    return dump


def use_compiled_dump(schema: Schema) -> Schema:
    """The schema, its `dump` replaced by the compiled one."""
    schema.dump = compiled(schema)
    return schema


def _plan(schema: Schema) -> list | None:
    """(key, read it as attributes, read it as marshmallow does, form), field by field."""
    if schema._hooks[PRE_DUMP] or schema._hooks[POST_DUMP]:
        return None
    if type(schema).get_attribute is not Schema.get_attribute:
        return None
    plan = []
    for name, field in schema.dump_fields.items():
        if not _compiles(field):
            return None
        key = field.data_key if field.data_key is not None else name
        if isinstance(field, fields.Method):
            plan.append((key, _itself, _itself, field._serialize_method))
        else:
            path = field.attribute or name
            plan.append((key, attrgetter(path), _getter(path, field), _form(field)))
    return plan


def _itself(obj):
    return obj


def _compiles(field: fields.Field) -> bool:
    kind = type(field)
    if kind is fields.Integer:
        return not field.as_string
    if kind is fields.List:
        return _compiles(field.inner)
    if kind is fields.Method:
        return field._serialize_method is not None
    return kind in (fields.String, fields.Boolean, fields.DateTime, fields.Nested)


def _form(field: fields.Field) -> Callable | None:
    """The field's formatting of a present value other than None (None: as it is)."""
    kind = type(field)
    if kind is fields.Integer:
        return int
    if kind is fields.String:
        return str
    if kind is fields.DateTime:
        fmt = field.format or field.DEFAULT_FORMAT
        to_text = kind.SERIALIZATION_FUNCS.get(fmt)
        return to_text or (lambda value: value.strftime(fmt))
    if kind is fields.Nested:
        inner = compiled(field.schema)
        many = field.schema.many or field.many
        return lambda value: inner(value, many=many)
    if kind is fields.List:
        each = _form(field.inner) or _itself
        return lambda values: [None if v is None else each(v) for v in values]
    return None  # Boolean


def _getter(path: str, field: fields.Field) -> Callable:
    """marshmallow's `get_value`: a key, else an attribute, step by step along a
    dotted path; when missing, the field's dump_default."""
    keys = path.split(".")
    default = field.dump_default

    def get(obj):
        for key in keys:
            obj = _value_for_key(obj, key)
        if obj is missing:
            obj = default() if callable(default) else default
        return obj

    return get


def _value_for_key(obj, key):
    if not hasattr(obj, "__getitem__"):
        return getattr(obj, key, missing)
    try:
        return obj[key]
    except (KeyError, IndexError, TypeError, AttributeError):
        return getattr(obj, key, missing)
