"""The lean executor (hub/graphql/execution.py) answers exactly as graphql-core's own executor.

Both executors run the same queries on the same data, including the awkward cases the fast path
must hand back to graphql-core: nulls in non-null positions (propagation and error paths), values
a scalar cannot serialise, errors and awaitables inside plain objects and lists, aliases,
fragments, @skip/@include, arguments and __typename. Random worlds (Hypothesis) cover the mixes.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import pytest
import strawberry
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strawberry.extensions import ParserCache
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from hub.graphql.execution import LeanExecutionContext, mark_plain_fields


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.type
class Score:
    raw: float | None
    scaled: float


@strawberry.type
class Item:
    id: strawberry.ID
    count: int
    label: str | None
    colour: Colour
    score: Score | None
    must_score: Score
    tags: list[str]
    done: bool | None = None

    @strawberry.field
    async def slow(self) -> str:
        await asyncio.sleep(0)
        if self.label == "boom":
            raise ValueError("slow failed")
        return f"slow-{self.id}"

    @strawberry.field
    def echo(self, times: int = 1) -> str:
        return str(self.id) * times


@strawberry.type
class Page:
    items: list[Item]
    maybe_items: list[Item | None] | None
    first: Item | None


@strawberry.type
class Query:
    @strawberry.field
    def page(self, info: strawberry.Info) -> Page:
        return info.context["page"]


def _schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    generic = strawberry.Schema(query=Query, execution_context_class=StrawberryGraphQLCoreExecutionContext)
    # As the hub's schema: parsed documents are cached, so executions of one query text share its
    # operation (and the plans made for it).
    lean = strawberry.Schema(query=Query, execution_context_class=LeanExecutionContext,
                             extensions=[lambda: ParserCache(maxsize=64)])
    assert mark_plain_fields(lean._schema) > 0
    return generic, lean


GENERIC, LEAN = _schemas()

QUERIES = [
    "{ page { items { id count label colour score { raw scaled } mustScore { scaled } tags } } }",
    "{ page { items { id slow } maybeItems { id label slow } first { id } } }",
    "{ page { a: items { x: id y: count } b: items { id } } }",
    "{ page { items { ...F } first { ...F } } } fragment F on Item { id label score { raw } __typename }",
    "query($s: Boolean!) { page { items { id @skip(if: $s) count @include(if: $s) echo(times: 2) } } }",
    "{ page { maybeItems { id count mustScore { raw scaled } } } }",
    "{ __typename page { __typename items { __typename id } } }",
    "{ page { first { __typename mustScore { __typename raw } score { scaled } } maybeItems { tags score { raw } } } }",
    "{ page { items { done count score { raw scaled } } } }",
    # Directives on fragments decide which fields a plan holds: such operations' plans are not
    # shared between executions with different variables.
    "query($s: Boolean!) { page { items { ...F @include(if: $s) ... @skip(if: $s) { label } id } } } "
    "fragment F on Item { count }",
    "query($s: Boolean!) { page { items { ...G } } } fragment G on Item { id @include(if: $s) label }",
]

LABELS = st.sampled_from(["a", "boom", None])
# Wrong-typed values make scalars fail to serialise (an Int holding text, a Float holding None).
# Values next to what the fast paths take as they are (bools as numbers, 2**31, inf, nan, ints as
# floats) must go to the serialisers like any other.
COUNTS = st.one_of(st.integers(-5, 5), st.sampled_from(["not a number", None, True, 2**31, -2**31, 3.0, 2.5]))
SCALED = st.one_of(st.floats(0, 1), st.sampled_from([None, float("inf"), float("nan"), True, 1, 2**60]))
DONE = st.sampled_from([None, True, False, 0, 1, 0.5, "yes"])


@st.composite
def items(draw: Any) -> Any:
    def score() -> Any:
        return Score(raw=draw(st.one_of(st.none(), st.floats(0, 100))), scaled=draw(SCALED))

    return Item(
        id=strawberry.ID(str(draw(st.integers(1, 99)))),
        count=draw(COUNTS),
        label=draw(LABELS),
        colour=draw(st.sampled_from([Colour.RED, Colour.BLUE, "purple"])),
        score=draw(st.one_of(st.none(), st.builds(score))),
        must_score=draw(st.one_of(st.none(), st.builds(score))),
        tags=draw(st.lists(st.sampled_from(["x", "y"]), max_size=2)),
        done=draw(DONE),
    )


@st.composite
def pages(draw: Any) -> Page:
    return Page(
        items=draw(st.lists(items(), max_size=4)),
        maybe_items=draw(st.one_of(st.none(), st.lists(st.one_of(st.none(), items()), max_size=4))),
        first=draw(st.one_of(st.none(), items())),
    )


async def _both(query: str, page: Page, variables: dict[str, Any] | None = None) -> tuple[Any, Any]:
    out = []
    for schema in (GENERIC, LEAN):
        result = await schema.execute(query, variable_values=variables, context_value={"page": page})
        errors = sorted((e.message, tuple(e.path or ())) for e in result.errors or [])
        out.append((result.data, errors))
    return out[0], out[1]


@pytest.mark.parametrize("query", QUERIES)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page=pages(), skip=st.booleans())
def test_same_answer_as_graphql_core(query: str, page: Page, skip: bool) -> None:
    generic, lean = asyncio.run(_both(query, page, {"s": skip} if "$s" in query else None))
    assert lean == generic


@pytest.mark.parametrize("query", [q for q in QUERIES if "$s" in q])
def test_plans_follow_the_variables_of_each_execution(query: str) -> None:
    """The same query text (one parsed document) with a directive's condition first false, then
    true, then false: each execution answers for its own variables, as graphql-core does."""
    item = Item(id=strawberry.ID("7"), count=1, label="a", colour=Colour.BLUE, score=None,
                must_score=Score(raw=None, scaled=0.5), tags=[])
    page = Page(items=[item, item], maybe_items=None, first=None)
    for skip in (False, True, False, True):
        generic, lean = asyncio.run(_both(query, page, {"s": skip}))
        assert lean == generic and not lean[1]


def test_fast_path_serves_plain_fields_and_keeps_error_paths() -> None:
    good = Item(id=strawberry.ID("1"), count=2, label="a", colour=Colour.RED, score=None,
                must_score=Score(raw=1.0, scaled=0.5), tags=["x"])
    bad = Item(id=strawberry.ID("2"), count="not a number", label="boom", colour=Colour.BLUE,  # type: ignore[arg-type]
               score=None, must_score=None, tags=[])  # type: ignore[arg-type]
    page = Page(items=[good], maybe_items=[good, bad], first=None)
    generic, lean = asyncio.run(_both("{ page { maybeItems { id count slow mustScore { scaled } } } }", page))
    assert lean == generic
    data, errors = lean
    # The bad item is nulled by its first failing non-null field (the rest of it is abandoned, as
    # in graphql-core); the good one is whole.
    assert data == {"page": {"maybeItems": [{"id": "1", "count": 2, "slow": "slow-1", "mustScore": {"scaled": 0.5}},
                                            None]}}
    assert errors == [("Int cannot represent non-integer value: 'not a number'", ("page", "maybeItems", 1, "count"))]


def test_all_plain_subtrees_complete_along_a_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """A selection of plain fields only (here Page.items and everything below it) is completed
    along a plan made once, not through graphql-core's per-object subfield execution."""
    calls: list[str] = []
    original = LeanExecutionContext.collect_and_execute_subfields

    def counting(self: Any, return_type: Any, *args: Any) -> Any:
        calls.append(return_type.name)
        return original(self, return_type, *args)

    monkeypatch.setattr(LeanExecutionContext, "collect_and_execute_subfields", counting)
    item = Item(id=strawberry.ID("1"), count=2, label=None, colour=Colour.RED, score=Score(raw=None, scaled=0.5),
                must_score=Score(raw=1.0, scaled=0.25), tags=["x"])
    page = Page(items=[item] * 4, maybe_items=None, first=None)
    query = "{ page { items { __typename id count label colour score { raw scaled } mustScore { scaled } tags } } }"
    generic, lean = asyncio.run(_both(query, page))
    assert lean == generic and not lean[1]
    assert lean[0]["page"]["items"][3] == {"__typename": "Item", "id": "1", "count": 2, "label": None, "colour": "RED",
                                           "score": {"raw": None, "scaled": 0.5}, "mustScore": {"scaled": 0.25},
                                           "tags": ["x"]}
    # Page (under the `page` resolver) goes through graphql-core; its items and their scores do not.
    lean_calls = [name for name in calls if name != "Page"]
    calls.clear()
    asyncio.run(_both("{ page { items { id slow } } }", page))  # a resolver below: no plan
    assert lean_calls == [] and calls.count("Item") == 4


