"""A leaner field executor for the provider API: plain fields skip the resolver machinery.

Profiling the profile read (badges, skills and 50 activities: ~1,300 output fields) showed about
40 % of its CPU inside graphql-core's per-field execution: a ``GraphQLResolveInfo`` and a
``Path`` for every field, Strawberry's basic-field wrapper, then the ``complete_value``
dispatch — for fields that are nothing but ``getattr(source, name)``. Most of a record read is
such fields (ids, timestamps, names, scores, and the plain objects and lists holding them).

``LeanExecutionContext.execute_fields`` recognises Strawberry's "basic" fields (no resolver, no
field extensions, no arguments, no directives on the selection) and completes them inline with
the steps graphql-core would take (GraphQL spec §6.4.3 CompleteValue):
- scalar/enum (possibly non-null): ``serialize(getattr(...))``;
- object type without ``is_type_of`` (possibly non-null): the sub-selection on the value;
- list of such objects (possibly non-null at both levels): the sub-selection on each item.
Errors keep graphql-core's semantics: a leaf that is ``None`` where non-null, fails to
serialise or holds an exception is handed to graphql-core's own ``execute_field``; an error
inside a sub-selection goes through graphql-core's ``handle_field_error`` with the same path, so
null propagation and error paths are unchanged. Resolver fields are executed by graphql-core.
A selection whose fields are all plain, down to its leaves, is completed along a plan: made once
per operation (shared by every execution of a query text when no directive can change it) and
compiled to a Python function (``_compiled``), so a page's ~1,300 output fields are not
interpreted step by step. Behaviour is pinned by the whole GraphQL test suite, which runs through this executor, and by
tests/hub/test_lean_execution.py (same results and errors as graphql-core's own executor).
"""

from __future__ import annotations

import itertools
import keyword
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache, partial
from typing import Any, NamedTuple

from graphql import (
    FragmentSpreadNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfoHelpers,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    Undefined,
)
from graphql.pyutils import Path, gather_with_cancel
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from hub.graphql.coercion import input_coercer

_PLAIN = "_kinfolio_plain"
LEAF, OBJECT, LIST, LEAF_LIST, TYPENAME = "leaf", "object", "list", "leaf list", "__typename"
_GENERIC = object()  # "let graphql-core execute this field"


class PlainField(NamedTuple):
    kind: str  # LEAF | OBJECT | LIST (of objects)
    attribute: str
    nullable: bool
    serialize: Any = None  # LEAF
    object_type: GraphQLObjectType | None = None  # OBJECT, LIST items
    item_type: Any = None  # LIST: the declared item type (maybe non-null)
    item_nullable: bool = True


def _unwrap(type_: Any) -> tuple[Any, bool]:
    return (type_.of_type, False) if isinstance(type_, GraphQLNonNull) else (type_, True)


def _plain_object(type_: Any) -> bool:
    return isinstance(type_, GraphQLObjectType) and type_.is_type_of is None


def plain_field(field: Any) -> PlainField | None:
    definition = (field.extensions or {}).get("strawberry-definition")
    # Strawberry marks its basic-field wrapper ``_is_default``: no resolver, no permission
    # classes, no field extensions (strawberry/schema/schema_converter.py).
    if definition is None or not getattr(field.resolve, "_is_default", False) or field.args:
        return None
    type_, nullable = _unwrap(field.type)
    if isinstance(type_, GraphQLScalarType | GraphQLEnumType):
        return PlainField(LEAF, definition.python_name, nullable, serialize=type_.serialize)
    if _plain_object(type_):
        return PlainField(OBJECT, definition.python_name, nullable, object_type=type_)
    if isinstance(type_, GraphQLList):
        item, item_nullable = _unwrap(type_.of_type)
        if _plain_object(item):
            return PlainField(LIST, definition.python_name, nullable, object_type=item,
                              item_type=type_.of_type, item_nullable=item_nullable)
        if isinstance(item, GraphQLScalarType | GraphQLEnumType):  # completed inline only along a plan
            return PlainField(LEAF_LIST, definition.python_name, nullable, serialize=item.serialize,
                              item_type=type_.of_type, item_nullable=item_nullable)
    return None


def mark_plain_fields(schema: GraphQLSchema) -> int:
    """Tag every plain field of the schema with how to complete it directly; returns the count."""
    marked = 0
    for named in schema.type_map.values():
        if isinstance(named, GraphQLObjectType) and not named.name.startswith("__"):
            for field in named.fields.values():
                plain = plain_field(field)
                if plain is not None:
                    setattr(field, _PLAIN, plain)
                    marked += 1
    return marked


