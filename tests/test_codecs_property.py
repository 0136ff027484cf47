"""Property: random nested values of every supported type survive every store, exactly.

Each value is written by a handler, paused at a wait, resumed by a new engine
(with a new codec of the same types) and forked; it comes back equal and of
the same types everywhere, and the JSON a store holds is byte-for-byte what
encoding the value writes, and re-encoding what was decoded writes it again.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _codec_types import Color, Level, Model, Money, Pair, Point, full_codec, same
from zeroflow import HandlerResult, WorkflowContext, WorkflowEngine

KINDS = ["memory", "json", "sqlite", "postgres"]
EXAMPLES = {"memory": 60, "json": 25, "sqlite": 25, "postgres": 15}

offsets = st.integers(-23 * 60, 23 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
zones = st.none() | st.just(dt.UTC) | offsets
texts = st.text(max_size=6)
keys = texts | st.sampled_from(["$zf", "$$zf", "$$$zf", "v", "zf", "$"])

hashable_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | texts
    | st.floats(allow_nan=False)
    | st.dates()
    | st.datetimes(timezones=zones)
    | st.times(timezones=zones)
    | st.timedeltas()
    | st.uuids()
    | st.decimals(allow_nan=False, allow_infinity=True)
    | st.binary(max_size=8)
    | st.sampled_from(Color)
    | st.sampled_from(Level)
    | st.builds(Money, st.decimals(allow_nan=False, allow_infinity=False), texts)
)
hashables = st.recursive(
    hashable_leaves,
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=5,
)
leaves = (
    hashables
    | st.floats()
    | st.decimals(allow_nan=True)
    | st.binary(max_size=8).map(bytearray)
    | st.builds(Point, st.integers(), st.datetimes(timezones=zones))
    | st.builds(Model, texts, st.sets(texts, max_size=3))
)
values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(keys, inner, max_size=3)
        | st.tuples(inner, inner)
        | st.sets(hashables, max_size=3)
        | st.frozensets(hashables, max_size=3)
        | st.builds(Pair, inner, inner)
    ),
    max_leaves=12,
)

FLOW: dict[str, Any] = {
    "workflow_name": "prop",
    "default_entry_node": "put",
    "nodes": {
        "put": {"handler": "put", "outputs": {"ok": [{"target_node": "ask"}]}},
        "ask": {
            "kind": "wait",
            "wait": {"prompt": "again?", "resume_as": "answer"},
            "outputs": {"ok": [{"target_node": "check"}]},
        },
        "check": {"handler": "check", "outputs": {"ok": []}},
    },
}


def _text(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=False)


@pytest.mark.parametrize("kind", KINDS)
def test_random_rich_values_survive_pause_resume_and_fork_in_every_store(
    kind: str, store_of: Callable[..., Any]
) -> None:
    store = store_of(kind)
    ids = itertools.count()

    @settings(
        max_examples=EXAMPLES[kind],
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(values)
    def survives(value: Any) -> None:
        seen: list[Any] = []

        def put(ctx: WorkflowContext) -> HandlerResult:
            return HandlerResult(
                outputs=["ok"], workflow_updates={"value": value}, node_updates={"v": value}
            )

        def check(ctx: WorkflowContext) -> HandlerResult:
            seen.append((ctx.state.workflow["value"], ctx.state.workflow["answer"]))
            return HandlerResult(outputs=["ok"])

        handlers = {"put": put, "check": check}
        run_id = f"p{next(ids)}"
        codec = full_codec()
        paused = WorkflowEngine(FLOW, handlers, store=store, codec=codec).run({"in": value}, run_id)
        assert paused.status == "waiting"
        assert same(paused.state.workflow["value"], value)
        assert same(paused.state.input["in"], value)

        # Byte for byte: the store holds what encoding writes; re-encoding writes it again.
        written = _text(codec.encode(value))
        stored = store.load_snapshot(run_id)
        for held in (stored.state.workflow["value"], stored.state.node["put"]["v"]):
            assert _text(held) == written
            assert _text(codec.encode(codec.decode(held))) == written

        # A new engine with a new codec of the same types resumes it.
        again = WorkflowEngine(FLOW, handlers, store=store, codec=full_codec())
        done = again.resume(run_id, resume_input={"echo": value})
        assert done.status == "succeeded", done.error
        assert same(seen[-1][0], value) and same(seen[-1][1], {"echo": value})
        assert same(done.state.workflow["value"], value)
        assert same(done.state.node["put"], {"v": value})

        # A fork of the pause, resumed by yet another engine.
        assert paused.checkpoint is not None
        again.fork(run_id, paused.checkpoint.step, f"{run_id}f")
        forked = WorkflowEngine(FLOW, handlers, store=store, codec=full_codec()).resume(
            f"{run_id}f", resume_input={"echo": 1}
        )
        assert forked.status == "succeeded", forked.error
        assert same(seen[-1][0], value) and same(forked.state.input["in"], value)
        assert _text(store.load_snapshot(f"{run_id}f").state.workflow["value"]) == written

    survives()


def test_the_strategies_reach_every_supported_type() -> None:
    """The property covers what it claims: a sample holds each supported type."""
    wanted = {
        type(None),
        bool,
        int,
        str,
        float,
        dict,
        list,
        tuple,
        set,
        frozenset,
        bytes,
        bytearray,
        dt.date,
        dt.datetime,
        dt.time,
        dt.timedelta,
        Decimal,
        Color,
        Level,
        Money,
        Model,
        Point,
        Pair,
    }
    found: set[type] = set()

    def walk(value: Any) -> None:
        found.add(type(value))
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list | tuple | set | frozenset):
            for v in value:
                walk(v)
        elif isinstance(value, Pair):
            walk(value.left)
            walk(value.right)

    @settings(max_examples=400, deadline=None, database=None)
    @given(values)
    def sample(value: Any) -> None:
        walk(value)

    sample()
    import uuid

    wanted.add(uuid.UUID)
    assert wanted <= found, wanted - found