def test_pydantic_aliases_are_the_graphql_input_names() -> None:
    """Batch entries reach pydantic under their GraphQL names (no key rewriting): every input
    field's GraphQL name must be the alias pydantic expects, or extra="forbid" would refuse it."""
    from hub.graphql.schema import build_schema
    from hub.config import Settings
    from schemas.records import SECTION_INPUTS

    graphql_types = build_schema(Settings())._schema.type_map
    checked = 0
    for model in SECTION_INPUTS.values():
        for nested in [model, *_nested_models(model)]:
            graphql_type = graphql_types.get(nested.__name__.replace("Create", "") + "Input")
            if graphql_type is None:
                continue
            aliases = {f.alias or name for name, f in nested.model_fields.items()}
            assert set(graphql_type.fields) <= aliases, nested.__name__
            checked += 1
    assert checked >= 3


def _nested_models(model: Any) -> list[Any]:
    from pydantic import BaseModel

    found: list[Any] = []
    for field in model.model_fields.values():
        for arg in [field.annotation, *getattr(field.annotation, "__args__", ())]:
            for inner in [arg, *getattr(arg, "__args__", ())]:
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in found:
                    found.append(inner)
                    found.extend(m for m in _nested_models(inner) if m not in found)
    return found


# -- compiled variable coercion (hub/graphql/coercion.py) ------------------------------------------