class LeanExecutionContext(StrawberryGraphQLCoreExecutionContext):
    # graphql-core keeps ``GraphQLResolveInfoHelpers(gather=self.gather_async_work, ...)`` on the
    # executor: bound methods of itself, a reference cycle through which the executor held the
    # request's context, and with it every row the request read, until the cyclic garbage
    # collector found them (~13 % of the server's CPU, BENCHMARKS.md, fourteenth session). Made on
    # use instead, for the few resolver fields that get a GraphQLResolveInfo; the methods act on
    # state that copies of the executor share, as the stored helpers did.
    @property
    def async_helpers(self) -> GraphQLResolveInfoHelpers:  # type: ignore[override]
        return GraphQLResolveInfoHelpers(gather=self.gather_async_work, track=self.track_async_work)

    @async_helpers.setter
    def async_helpers(self, _helpers: GraphQLResolveInfoHelpers) -> None:
        pass  # graphql-core's __init__ stores its helpers here: made on use instead (above)

    @classmethod
    def build(  # type: ignore[override]
        cls, schema: GraphQLSchema, document: Any, root_value: Any = None, context_value: Any = None,
        raw_variable_values: dict[str, Any] | None = None, *args: Any, **kwargs: Any,
    ) -> Any:
        """graphql-core's build, with list variables coerced by compiled coercers (coercion.py).

        graphql-core builds the operation with an empty list in place of each list variable
        (checking everything else as usual); the real values are then coerced by the compiled
        coercer of the variable's declared type. If any of them is invalid — or the operation
        does not build — graphql-core builds it again from the original values, so an invalid
        request gets graphql-core's own errors.
        """
        lists = [name for name, value in (raw_variable_values or {}).items() if isinstance(value, list) and value]
        if not lists:
            return super().build(schema, document, root_value, context_value, raw_variable_values, *args, **kwargs)
        assert raw_variable_values is not None
        placeholders = {**raw_variable_values, **{name: [] for name in lists}}
        executor = super().build(schema, document, root_value, context_value, placeholders, *args, **kwargs)
        if not isinstance(executor, list) and _coerce_lists(executor.variable_values, raw_variable_values, lists):
            return executor
        return super().build(schema, document, root_value, context_value, raw_variable_values, *args, **kwargs)

    def execute_fields(  # type: ignore[override]
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        # Field middleware (a Strawberry extension implementing ``resolve``) sees every field:
        # then graphql-core executes them all. Strawberry passes an empty manager otherwise.
        if (self.middleware_manager is not None and self.middleware_manager.middlewares) or source_value is None:
            return super().execute_fields(parent_type, source_value, path, grouped_field_set, position_context)
        fields = parent_type.fields
        results: dict[str, Any] = {}
        awaitables: list[str] = []
        try:
            for response_name, field_details_list in grouped_field_set.items():
                result = self._execute_plain(parent_type, fields, source_value, path, response_name,
                                             field_details_list, position_context)
                if result is _GENERIC:
                    # graphql-core executes it, in selection order (the first non-null error wins).
                    result = self.execute_field(parent_type, source_value, field_details_list,
                                                Path(path, response_name, parent_type.name), position_context)
                    if result is Undefined:
                        continue
                results[response_name] = result
                if self.is_awaitable(result):
                    awaitables.append(response_name)
        except Exception:
            if awaitables:
                self.settle_in_background([results[name] for name in awaitables])
            raise
        if not awaitables:
            return results

        async def settled() -> dict[str, Any]:
            values = await gather_with_cancel(*(results[name] for name in awaitables))
            results.update(zip(awaitables, values, strict=True))
            return results

        return settled()

    def _execute_plain(
        self, parent_type: GraphQLObjectType, fields: Any, source_value: Any, path: Path | None, response_name: str,
        field_details_list: Any, position_context: Any,
    ) -> Any:
        """The field's completed value, or ``_GENERIC`` when graphql-core must execute it."""
        node = field_details_list[0].node
        field = fields.get(node.name.value)
        plain: PlainField | None = getattr(field, _PLAIN, None) if field is not None else None
        if plain is None or plain.kind == LEAF_LIST or node.arguments or node.directives:
            return _GENERIC
        value = getattr(source_value, plain.attribute, Undefined)
        if value is None or value is Undefined:
            return None if plain.nullable else _GENERIC
        if plain.kind == LEAF:
            if isinstance(value, Exception):
                return _GENERIC
            try:
                serialized = plain.serialize(value)
            except Exception:  # noqa: BLE001 - graphql-core reports it, with its path
                return _GENERIC
            return _GENERIC if serialized is None or serialized is Undefined else serialized
        if plain.kind == LIST and not (
            isinstance(value, list | tuple) and (plain.item_nullable or all(v is not None for v in value))
        ):
            return _GENERIC
        complete = self._completer(plain.object_type, field_details_list)
        if complete is not None:
            try:
                return complete(value) if plain.kind == OBJECT else _plan_list(value, plain.item_nullable, complete)
            except Exception:  # noqa: BLE001 - anything unusual: the general path below, with its errors
                pass
        field_path = Path(path, response_name, parent_type.name)
        try:
            if plain.kind == OBJECT:
                completed = self.collect_and_execute_subfields(
                    plain.object_type, field_details_list, field_path, value, position_context)
            else:
                completed = self._complete_plain_list(plain, field_details_list, field_path, value, position_context)
        except Exception as raw_error:  # noqa: BLE001 - graphql-core's own error handling
            self.handle_field_error(raw_error, field.type, field_details_list, field_path)
            return None
        if self.is_awaitable(completed):
            return self._guarded(completed, field.type, field_details_list, field_path)
        return completed

    def _plans(self) -> dict[Any, list[Any]]:
        plans = self.__dict__.get("_kinfolio_plans")
        if plans is None:
            plans = self.__dict__["_kinfolio_plans"] = _operation_plans(self.operation, self.fragments)
        return plans

    def _plan(self, object_type: GraphQLObjectType, field_details_list: Any) -> tuple[PlanStep, ...] | None:
        """How to complete objects of this type under this selection when every field below it
        is plain (None otherwise): made once per operation (see ``_operation_plans``)."""
        return self._plan_entry(object_type, field_details_list)[0]

    def _completer(self, object_type: GraphQLObjectType, field_details_list: Any) -> Callable[[Any], Any] | None:
        """The plan as one compiled function (``_compiled``), or None."""
        entry = self._plan_entry(object_type, field_details_list)
        if entry[1] is None and entry[0] is not None:
            entry[1] = _compiled(entry[0])
        return entry[1]

    def _plan_entry(self, object_type: GraphQLObjectType, field_details_list: Any) -> list[Any]:
        plans = self._plans()
        # The field nodes, not the list graphql-core collected them in (a new one per execution):
        # they belong to the parsed document, which the plans' owner keeps alive.
        key = (object_type, *[id(details.node) for details in field_details_list])
        entry = plans.get(key)
        if entry is not None:
            return entry
        grouped_field_set, new_defer_usages, _forbidden = self.collect_subfields(object_type, field_details_list)
        steps = [] if new_defer_usages else [
            self._plan_step(object_type, name, sub_details) for name, sub_details in grouped_field_set.items()
        ]
        plan = tuple(steps) if steps and None not in steps else None  # type: ignore[arg-type]
        entry = plans[key] = [plan, None]
        return entry

    def _plan_step(self, object_type: GraphQLObjectType, response_name: str, sub_details: Any) -> PlanStep | None:
        """One field of a plan, or None when it needs graphql-core (arguments, directives, @defer,
        a resolver, or a sub-selection that is not all plain)."""
        node = sub_details[0].node
        if node.arguments or node.directives or any(d.defer_usage for d in sub_details):
            return None
        if node.name.value == "__typename":  # clients such as Apollo ask for it everywhere
            return PlanStep(response_name, object_type.name, TYPENAME, False, None, True, None)
        field = object_type.fields.get(node.name.value)
        plain: PlainField | None = getattr(field, _PLAIN, None) if field is not None else None
        if plain is None:
            return None
        sub = None
        if plain.kind in (OBJECT, LIST):
            sub = self._plan(plain.object_type, sub_details)  # type: ignore[arg-type]
            if sub is None:
                return None
        return PlanStep(response_name, plain.attribute, plain.kind, plain.nullable, plain.serialize, plain.item_nullable, sub)

    def _complete_plain_list(
        self, plain: PlainField, field_details_list: Any, path: Path, items: Any, position_context: Any,
    ) -> Any:
        completed: list[Any] = []
        pending: list[int] = []
        for index, item in enumerate(items):
            if item is None:  # only reached when items are nullable
                completed.append(None)
                continue
            item_path = path.add_key(index, None)
            try:
                value = self.collect_and_execute_subfields(
                    plain.object_type, field_details_list, item_path, item, position_context)
            except Exception as raw_error:  # noqa: BLE001
                self.handle_field_error(raw_error, plain.item_type, field_details_list, item_path)
                value = None
            if self.is_awaitable(value):
                value = self._guarded(value, plain.item_type, field_details_list, item_path)
                pending.append(index)
            completed.append(value)
        if not pending:
            return completed

        async def settled() -> list[Any]:
            values = await gather_with_cancel(*(completed[index] for index in pending))
            for index, value in zip(pending, values, strict=True):
                completed[index] = value
            return completed

        return settled()

    async def _guarded(self, awaitable: Any, return_type: Any, field_details_list: Any, path: Path) -> Any:
        try:
            return await awaitable
        except Exception as raw_error:  # noqa: BLE001
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None


class PlanStep(NamedTuple):
    response_name: str
    attribute: str
    kind: str
    nullable: bool
    serialize: Any
    item_nullable: bool
    sub: tuple[PlanStep, ...] | None


class _Unplanned(Exception):
    """A value the plan does not cover (null in a non-null position, an error value, …)."""


# Plans per operation, shared by every execution of it (the parsed document is cached, so the same
# query text brings the same operation node). Only for operations without directives: with
# @skip/@include on a fragment, which fields a plan holds depends on the variables.
_SHARED_PLANS: OrderedDict[int, tuple[Any, dict[Any, list[Any]] | None]] = OrderedDict()
_SHARED_OPERATIONS = 512  # twice the parser cache's documents (hub/graphql/schema.py)


def _operation_plans(operation: Any, fragments: dict[str, Any]) -> dict[Any, list[Any]]:
    """The plan store for an execution of this operation: shared, or its own when the operation
    (or a fragment it may use) has a directive."""
    held = _SHARED_PLANS.get(id(operation))
    if held is None:
        shared = None if _has_directives(operation, fragments) else {}
        # The operation is held with its plans: its id (and its nodes', which key the plans)
        # cannot be reused while they are here.
        held = _SHARED_PLANS[id(operation)] = (operation, shared)
        if len(_SHARED_PLANS) > _SHARED_OPERATIONS:
            _SHARED_PLANS.popitem(last=False)
    else:
        _SHARED_PLANS.move_to_end(id(operation))
    return held[1] if held[1] is not None else {}


def _has_directives(operation: Any, fragments: dict[str, Any]) -> bool:
    # graphql-core keeps each fragment as FragmentDetails (the definition and its signatures).
    pending = [operation, *(getattr(details, "definition", details) for details in fragments.values())]
    while pending:
        node = pending.pop()
        if getattr(node, "directives", None):
            return True
        if isinstance(node, FragmentSpreadNode):
            continue
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            pending.extend(selection_set.selections)
    return False


# Serialisers whose answer for a value passing the test is the value itself (graphql-core's
# serialize_string, serialize_id, serialize_float, serialize_int, serialize_boolean).
_AS_IS = {
    GraphQLString.serialize: "type({v}) is str",
    GraphQLID.serialize: "type({v}) is str",
    GraphQLFloat.serialize: "type({v}) is float and {v} - {v} == 0.0",  # finite (inf - inf is nan)
    GraphQLInt.serialize: "type({v}) is int and -2147483648 <= {v} <= 2147483647",
    GraphQLBoolean.serialize: "{v} is True or {v} is False",
}
_INLINE_DEPTH = 8  # deeper objects become functions of their own (Python limits nested blocks)


@lru_cache(maxsize=1024)
def _compiled(plan: tuple[PlanStep, ...]) -> Callable[[Any], dict[str, Any]]:
    """A plan as Python code: one function completing an object along it (lists of objects by a
    function each), with what graphql-core would give, or ``_Unplanned`` for anything the plan does
    not cover (then the general path runs again from the same source and reports the error).

    A plan is interpreted step by step for every output field of a page (~1,300 in the profile
    read); as code, the steps' kinds, names and serialisers are decided once."""
    namespace: dict[str, Any] = {"U": Undefined, "Unplanned": _Unplanned, "_plan_list": _plan_list,
                                 "_serialized": _serialized}
    functions: list[str] = []
    numbers = itertools.count()

    def constant(value: Any) -> str:
        name = f"k{next(numbers)}"
        namespace[name] = value
        return name

    def function(steps: tuple[PlanStep, ...]) -> str:
        name, body = f"complete{next(numbers)}", []
        result = emit(steps, "source", body, 2)
        # A missing attribute is read as Python reads it (a plain attribute load, a third of
        # getattr's cost with a default, once per output field); the general path then runs
        # again from this source and answers as it always did.
        functions.append(f"def {name}(source):\n    try:\n" + "\n".join(body)
                         + f"\n    except AttributeError:\n        raise Unplanned from None\n    return {result}")
        return name

    def read(source: str, attribute: str) -> str:
        if attribute.isidentifier() and not keyword.iskeyword(attribute):
            return f"{source}.{attribute}"
        return f"getattr({source}, {attribute!r})"

    def emit(steps: tuple[PlanStep, ...], source: str, out: list[str], depth: int) -> str:
        pad, result = "    " * depth, f"r{next(numbers)}"
        out.append(f"{pad}if isinstance({source}, Exception): raise Unplanned")  # graphql-core raises it
        out.append(f"{pad}{result} = {{}}")
        for response_name, attribute, kind, nullable, serialize, item_nullable, sub in steps:
            key = repr(response_name)
            if kind is TYPENAME:
                out.append(f"{pad}{result}[{key}] = {attribute!r}")  # the type's name
                continue
            value = f"v{next(numbers)}"
            out.append(f"{pad}{value} = {read(source, attribute)}")
            out.append(f"{pad}if {value} is None or {value} is U:")
            out.append(f"{pad}    {result}[{key}] = None" if nullable else f"{pad}    raise Unplanned")
            if kind is LEAF:
                as_is = _AS_IS.get(serialize)
                if as_is is not None:
                    out.append(f"{pad}elif {as_is.format(v=value)}:")
                    out.append(f"{pad}    {result}[{key}] = {value}")
                out.append(f"{pad}else:")
                out.append(f"{pad}    {result}[{key}] = _serialized({constant(serialize)}, {value})")
            elif kind is OBJECT and depth < _INLINE_DEPTH:
                out.append(f"{pad}else:")
                out.append(f"{pad}    {result}[{key}] = {emit(sub, value, out, depth + 1)}")  # type: ignore[arg-type]
            elif kind is OBJECT:
                out.append(f"{pad}else:")
                out.append(f"{pad}    {result}[{key}] = {function(sub)}({value})")  # type: ignore[arg-type]
            elif kind is LEAF_LIST:
                out.append(f"{pad}else:")
                out.append(f"{pad}    {result}[{key}] = _plan_list({value}, {item_nullable}, "
                           f"{constant(partial(_serialized, serialize))})")
            else:
                out.append(f"{pad}else:")
                out.append(f"{pad}    {result}[{key}] = _plan_list({value}, {item_nullable}, {function(sub)})")  # type: ignore[arg-type]
        return result

    top = function(plan)
    exec(compile("\n\n".join(functions), "<kinfolio plan>", "exec"), namespace)  # noqa: S102 - code built above from the schema
    return namespace[top]  # type: ignore[no-any-return]


def _serialized(serialize: Any, value: Any) -> Any:
    if isinstance(value, Exception):
        raise _Unplanned
    serialized = serialize(value)
    if serialized is None or serialized is Undefined:
        raise _Unplanned
    return serialized


def _plan_list(items: Any, item_nullable: bool, complete_item: Any) -> list[Any]:
    if not isinstance(items, list | tuple):
        raise _Unplanned
    completed: list[Any] = []
    for item in items:
        if item is None:
            if not item_nullable:
                raise _Unplanned
            completed.append(None)
        else:
            completed.append(complete_item(item))
    return completed


def _coerce_lists(values: Any, raw: dict[str, Any], names: list[str]) -> bool:
    """Put the compiled coercion of each list variable in place; False if one is invalid."""
    for name in names:
        source = values.sources.get(name)
        if source is None:
            continue  # not a variable of this operation: graphql-core ignores it too
        coercer = input_coercer(source.signature.type)
        coerced = coercer(raw[name]) if coercer is not None else Undefined
        if coerced is Undefined:
            return False
        values.coerced[name] = coerced
        values.sources[name] = source._replace(value=raw[name])
    return True
