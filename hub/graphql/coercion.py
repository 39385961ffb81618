"""Variable coercion compiled per input type, for the 1,000-entry batch variables.

graphql-core coerces a variable by walking the value and re-dispatching on its type at every node
(``coerce_input_value``), after a first full walk that only guards against deep nesting. For a
``recordActivities`` batch that is ~20,000 values and, after the other fixes, the largest single
cost of an ingest request (BENCHMARKS.md, ingest). ``input_coercer(type)`` builds, once per
type, a function that does the same steps with the dispatch already decided: the same rules in the
same order (GraphQL spec §3.10 Input Coercion, §5.8 / §6.1.2 CoerceVariableValues as graphql-core
implements them), returning ``Undefined`` wherever graphql-core would. Recursive input types get no
compiled coercer (their nesting is unbounded; graphql-core's guard stays in charge of them).

``LeanExecutionContext.build`` (hub/graphql/execution.py) uses it only for list variables; whenever
the compiled coercer answers ``Undefined`` the whole operation is built again by graphql-core from
the original values, so every error message and path is graphql-core's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLInputObjectType, GraphQLList, GraphQLNonNull, Undefined
from graphql.pyutils import is_iterable
from graphql.type import is_required_input_field
from graphql.type.scalars import coerce_string
from graphql.utilities.coerce_input_value import coerce_default_value

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
    _CACHE[id(type_)] = (type_, coercer)
    return coercer


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