from graphql import GraphQLInputField, GraphQLInputObjectType, GraphQLList, GraphQLNonNull, GraphQLScalarType, Undefined  # noqa: E402
from graphql.utilities import coerce_input_value  # noqa: E402

from hub.graphql.coercion import input_coercer, native_coercer  # noqa: E402

_ACTIVITY = {
    "sourceId": "s-1", "verb": {"id": "http://adlnet.gov/expapi/verbs/completed", "display": "completed"},
    "object": {"id": "https://lms.example.org/a/1", "name": "Unit 1", "type": "http://adlnet.gov/expapi/activities/lesson"},
    "result": {"score": {"scaled": 0.5, "raw": 5, "min": 0, "max": 10}, "success": True, "completion": True,
               "duration": "PT5M"},
    "timestamp": "2026-03-01T10:00:00Z",
}
_NOISE = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False, width=32), st.text(max_size=4),
                   st.just([]), st.just({}), st.just("2026-03-01T10:00:00Z"), st.just("COURSE"), st.just(Undefined))


@st.composite
def _perturbed(draw: Any, value: Any, one_in: int | None) -> Any:
    """A valid input, changed here and there (about one node in ``one_in``; never if None): values
    swapped for noise, keys dropped or added, nulls where non-null is required."""
    if one_in is not None and draw(st.integers(0, one_in)) == 0:
        return draw(_NOISE)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if one_in is not None and draw(st.integers(0, one_in)) == 0:
                continue  # dropped (required fields then fail)
            out[key] = draw(_perturbed(item, one_in))
        if one_in is not None and draw(st.integers(0, one_in)) == 0:
            out[draw(st.sampled_from(["extra", "source_id", "Verb"]))] = draw(_NOISE)
        return out
    if isinstance(value, list):
        return [draw(_perturbed(item, one_in)) for item in value]
    return value


def _input_types() -> dict[str, Any]:
    from hub.config import Settings
    from hub.graphql.schema import build_schema

    types = build_schema(Settings())._schema.type_map
    return {name: types[name] for name in ("ActivityInput", "BadgeInput", "SkillInput", "PathwayInput",
                                           "LearnerBatchInput") if name in types}


