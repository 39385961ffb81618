"""Variable coercion compiled per input type, for the 1,000-entry batch variables.

graphql-core coerces a variable by walking the value and re-dispatching on its type at every node
(``coerce_input_value``), after a first full walk that only guards against deep nesting. For a
``recordActivities`` batch that is ~20,000 values and, after the other fixes, the largest single
cost of an ingest request (BENCHMARKS.md, ingest). ``input_coercer(type)`` builds, once per
type, a function that does the same steps with the dispatch already decided: the same rules in the
same order (GraphQL spec §3.10 Input Coercion, §5.8 / §6.1.2 CoerceVariableValues as graphql-core
implements them), returning ``Undefined`` wherever graphql-core would. Recursive input types get no
compiled coercer (their nesting is unbounded; graphql-core's guard stays in charge of them).

Valid input is coerced first by a pydantic-core validator built from the same input type
(``_native_schema``): the same rules expressed as core schemas, run in Rust, ~40 % cheaper on a
1,000-activity batch (BENCHMARKS.md, ingest). It only ever says "valid, and this is the value":
anything it rejects — or cannot express exactly — goes to the Python coercer, so an invalid
request is never decided by it. Where a rule is not expressible exactly (an Int given as an
integral float, a Float from an int beyond 2^53, a non-list value standing for a list of one),
the native schema rejects and the Python coercer decides.

``LeanExecutionContext.build`` (hub/graphql/execution.py) uses it only for list variables; whenever
the compiled coercer answers ``Undefined`` the whole operation is built again by graphql-core from
the original values, so every error message and path is graphql-core's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLFloat,
    GraphQLInputObjectType,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLString,
    Undefined,
)
from graphql.pyutils import is_iterable
from graphql.type import is_required_input_field
from graphql.type.scalars import coerce_string
from graphql.utilities.coerce_input_value import coerce_default_value
from pydantic_core import CoreSchema, SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

Coercer = Callable[[Any], Any]

_CACHE: dict[int, tuple[Any, Coercer | None]] = {}


class _Recursive(Exception):
    """The input type contains itself: not compiled."""


def input_coercer(type_: Any) -> Coercer | None:
    """The compiled coercer for an input type, or ``None`` for recursive types (cached per type)."""
    cached = _CACHE.get(id(type_))
    if cached is not None and cached[0] is type_:
        return cached[1]
    try:
        coercer: Coercer | None = _compile(type_, ())
    except _Recursive:
        coercer = None
    if coercer is not None:
        native = native_coercer(type_)
        if native is not None:
            coercer = _native_first(native, coercer)
    _CACHE[id(type_)] = (type_, coercer)
    return coercer


def _native_first(native: Coercer, compiled: Coercer) -> Coercer:
    def coerce(value: Any) -> Any:
        coerced = native(value)
        return compiled(value) if coerced is Undefined else coerced

    return coerce


class _Inexpressible(Exception):
    """Some rule of the type has no exact core schema: no native validator for it."""


def native_coercer(type_: Any) -> Coercer | None:
    """A pydantic-core validator for the type: the coerced value, or ``Undefined`` where it does
    not accept the value (which may still be valid: the caller must then ask the Python coercer).
    ``None`` if the type has a rule it cannot express exactly."""
    try:
        validator = SchemaValidator(_native_schema(type_, ()))
    except (_Recursive, _Inexpressible):
        return None
    validate = validator.validate_python

    def coerce(value: Any) -> Any:
        try:
            return validate(value)
        except ValidationError:
            return Undefined

    return coerce


_FLOAT_EXACT_INT = 2**53  # every int up to this magnitude is a float without loss (coerce_float_from_int)
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # GraphQL spec §3.5.1 Int: signed 32-bit


def _native_schema(type_: Any, enclosing: tuple[Any, ...]) -> CoreSchema:
    """The core schema of a GraphQL input type, nullable unless wrapped in non-null."""
    non_null = isinstance(type_, GraphQLNonNull)
    if non_null:
        type_ = type_.of_type
    if isinstance(type_, GraphQLList):
        # strict: only a list is a list here (a lone value as a list of one is the Python coercer's)
        schema = cs.list_schema(_native_schema(type_.of_type, enclosing), strict=True)
    elif isinstance(type_, GraphQLInputObjectType):
        schema = _native_object(type_, enclosing)
    else:
        schema = _native_leaf(type_)
    return schema if non_null else cs.nullable_schema(schema)


def _native_object(type_: GraphQLInputObjectType, enclosing: tuple[Any, ...]) -> CoreSchema:
    if type_ in enclosing:
        raise _Recursive(type_.name)
    if type_.is_one_of or type_.out_type is not GraphQLInputObjectType.out_type:
        raise _Inexpressible(type_.name)
    inside = (*enclosing, type_)
    fields = {}
    for name, field in type_.fields.items():
        schema = _native_schema(field.type, inside)
        required = is_required_input_field(field)
        if not required and field.default_value is not Undefined:
            default = _default(field)
            if default is _UNKNOWN_DEFAULT:
                raise _Inexpressible(f"{type_.name}.{name}")
            # pydantic-core deep-copies an unhashable default (`= []`) for every value that omits it.
            schema = cs.with_default_schema(schema, default=default)
        # Absent and neither required nor defaulted: left out of the value, as graphql-core does.
        fields[field.out_name or name] = cs.typed_dict_field(schema, required=required, validation_alias=name)
    # strict: a dict only; forbid: an unknown name is an error (graphql-core's rule, §6.1.2)
    return cs.typed_dict_schema(fields, extra_behavior="forbid", strict=True, total=False)


def _native_leaf(type_: Any) -> CoreSchema:
    # The built-in scalars' input coercion (graphql-core's coerce_string, coerce_boolean,
    # coerce_int, coerce_float), where a core schema says exactly the same.
    if type_ is GraphQLString:
        return cs.str_schema(strict=True)
    if type_ is GraphQLBoolean:
        return cs.bool_schema(strict=True)
    if type_ is GraphQLInt:
        return cs.int_schema(strict=True, ge=_INT_MIN, le=_INT_MAX)  # an integral float: the Python coercer's
    if type_ is GraphQLFloat:
        return cs.union_schema([
            cs.chain_schema([cs.int_schema(strict=True, ge=-_FLOAT_EXACT_INT, le=_FLOAT_EXACT_INT),
                             cs.no_info_plain_validator_function(float)]),
            cs.chain_schema([cs.is_instance_schema(float), cs.float_schema(strict=True, allow_inf_nan=False)]),
        ], mode="left_to_right")
    # Any other leaf (ID, enums, custom scalars such as DateTime): the type's own coercion.
    coerce = type_.coerce_input_value

    def leaf(value: Any) -> Any:
        # Only a non-null position gets here with null (nullable ones settle it first): an error
        # before any parser runs, as in graphql-core, even for one that would accept it (JSON).
        if value is None:
            raise ValueError("null")
        try:
            coerced = coerce(value)
        except Exception:  # noqa: BLE001 - invalid, as graphql-core treats any error here
            raise ValueError("invalid") from None
        if coerced is Undefined:
            raise ValueError("invalid")
        return coerced

    return cs.no_info_plain_validator_function(leaf)


def _compile(type_: Any, enclosing: tuple[Any, ...]) -> Coercer:
    if isinstance(type_, GraphQLNonNull):
        inner = _compile(type_.of_type, enclosing)

        def non_null(value: Any) -> Any:
            if value is None or value is Undefined:
                return Undefined
            return inner(value)

        return non_null
    if isinstance(type_, GraphQLList):
        item_non_null, inner = _unwrapped(type_.of_type, enclosing)

        def list_of(value: Any) -> Any:
            if value is None or value is Undefined:
                return None
            if not is_iterable(value):  # a non-list value is a list of one (not null here)
                coerced = inner(value)
                return Undefined if coerced is Undefined else [coerced]
            out = []
            append = out.append
            for entry in value:
                if entry is None or entry is Undefined:  # what every compiled coercer takes to None
                    if item_non_null:
                        return Undefined
                    append(None)
                    continue
                coerced = inner(entry)
                if coerced is Undefined:
                    return Undefined
                append(coerced)
            return out

        return list_of
    if isinstance(type_, GraphQLInputObjectType):
        return _compile_object(type_, enclosing)
    return _compile_leaf(type_)


def _unwrapped(type_: Any, enclosing: tuple[Any, ...]) -> tuple[bool, Coercer]:
    """(non-null?, the coercer of the type inside): lets a list or an object settle ``None`` (and
    ``Undefined``, which every compiled coercer treats alike) itself, without a call per value
    through the non-null wrapper."""
    if isinstance(type_, GraphQLNonNull):
        return True, _compile(type_.of_type, enclosing)
    return False, _compile(type_, enclosing)


def _compile_leaf(type_: Any) -> Coercer:
    coerce = type_.coerce_input_value
    if coerce is coerce_string:
        # String, inlined: graphql-core's coerce_string accepts exactly the str instances.
        def string(value: Any) -> Any:
            if value is None or value is Undefined:
                return None
            return value if isinstance(value, str) else Undefined

        return string

    def leaf(value: Any) -> Any:
        if value is None or value is Undefined:
            return None
        try:
            return coerce(value)
        except Exception:  # noqa: BLE001 - invalid: graphql-core returns no value too
            return Undefined

    return leaf


_UNKNOWN_DEFAULT = object()


def _default(field: Any) -> Any:
    """The field's default as graphql-core supplies it (the same memoized object every time), or
    ``_UNKNOWN_DEFAULT`` if it cannot be coerced now (then graphql-core's call raises at run time)."""
    try:
        return coerce_default_value(field)
    except Exception:  # noqa: BLE001 - an invalid default: left to graphql-core's own error
        return _UNKNOWN_DEFAULT


def _compile_object(type_: GraphQLInputObjectType, enclosing: tuple[Any, ...]) -> Coercer:
    if type_ in enclosing:
        raise _Recursive(type_.name)
    inside = (*enclosing, type_)
    fields = [
        (name, field.out_name or name, *_unwrapped(field.type, inside), is_required_input_field(field), _default(field),
         field)
        for name, field in type_.fields.items()
    ]
    known = frozenset(type_.fields)
    out_type, one_of = type_.out_type, type_.is_one_of
    plain_out = out_type is GraphQLInputObjectType.out_type  # the default: the dict as it is

    def input_object(value: Any) -> Any:
        if value is None or value is Undefined:
            return None
        if not isinstance(value, dict):
            return Undefined
        # An unknown name is an error unless its value is Undefined (as if absent); the subset
        # test settles the common case in C.
        if not known.issuperset(value) and any(
            name not in known and field_value is not Undefined for name, field_value in value.items()
        ):
            return Undefined
        out: dict[str, Any] = {}
        get = value.get
        for name, out_name, non_null, coerce, required, default, field in fields:
            field_value = get(name, Undefined)
            if field_value is Undefined:
                if required:
                    return Undefined
                if default is _UNKNOWN_DEFAULT:
                    default = coerce_default_value(field)
                if default is not Undefined:
                    out[out_name] = default
                continue
            if field_value is None:
                if non_null:
                    return Undefined
                out[out_name] = None
                continue
            coerced = coerce(field_value)
            if coerced is Undefined:
                return Undefined
            out[out_name] = coerced
        if one_of:
            defined = sum(1 for field_value in value.values() if field_value is not Undefined)
            keys = list(out)
            if defined != 1 or len(keys) != 1 or out[keys[0]] is None:
                return Undefined
        return out if plain_out else out_type(out)

    return input_object
