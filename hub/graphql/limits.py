"""Request limits beyond depth/aliases/tokens: a query cost computed from page sizes, and
per-client rate limits."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)
from strawberry.extensions import SchemaExtension

from hub.graphql.errors import ErrorCode, api_error


def estimated_cost(schema: GraphQLSchema, document: Any, variables: dict[str, Any] | None) -> int:
    """Upper bound on the objects an operation can return: each field costs the product of the
    page sizes (`first`, its default when omitted) of the lists above it, times its own."""
    variables = variables or {}
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}

    def page_size(field: FieldNode, definition: Any) -> int:
        if "first" not in definition.args:
            return 1
        for argument in field.arguments or ():
            if argument.name.value == "first":
                value = argument.value
                if isinstance(value, IntValueNode):
                    return max(int(value.value), 0)
                if isinstance(value, VariableNode):
                    given = variables.get(value.name.value)
                    return max(int(given), 0) if isinstance(given, int) else 0
        default = definition.args["first"].default_value
        return int(default) if isinstance(default, int) else 1

    def fields(selection_set: SelectionSetNode | None, seen: frozenset[str]) -> Iterator[FieldNode]:
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                yield selection
            elif isinstance(selection, InlineFragmentNode):
                yield from fields(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                fragment = fragments.get(selection.name.value)
                if fragment is not None:
                    yield from fields(fragment.selection_set, seen | {selection.name.value})

    def walk(parent: GraphQLObjectType, selection_set: SelectionSetNode | None, multiplier: int) -> int:
        total = 0
        for field in fields(selection_set, frozenset()):
            definition = parent.fields.get(field.name.value)
            if definition is None:
                continue  # __typename and friends: validation already ran
            size = multiplier * page_size(field, definition)
            total += size
            named = get_named_type(definition.type)
            if isinstance(named, GraphQLObjectType) and field.selection_set:
                total += walk(named, field.selection_set, size)
        return total

    cost = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            root = schema.get_root_type(definition.operation)
            if root is not None:
                cost += walk(root, definition.selection_set, 1)
    return cost


# Costs by (schema, document, the variables' integer values): the only inputs of a cost, since a
# `first` variable counts only when it holds an int. A provider repeats the same query text (one
# parsed document) with different ids, and walking it cost ~2 % of a profile read's CPU.
_COSTS: OrderedDict[tuple[Any, ...], tuple[GraphQLSchema, Any, int]] = OrderedDict()
_COSTS_HELD = 1024


def operation_cost(schema: GraphQLSchema, document: Any, variables: dict[str, Any] | None) -> int:
    """``estimated_cost``, remembered for the most recent documents and page sizes."""
    ints = tuple(sorted((name, value) for name, value in (variables or {}).items() if isinstance(value, int)))
    key = (id(schema), id(document), ints)
    held = _COSTS.get(key)
    # Schema and document are held with their cost, so their ids cannot be reused meanwhile.
    if held is not None and held[0] is schema and held[1] is document:
        _COSTS.move_to_end(key)
        return held[2]
    cost = estimated_cost(schema, document, variables)
    _COSTS[key] = (schema, document, cost)
    if len(_COSTS) > _COSTS_HELD:
        _COSTS.popitem(last=False)
    return cost


MAX_REPORTED_COST = 2**53 - 1


class CostLimit(SchemaExtension):
    """Refuse, before execution, an operation whose estimated cost exceeds the limit."""

    limit = 50_000

    def on_execute(self) -> Iterator[None]:  # type: ignore[override]
        context = self.execution_context
        if context.graphql_document is not None:
            cost = operation_cost(context.schema._schema, context.graphql_document, context.variables)
            if cost > self.limit:
                # Nested page sizes multiply: 2^31 - 1 at three levels is beyond what JSON numbers
                # carry between implementations (RFC 8259 §6: integers within ±(2^53 - 1)), and
                # beyond 64 bits the response could not even be encoded. Past that, say "more than".
                shown = min(cost, MAX_REPORTED_COST)
                bound = "up to" if cost == shown else "more than"
                raise api_error(
                    ErrorCode.COST_LIMIT,
                    f"this operation could return {bound} {shown} objects; the limit is {self.limit}: ask for smaller pages",
                    cost=shown,
                    limit=self.limit,
                )
        yield


def cost_limit(limit: int) -> type[CostLimit]:
    return type("ConfiguredCostLimit", (CostLimit,), {"limit": limit})


class RateLimiter:
    """Token bucket per client, in this process: ``per_minute`` sustained, ``burst`` at once.

    Each hub replica limits on its own; behind N replicas a client gets at most N times the rate.
    """

    def __init__(self, per_minute: int, burst: int) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str, now: float | None = None) -> float | None:
        """Spend one token; None when allowed, else the seconds to wait (for Retry-After)."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return None
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate if self.rate > 0 else math.inf


class RateLimited(Exception):
    """Raised before execution; rendered as HTTP 429 with Retry-After (RFC 6585 §4)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limit exceeded; retry after {retry_after} s")
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return {"data": None, "errors": [{"message": str(self), "extensions": {"code": "RATE_LIMITED",
                                                                                 "retryAfter": self.retry_after}}]}