INPUT_TYPES = _input_types()


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_compiled_coercion_equals_graphql_core(data: Any) -> None:
    activity_list = GraphQLNonNull(GraphQLList(GraphQLNonNull(INPUT_TYPES["ActivityInput"])))
    one_in = data.draw(st.sampled_from([None, 40, 200]))
    value = data.draw(_perturbed([_ACTIVITY, {**_ACTIVITY, "sourceId": "s-2", "result": None}], one_in))
    expected = coerce_input_value(value, activity_list)
    assert input_coercer(activity_list)(value) == expected or (expected is Undefined and
                                                               input_coercer(activity_list)(value) is Undefined)
    # The pydantic-core validator alone: it may pass a value on, never accept it differently.
    native = native_coercer(activity_list)(value)
    assert native is Undefined or native == expected
    assert one_in is not None or native == expected  # an untouched batch is the native validator's to accept


@pytest.mark.parametrize("item", [None, Undefined])
@pytest.mark.parametrize("non_null_items", [True, False])
def test_compiled_coercion_of_a_missing_list_item(item: Any, non_null_items: bool) -> None:
    """A null or Undefined entry: the whole list is invalid under non-null items, else null there."""
    activity = INPUT_TYPES["ActivityInput"]
    type_ = GraphQLList(GraphQLNonNull(activity) if non_null_items else activity)
    value = [item, {**_ACTIVITY, "result": None}]
    expected = coerce_input_value(value, type_)
    got = input_coercer(type_)(value)
    assert (got is Undefined) is (expected is Undefined) is non_null_items
    assert non_null_items or got == expected


_NOISE_KEYS = st.sampled_from(["sourceId", "badges", "achievement", "id", "name", "learnerId", "kind", "skill", "x"])


def _nested_noise(inner: Any) -> Any:
    # A named function: Hypothesis >= 6.170 inspects the source of `extend` to check that it
    # recurses, and cannot read a lambda spread over several lines.
    return st.lists(inner, max_size=3) | st.dictionaries(_NOISE_KEYS, inner, max_size=4)


@pytest.mark.parametrize("name", sorted(INPUT_TYPES))
@settings(max_examples=60, deadline=None)
@given(noise=st.recursive(_NOISE, _nested_noise, max_leaves=12))
def test_compiled_coercion_equals_graphql_core_on_noise(name: str, noise: Any) -> None:
    type_ = GraphQLList(INPUT_TYPES[name])
    expected = coerce_input_value(noise, type_)
    got = input_coercer(type_)(noise)
    assert got == expected or (got is Undefined and expected is Undefined)


@pytest.mark.parametrize("name", sorted(INPUT_TYPES))
@settings(max_examples=60, deadline=None)
@given(noise=st.recursive(_NOISE, _nested_noise, max_leaves=12))
def test_native_coercion_accepts_only_what_graphql_core_accepts(name: str, noise: Any) -> None:
    """The pydantic-core validator may pass a value on to the Python coercer, never accept one
    graphql-core rejects or give a different value."""
    type_ = GraphQLList(INPUT_TYPES[name])
    got = native_coercer(type_)(noise)
    assert got is Undefined or got == coerce_input_value(noise, type_)


_SCORE = {"scaled": 0.5, "raw": 5, "min": 0, "max": 10}


@pytest.mark.parametrize(("score", "native_accepts"), [
    ({"raw": 2**53}, True),
    ({"raw": 2**53 + 1}, False),  # graphql-core: "would lose precision"
    ({"raw": -(2**53) - 1}, False),
    ({"raw": 10**400}, False),
    ({"raw": True}, False),
    ({"raw": "5"}, False),
    ({"raw": float("inf")}, False),
    ({"raw": float("nan")}, False),
    ({"raw": 1.5}, True),
])
def test_native_float_coercion_follows_graphql_core(score: dict[str, Any], native_accepts: bool) -> None:
    activity_list = GraphQLList(INPUT_TYPES["ActivityInput"])
    value = [{**_ACTIVITY, "result": {"score": {**_SCORE, **score}}}]
    expected = coerce_input_value(value, activity_list)
    got = native_coercer(activity_list)(value)
    assert (got is not Undefined) is native_accepts
    assert got is Undefined or (got == expected and type(got[0]["result"]["score"]["raw"]) is float)


@pytest.mark.parametrize("change", [
    {"source_id": "s-1"},  # the Python name is not a GraphQL name: unknown
    {"extra": 1},
    {"sourceId": 7},  # String takes strings only
    {"sourceId": None},  # non-null
    {"timestamp": "yesterday"},  # the DateTime scalar's own parser refuses it
    {"verb": "completed"},  # an object must be an object
])
def test_native_coercion_refuses_what_graphql_core_refuses(change: dict[str, Any]) -> None:
    activity_list = GraphQLList(INPUT_TYPES["ActivityInput"])
    value = [{**_ACTIVITY, **change}]
    assert coerce_input_value(value, activity_list) is Undefined
    assert native_coercer(activity_list)(value) is Undefined
    assert input_coercer(activity_list)(value) is Undefined


@pytest.mark.parametrize("value", [None, {"x": 1}])
def test_native_coercion_keeps_null_out_of_non_null_custom_scalars(value: Any) -> None:
    """A scalar whose parser takes anything (as JSON's does) still gets no null where non-null."""
    anything = GraphQLScalarType("Anything", parse_value=lambda v: v)
    holder = GraphQLList(GraphQLInputObjectType("Holder", {"value": GraphQLInputField(GraphQLNonNull(anything))}))
    expected = coerce_input_value([{"value": value}], holder)
    assert native_coercer(holder)([{"value": value}]) == expected
    assert (expected is Undefined) is (value is None)


def test_native_coercion_applies_defaults_as_graphql_core() -> None:
    """Omitted fields with defaults (`= null`, `evidence: [...] = []`) get an equal value, and a
    list default is never one object shared between values."""
    badge_list = GraphQLList(INPUT_TYPES["BadgeInput"])
    badge = {"sourceId": "b-1", "achievement": {"name": "A", "description": "D", "criteria": {"narrative": "N"}},
             "issuer": {"id": "https://example.org/i", "name": "Issuer"}, "awardedDate": "2026-03-01T10:00:00Z"}
    value = [badge, {**badge, "sourceId": "b-2"}]
    got = native_coercer(badge_list)(value)
    assert got is not Undefined and got == coerce_input_value(value, badge_list)
    assert got[0]["evidence"] == [] and got[0]["evidence"] is not got[1]["evidence"]
    assert got[0]["achievement"]["id"] is None and got[0]["achievement"]["alignments"] == []


def test_batches_take_the_compiled_path() -> None:
    """Valid batches are coerced by the compiled coercer (not silently by graphql-core)."""
    activity_list = GraphQLNonNull(GraphQLList(GraphQLNonNull(INPUT_TYPES["ActivityInput"])))
    batch = [{**_ACTIVITY, "sourceId": f"s-{i}"} for i in range(3)]
    coerced = input_coercer(activity_list)(batch)
    assert coerced is not Undefined and coerced == coerce_input_value(batch, activity_list)
    assert coerced[0]["timestamp"].isoformat() == "2026-03-01T10:00:00+00:00"


@strawberry.type
class Link:
    value: int
    next: Link | None = None


@strawberry.type
class ChainQuery:
    @strawberry.field
    def chain(self, info: strawberry.Info) -> Link:
        return info.context["chain"]


@pytest.mark.parametrize("length", [3, 12, 30])
def test_deep_plain_selections_compile_and_answer_as_graphql_core(length: int) -> None:
    """Plans deeper than the compiled code inlines (nested blocks are limited in Python) are
    split into functions; the answers, nulls included, stay graphql-core's."""
    generic = strawberry.Schema(query=ChainQuery, execution_context_class=StrawberryGraphQLCoreExecutionContext)
    lean = strawberry.Schema(query=ChainQuery, execution_context_class=LeanExecutionContext,
                             extensions=[lambda: ParserCache(maxsize=8)])
    assert mark_plain_fields(lean._schema) > 0
    selection = "value"
    for _ in range(24):
        selection = f"value next {{ {selection} }}"
    query = f"{{ chain {{ {selection} }} }}"
    chain = None
    for value in range(length):
        chain = Link(value=value, next=chain)
    answers = [asyncio.run(schema.execute(query, context_value={"chain": chain})) for schema in (generic, lean, lean)]
    assert answers[0].errors is None and all(a.data == answers[0].data and a.errors is None for a in answers[1:])
    assert answers[1].data["chain"]["value"] == length - 1
