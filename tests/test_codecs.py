"""Rich types in state with ``codec=zeroflow.codecs.standard()``: stored as tagged JSON, given back.

The default stays plain JSON; a codec's checkpoint is refused without the
codec (or by one lacking a type), with nothing decoded or changed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import zeroflow
from _codec_types import Color, Level, Model, Money, Pair, Point, full_codec, same
from zeroflow import (
    CodecError,
    HandlerResult,
    InMemoryWorkflowStore,
    JsonFileWorkflowStore,
    SqliteWorkflowStore,
    WorkflowContext,
    WorkflowEngine,
    codecs,
)
from zeroflow._cli import main

UTC = dt.UTC
WHEN = dt.datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


def paused_flow() -> dict[str, Any]:
    """``put`` writes state, ``ask`` waits, ``check`` reads it back."""
    return {
        "workflow_name": "rich",
        "default_entry_node": "put",
        "nodes": {
            "put": {"handler": "put", "outputs": {"ok": [{"target_node": "ask"}]}},
            "ask": {
                "kind": "wait",
                "wait": {"prompt": "go?", "resume_as": "answer"},
                "outputs": {"ok": [{"target_node": "check"}]},
            },
            "check": {"handler": "check", "outputs": {}},
        },
    }


def chain(*names: str) -> dict[str, Any]:
    """Task nodes ``names`` one after the other, each with the handler of its name."""
    nodes: dict[str, Any] = {}
    for here, after in zip(names, [*names[1:], None], strict=True):
        nodes[here] = {
            "handler": here,
            "outputs": {"ok": [{"target_node": after}] if after else []},
        }
    return {"workflow_name": "chain", "default_entry_node": names[0], "nodes": nodes}


def writes(updates: dict[str, Any], node: dict[str, Any] | None = None) -> Callable[..., Any]:
    def handler(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"], workflow_updates=updates, node_updates=node)

    return handler


def ok(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=["ok"])


def finish(ctx: WorkflowContext) -> HandlerResult:
    return HandlerResult(outputs=[])


RICH: dict[str, Any] = {
    "when": WHEN,
    "naive": dt.datetime(2026, 12, 3, 10, 0),
    "day": dt.date(2026, 12, 3),
    "at": dt.time(9, 30, 15, 120, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    "ago": dt.timedelta(days=-2, seconds=5, microseconds=7),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "price": Decimal("-0.00"),
    "nan": Decimal("NaN"),
    "blob": b"\x00\xffzf",
    "buffer": bytearray(b"abc"),
    "tags": {"a", "b"},
    "frozen": frozenset({(1, 2), (3, "x")}),
    "pair": (1, "two", None),
    "color": Color.BLUE,
    "level": Level.HIGH,
    "point": Point(3, WHEN),
    "nested": Pair({"deep": [uuid.UUID(int=1)]}, (Point(1, dt.datetime(2000, 1, 1)),)),
    "model": Model("m", {"x", "y"}),
    "money": Money(Decimal("9.99"), "EUR"),
    "$zf": "a plain key spelled like the tag",
    "$$zf": {"$zf": "datetime", "v": "not a datetime: user data that looks like a tag"},
}


# ---------------------------------------------------------------- round trips


def test_every_supported_type_comes_back_the_same_from_a_stored_run(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "runs.db")
    seen: dict[str, Any] = {}

    def check(ctx: WorkflowContext) -> HandlerResult:
        seen.update(ctx.state.workflow)
        return HandlerResult(outputs=[])

    handlers = {"put": writes(dict(RICH), {"mine": {1, 2}}), "check": check}
    first = WorkflowEngine(paused_flow(), handlers, store=store, codec=full_codec())
    paused = first.run({"input": dict(RICH)}, "r1")
    assert paused.status == "waiting"
    assert same(paused.state.workflow["point"], RICH["point"])
    assert same(paused.state.input["input"], RICH)
    # A new engine, a new codec with the same types: resume from the store.
    again = WorkflowEngine(paused_flow(), handlers, store=store, codec=full_codec())
    done = again.resume("r1", resume_input={"at": WHEN, "ids": {uuid.UUID(int=2)}})
    assert done.status == "succeeded"
    for key, value in RICH.items():
        assert same(seen[key], value), key
        assert same(done.state.workflow[key], value), key
    assert same(done.state.workflow["answer"], {"at": WHEN, "ids": {uuid.UUID(int=2)}})
    assert same(done.state.node["put"], {"mine": {1, 2}})


def test_the_store_holds_readable_tagged_json_and_the_hash_lock_is_unchanged(
    tmp_path: Path,
) -> None:
    store = JsonFileWorkflowStore(tmp_path / "runs")
    flow = chain("put")
    engine = WorkflowEngine(
        flow, {"put": writes({"when": WHEN, "s": {2, 1}})}, store=store, codec=codecs.standard()
    )
    engine.run({}, "r1")
    assert engine.workflow_hash == WorkflowEngine(flow, {"put": ok}).workflow_hash
    text = "".join(p.read_text("utf-8") for p in (tmp_path / "runs").rglob("*.json*"))
    compact = text.replace(": ", ":").replace(", ", ",")
    assert '{"$zf":"datetime","v":"2026-12-03T10:00:00+00:00"}' in compact
    assert '{"$zf":"set","v":[1,2]}' in compact
    snap = store.load_snapshot("r1")
    assert snap.extra["codec"] == {"format": "zeroflow.codec/1", "types": []}


def test_encoding_is_stable_byte_for_byte() -> None:
    codec = full_codec()
    first = codec.dumps(RICH)
    assert codec.dumps(codec.loads(first)) == first
    assert same(codec.loads(first), RICH)


def test_a_set_is_stored_in_one_order_whatever_its_iteration_order() -> None:
    codec = codecs.standard()
    words = [f"w{i}" for i in range(50)]
    assert codec.dumps(set(words)) == codec.dumps(set(reversed(words)))


def test_a_plain_dict_that_looks_like_a_tag_round_trips_as_a_plain_dict() -> None:
    codec = codecs.standard()
    value = {"$zf": "datetime", "v": "2026-01-01T00:00:00", "$$zf": 1, "$$$zf": [2], "zf": 3}
    stored = codec.encode(value)
    assert list(stored) == ["$$zf", "v", "$$$zf", "$$$$zf", "zf"]
    back = codec.decode(json.loads(json.dumps(stored)))
    assert same(back, value)


def test_tuples_inside_dicts_sets_of_tuples_and_dataclasses_holding_uuids_nest() -> None:
    codec = full_codec()
    value = {
        "t": ({"u": uuid.UUID(int=3)}, frozenset({("a", (1, 2))})),
        "p": Pair(uuid.UUID(int=4), {Color.RED}),
    }
    assert same(codec.loads(codec.dumps(value)), value)


def test_naive_and_aware_datetimes_stay_what_they_were() -> None:
    codec = codecs.standard()
    naive, aware = dt.datetime(2026, 1, 1, 12), dt.datetime(2026, 1, 1, 12, tzinfo=UTC)
    back = codec.loads(codec.dumps([naive, aware]))
    assert back[0].tzinfo is None and back[1].utcoffset() == dt.timedelta(0)
    assert back == [naive, aware]


def test_nan_and_signed_decimals_and_negative_timedeltas_survive_exactly() -> None:
    codec = codecs.standard()
    values = [Decimal("NaN"), Decimal("-sNaN12"), Decimal("-0"), Decimal("1E+3"), dt.timedelta(-1)]
    back = codec.loads(codec.dumps(values))
    assert [str(v) for v in back] == [str(v) for v in values]


# ---------------------------------------------------------------- errors


def test_an_unknown_type_fails_the_node_naming_the_path_and_the_type() -> None:
    class Secret:
        pass

    engine = WorkflowEngine(
        chain("put"), {"put": writes({"box": {"items": [1, Secret()]}})}, codec=codecs.standard()
    )
    result = engine.run({})
    assert result.status == "failed"
    assert result.error is not None and result.error.code == "STATE_SERIALIZATION"
    assert result.error.details["path"] == "workflow_updates.box.items[1]"
    assert result.error.details["type"] == "Secret"
    assert "register it" in result.error.details["reason"]


def test_an_unregistered_enum_dataclass_or_model_is_refused_with_how_to_register_it() -> None:
    @dataclasses.dataclass
    class Loose:
        a: int

    codec = codecs.standard()
    for value, hint in ((Color.RED, "codec.register("), (Loose(1), "codec.register(")):
        with pytest.raises(TypeError, match="not a type the codec stores") as caught:
            codec.encode({"v": value})
        assert hint in str(caught.value)
    with pytest.raises(TypeError, match=r"encode, decode\)"):
        codec.encode(Model("a", set()))


def test_an_unregistered_int_enum_is_stored_as_its_value_as_without_a_codec() -> None:
    codec = codecs.standard()
    assert codec.loads(codec.dumps({"level": Level.LOW})) == {"level": 1}
    assert type(codec.loads(codec.dumps({"level": Level.LOW}))["level"]) is int


def test_without_a_codec_rich_state_still_fails_as_in_0_1_0() -> None:
    result = WorkflowEngine(chain("put"), {"put": writes({"when": WHEN})}).run({})
    assert result.error is not None and result.error.code == "STATE_SERIALIZATION"
    with pytest.raises(TypeError, match="initial_input must be JSON-serializable"):
        WorkflowEngine(chain("put"), {"put": ok}).run({"id": uuid.UUID(int=1)})


def test_nesting_deeper_than_max_depth_is_the_usual_error() -> None:
    codec = codecs.standard()
    deep: Any = 1
    for _ in range(zeroflow.MAX_DEPTH - 2):
        deep = [deep]
    codec.encode({"d": deep})  # just fits
    with pytest.raises(TypeError, match="deeper than"):
        codec.encode({"d": [[deep]]})
    engine = WorkflowEngine(chain("put"), {"put": writes({"d": (deep,)})}, codec=codec)
    result = engine.run({})
    assert result.error is not None and result.error.code == "STATE_SERIALIZATION"
    assert "deeper than" in result.error.details["reason"]


def test_registering_twice_or_a_bad_class_is_a_codec_error_and_codecs_do_not_share() -> None:
    one, two = codecs.standard(), codecs.standard()
    one.register(Point)
    assert one.names == ("Point",) and two.names == ()
    with pytest.raises(CodecError, match="taken already"):
        one.register(Pair, name="Point")
    with pytest.raises(CodecError, match="registered already"):
        one.register(Point, name="Other")
    with pytest.raises(CodecError, match="taken already"):
        two.register(Money, money_encode_only, money_encode_only, name="datetime")
    with pytest.raises(CodecError, match="pass both encode and decode"):
        two.register(Money, money_encode_only)
    with pytest.raises(CodecError, match="pass encode and decode"):
        two.register(Money)
    with pytest.raises(CodecError, match="stored already"):
        two.register(dt.datetime, str, str)
    with pytest.raises(TypeError, match=r"codec must be a zeroflow\.codecs\.Codec"):
        WorkflowEngine(chain("put"), {"put": ok}, codec=object())  # type: ignore[arg-type]


def money_encode_only(m: Any) -> Any:
    return str(m)


def test_a_malformed_or_unknown_tag_is_a_codec_error_naming_its_path() -> None:
    codec = codecs.standard()
    with pytest.raises(CodecError, match=r"'\$.a' is malformed"):
        codec.decode({"a": {"$zf": "set", "v": [], "extra": 1}})
    with pytest.raises(CodecError, match=r"'Ghost'.*codec.register"):
        codec.decode({"a": [{"$zf": "Ghost", "v": 1}]})
    with pytest.raises(CodecError, match="cannot be decoded"):
        codec.decode({"$zf": "datetime", "v": "yesterday"})


# ---------------------------------------------------------------- checkpoints and codecs


def _paused(store: Any, codec: codecs.Codec) -> WorkflowEngine:
    put = writes({"money": Money(Decimal("1.50"), "USD"), "when": WHEN})
    handlers = {"put": put, "check": finish}
    engine = WorkflowEngine(paused_flow(), handlers, store=store, codec=codec)
    assert engine.run({}, "r1").status == "waiting"
    return engine


def test_a_codec_checkpoint_is_refused_without_the_codec_and_nothing_changes(
    tmp_path: Path,
) -> None:
    store = SqliteWorkflowStore(tmp_path / "runs.db")
    engine = _paused(store, full_codec())
    before = store.load_snapshot("r1").to_dict()
    plain = WorkflowEngine(paused_flow(), {"put": ok, "check": finish}, store=store)
    attempts: list[Callable[[], Any]] = [
        lambda: plain.resume("r1", resume_input={"x": 1}),
        lambda: plain.run_from_checkpoint(store.load_snapshot("r1")),
        lambda: plain.fork("r1", step=before["step"], new_run_id="f1"),
        lambda: plain.redrive("r1"),
    ]
    for attempt in attempts:
        with pytest.raises(CodecError, match="written with a codec") as caught:
            attempt()
        assert "Money" in str(caught.value) and caught.value.run_id == "r1"
    assert store.load_snapshot("r1").to_dict() == before
    # The right engine still continues it.
    assert engine.resume("r1", resume_input={}).status == "succeeded"


def test_a_codec_lacking_a_registered_type_refuses_the_checkpoint(tmp_path: Path) -> None:
    store = SqliteWorkflowStore(tmp_path / "runs.db")
    _paused(store, full_codec())
    before = store.load_snapshot("r1").to_dict()
    lacking = codecs.standard()
    lacking.register(Point)
    engine = WorkflowEngine(paused_flow(), {"put": ok, "check": finish}, store=store, codec=lacking)
    with pytest.raises(CodecError, match=r"'Money' at 'workflow.money'.*nothing was loaded"):
        engine.resume("r1", resume_input={})
    assert store.load_snapshot("r1").to_dict() == before


def test_a_plain_checkpoint_continues_under_a_codec_unless_a_key_reads_as_a_tag() -> None:
    store = InMemoryWorkflowStore()
    handlers = {"put": writes({"plain": {"a": 1}}), "check": finish}
    WorkflowEngine(paused_flow(), handlers, store=store).run({}, "r1")
    codec_engine = WorkflowEngine(paused_flow(), handlers, store=store, codec=codecs.standard())
    done = codec_engine.resume("r1", resume_input={"when": WHEN})
    assert done.status == "succeeded" and done.state.workflow["answer"] == {"when": WHEN}
    WorkflowEngine(paused_flow(), writes_tag_key(), store=store).run({}, "r2")
    with pytest.raises(CodecError, match=r"written without a codec.*'\$.workflow.odd.\$zf'"):
        codec_engine.resume("r2", resume_input={})


def writes_tag_key() -> dict[str, Any]:
    return {"put": writes({"odd": {"$zf": 1}}), "check": finish}


def test_a_signed_codec_checkpoint_verifies_and_resumes() -> None:
    store = InMemoryWorkflowStore()
    key = b"k" * 32
    handlers = {"put": writes({"s": {WHEN}}), "check": finish}
    engine = WorkflowEngine(
        paused_flow(), handlers, store=store, codec=codecs.standard(), checkpoint_key=key
    )
    paused = engine.run({}, "r1")
    again = WorkflowEngine(
        paused_flow(), handlers, store=store, codec=codecs.standard(), checkpoint_key=key
    )
    assert paused.checkpoint is not None
    done = again.run_from_checkpoint(paused.checkpoint, {"ok": True})
    assert done.state.workflow["s"] == {WHEN}


# ---------------------------------------------------------------- merging


@pytest.mark.parametrize("kind", ["memory", "json", "sqlite"])
def test_a_rich_value_replaces_a_dict_and_a_dict_replaces_it_in_every_store(
    kind: str, tmp_path: Path
) -> None:
    from _support import make_store

    store = make_store(kind, tmp_path)
    codec = full_codec()
    stored: list[Any] = []

    def look(ctx: WorkflowContext) -> HandlerResult:
        # The store's latest checkpoint now is the journal of a, b and c replayed.
        stored.append(codec.decode(store.load_snapshot("r1").state.to_dict()))
        return HandlerResult(outputs=["ok"], node_updates={"s": frozenset({2})})

    steps = {
        "a": writes({"x": {"k": 1, "when": WHEN}, "p": Point(1, WHEN), "cfg": {"d": {"w": WHEN}}}),
        "b": writes({"x": Point(2, WHEN), "p": {"plain": True}, "cfg": {"d": {"n": 1}}}),
        "c": writes({"x": {"k": 3}}, {"s": {1}}),
        "look": look,
    }
    engine = WorkflowEngine(chain("a", "b", "c", "look"), steps, store=store, codec=codec)
    done = engine.run({}, "r1")
    expected = {"x": {"k": 3}, "p": {"plain": True}, "cfg": {"d": {"w": WHEN, "n": 1}}}
    assert same(done.state.workflow, expected)
    assert same(stored[0]["workflow"], expected)
    assert same(stored[0]["node"]["c"], {"s": {1}})
    assert same(done.state.node["look"], {"s": frozenset({2})})
    final = codec.decode(store.load_snapshot("r1").state.to_dict())
    assert same(final["workflow"], expected)


# ---------------------------------------------------------------- mutation


def test_mutations_of_values_after_return_or_of_read_state_are_never_recorded() -> None:
    mine = {"s": {1}, "p": Point(1, WHEN)}

    def put(ctx: WorkflowContext) -> HandlerResult:
        return HandlerResult(outputs=["ok"], workflow_updates=mine)

    def meddle(ctx: WorkflowContext) -> HandlerResult:
        mine["s"].add(99)  # the handler's own object, after it was merged
        mine["p"].x = 99
        ctx.state.workflow["s"].add(42)  # what it read
        ctx.state.workflow["p"].x = 42
        return HandlerResult(outputs=["ok"])

    seen: list[Any] = []

    def look(ctx: WorkflowContext) -> HandlerResult:
        seen.append((set(ctx.state.workflow["s"]), ctx.state.workflow["p"].x))
        return HandlerResult(outputs=[])

    codec = full_codec()
    engine = WorkflowEngine(
        chain("put", "meddle", "look"), {"put": put, "meddle": meddle, "look": look}, codec=codec
    )
    result = engine.run({})
    assert seen == [({1}, 1)]
    assert result.state.workflow["s"] == {1} and result.state.workflow["p"].x == 1


# ---------------------------------------------------------------- other entry points


def test_fork_with_rich_updates_keeps_types_and_the_fork_resumes() -> None:
    store = InMemoryWorkflowStore()
    seen: list[Any] = []

    def check(ctx: WorkflowContext) -> HandlerResult:
        seen.append(ctx.state.workflow["extra"])
        return HandlerResult(outputs=[])

    handlers = {"put": writes({"when": WHEN}), "check": check}
    engine = WorkflowEngine(paused_flow(), handlers, store=store, codec=full_codec())
    paused = engine.run({}, "r1")
    assert paused.checkpoint is not None
    forked = engine.fork("r1", paused.checkpoint.step, "f1", {"extra": (Color.RED, {1.5})})
    assert forked.extra["codec"]["format"] == "zeroflow.codec/1"
    done = WorkflowEngine(paused_flow(), handlers, store=store, codec=full_codec()).resume(
        "f1", resume_input={}
    )
    assert done.status == "succeeded" and done.state.workflow["when"] == WHEN
    assert seen == [(Color.RED, {1.5})] and type(seen[0]) is tuple


def test_redrive_with_a_rich_override() -> None:
    store = InMemoryWorkflowStore()

    def boom(ctx: WorkflowContext) -> HandlerResult:
        raise RuntimeError("no")

    flow = chain("put", "boom")
    engine = WorkflowEngine(
        flow, {"put": writes({"s": {1}}), "boom": boom}, store=store, codec=codecs.standard()
    )
    assert engine.run({}, "r1").status == "failed"
    done = engine.redrive("r1", override={"boom": {"outputs": [], "workflow_updates": {"t": (1,)}}})
    assert done.status == "succeeded" and done.state.workflow["t"] == (1,)
    assert done.state.workflow["s"] == {1}


def test_map_items_subflows_and_async_handlers_see_and_return_rich_values() -> None:
    child = {
        "workflow_name": "child",
        "default_entry_node": "inner",
        "nodes": {"inner": {"handler": "inner", "outputs": {}}},
    }
    flow = {
        "workflow_name": "parent",
        "default_entry_node": "put",
        "nodes": {
            "put": {"handler": "put", "outputs": {"ok": [{"target_node": "each"}]}},
            "each": {
                "handler": "item",
                "map": {"over": "workflow.items"},
                "outputs": {"ok": [{"target_node": "sub"}]},
            },
            "sub": {
                "kind": "subflow",
                "subflow": {"workflow": "child", "input": {"day": "workflow.day"}},
                "outputs": {"ok": []},
            },
        },
    }

    def item(ctx: WorkflowContext) -> HandlerResult:
        assert type(ctx.item) is dt.date
        return HandlerResult(outputs=["ok"], node_updates={"next": ctx.item + dt.timedelta(1)})

    async def inner(ctx: WorkflowContext) -> HandlerResult:
        day = ctx.state.input["day"]
        assert type(day) is dt.date
        return HandlerResult(outputs=[], workflow_updates={"back": {day}})

    handlers = {
        "put": writes({"items": [dt.date(2026, 1, 1)], "day": dt.date(2026, 2, 2)}),
        "item": item,
        "inner": inner,
    }
    engine = WorkflowEngine(flow, handlers, subflows={"child": child}, codec=codecs.standard())
    result = asyncio.run(engine.arun({}))
    assert result.status == "succeeded", result.error
    assert result.state.node["each"]["results"] == [{"next": dt.date(2026, 1, 2)}]
    assert result.state.node["sub"]["output"]["back"] == {dt.date(2026, 2, 2)}


def test_a_stream_s_result_is_decoded() -> None:
    engine = WorkflowEngine(
        chain("put"), {"put": writes({"u": uuid.UUID(int=9)})}, codec=codecs.standard()
    )
    stream = engine.stream(initial_input={"d": Decimal("2.5")})
    kinds = [event.kind for event in stream]
    assert "wf:end" in kinds
    assert stream.result.state.workflow["u"] == uuid.UUID(int=9)
    assert stream.result.state.input["d"] == Decimal("2.5")


def test_runs_show_names_the_codec_and_prints_tagged_values_readably(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = JsonFileWorkflowStore(tmp_path / "runs")
    _paused(store, full_codec())
    assert main(["runs", "show", "r1", "--store", str(tmp_path / "runs")]) == 0
    text = capsys.readouterr().out
    assert "zeroflow.codec/1" in text and "Money" in text
    assert "datetime(2026-12-03T10:00:00+00:00)" in text


def test_a_paused_subflow_s_rich_state_resumes_in_a_new_engine_and_merges_whole() -> None:
    child = {
        "workflow_name": "child",
        "default_entry_node": "mark",
        "nodes": {
            "mark": {"handler": "mark", "outputs": {"ok": [{"target_node": "hold"}]}},
            "hold": {
                "kind": "wait",
                "wait": {"prompt": "?"},
                "outputs": {"ok": [{"target_node": "over"}]},
            },
            "over": {"handler": "over", "outputs": {"ok": []}},
        },
    }
    flow = {
        "workflow_name": "parent",
        "default_entry_node": "sub",
        "nodes": {
            "sub": {"kind": "subflow", "subflow": {"workflow": "child"}, "outputs": {"ok": []}}
        },
    }
    seen: list[Any] = []

    def over(ctx: WorkflowContext) -> HandlerResult:
        seen.append(ctx.state.workflow["p"])
        return HandlerResult(
            outputs=["ok"], workflow_updates={"p": {"plain": 1}, "q": Point(2, WHEN)}
        )

    handlers = {"mark": writes({"p": Point(1, WHEN), "q": {"k": 1}}), "over": over}
    store = SqliteWorkflowStore(":memory:")
    first = WorkflowEngine(
        flow, handlers, store=store, subflows={"child": child}, codec=full_codec()
    )
    assert first.run({}, "r1").status == "waiting"
    again = WorkflowEngine(
        flow, handlers, store=store, subflows={"child": child}, codec=full_codec()
    )
    done = again.resume("r1", resume_input={"go": {1}})
    assert done.status == "succeeded", done.error
    assert same(seen, [Point(1, WHEN)])
    output = done.state.node["sub"]["output"]
    assert same(output["p"], {"plain": 1}) and same(output["q"], Point(2, WHEN))


def test_migrate_keeps_a_codec_checkpoint_and_refuses_it_without_the_codec() -> None:
    store = InMemoryWorkflowStore()
    handlers = {"put": writes({"s": {1}}), "check": finish}
    old = paused_flow()
    WorkflowEngine(old, handlers, store=store, codec=codecs.standard()).run({}, "r1")
    new = paused_flow()
    new["nodes"]["check"]["config"] = {"v": 2}
    snap = store.load_snapshot("r1")
    with pytest.raises(CodecError):
        WorkflowEngine(new, handlers, store=store).migrate(snap, old)
    moved = WorkflowEngine(new, handlers, store=store, codec=codecs.standard()).migrate(snap, old)
    assert moved.extra["codec"]["format"] == "zeroflow.codec/1"
    done = WorkflowEngine(new, handlers, store=store, codec=codecs.standard()).resume(
        "r1", resume_input={}
    )
    assert done.status == "succeeded" and done.state.workflow["s"] == {1}


def test_the_user_guide_codec_snippet_runs_and_prints_what_it_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    guide = (Path(__file__).parent.parent / "docs" / "USER_GUIDE.md").read_text(encoding="utf-8")
    section = guide[guide.index("## Rich types: codecs") :]
    start = section.index("```python\n") + len("```python\n")
    code = section[start : section.index("```", start)]
    # dont_inherit: the snippet runs as written, without this module's __future__ import.
    snippet = compile(code, "USER_GUIDE.md#rich-types-codecs", "exec", dont_inherit=True)
    exec(snippet, {"__name__": "snippet"})
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["{'$zf': 'Tier', 'v': 'gold'}", "2026-12-05 True"]
    assert all(f"# {line}" in code for line in printed)


def test_the_depth_limit_counts_containers_as_stored_as_freeze_does() -> None:
    from zeroflow._frozen import freeze

    codec = codecs.standard()

    def nest(value: Any, levels: int) -> Any:
        for _ in range(levels):
            value = [value]
        return value

    limit = zeroflow.MAX_DEPTH
    for value in (1, Level.LOW, "x"):
        freeze(nest(value, limit))
        codec.encode(nest(value, limit))  # a scalar at the bottom takes no level
        for refused in (lambda v: freeze(v), codec.encode):
            with pytest.raises(TypeError, match="deeper than"):
                refused(nest(value, limit + 1))
    codec.encode(nest({1}, limit - 2))  # a set is two levels: its tag and its list
    with pytest.raises(TypeError, match="deeper than"):
        codec.encode(nest({1}, limit - 1))
    codec.encode(nest(WHEN, limit - 1))  # a datetime is one: its tag, its text inside
    with pytest.raises(TypeError, match="deeper than"):
        codec.encode(nest(WHEN, limit))
    codec.encode(nest(dt.timedelta(1), limit - 2))  # [days, seconds, microseconds]: two
    with pytest.raises(TypeError, match="deeper than"):
        codec.encode(nest(dt.timedelta(1), limit - 1))


def test_definition_data_that_looks_like_a_tag_stays_literal_under_a_codec() -> None:
    flow = {
        "workflow_name": "literal",
        "default_entry_node": "end",
        "nodes": {
            "end": {
                "kind": "end",
                "end": {"result": {"$zf": "datetime", "v": "not one"}},
                "outputs": {},
            }
        },
    }
    result = WorkflowEngine(flow, {}, codec=codecs.standard()).run({})
    assert result.status == "succeeded"
    assert result.state.workflow["result"] == {"$zf": "datetime", "v": "not one"}


def test_effect_receipts_keep_their_types_and_a_rerun_gets_the_stored_receipt() -> None:
    calls: list[int] = []
    got: list[Any] = []

    def charge() -> dict[str, Any]:
        calls.append(1)
        return {"id": uuid.UUID(int=7), "at": WHEN}

    def pay(ctx: WorkflowContext) -> HandlerResult:
        receipt = ctx.effect("charge", charge)
        got.append(receipt)
        if len(got) == 1:
            raise RuntimeError("after the charge")
        return HandlerResult(outputs=["ok"], workflow_updates={"receipt": receipt})

    store = InMemoryWorkflowStore()
    engine = WorkflowEngine(chain("pay"), {"pay": pay}, store=store, codec=codecs.standard())
    assert engine.run({}, "r1").status == "failed"
    done = WorkflowEngine(chain("pay"), {"pay": pay}, store=store, codec=codecs.standard()).redrive(
        "r1"
    )
    assert done.status == "succeeded", done.error
    assert calls == [1]
    assert got == [{"id": uuid.UUID(int=7), "at": WHEN}] * 2
    assert done.state.workflow["receipt"]["id"] == uuid.UUID(int=7)


def test_a_type_missing_deep_inside_another_tag_is_found_when_loading() -> None:
    store = InMemoryWorkflowStore()
    handlers = {"put": writes({"s": {(Money(Decimal(1), "EUR"),)}}), "check": finish}
    WorkflowEngine(paused_flow(), handlers, store=store, codec=full_codec()).run({}, "r1")
    lacking = WorkflowEngine(paused_flow(), handlers, store=store, codec=codecs.standard())
    with pytest.raises(CodecError, match=r"'Money' at 'workflow.s.set\[0\]\.tuple\[0\]'"):
        lacking.resume("r1", resume_input={})


CLI_MODULE = """
import datetime as dt

from zeroflow import HandlerResult, codecs

CODEC = codecs.standard()
NOT_A_CODEC = {}


def put(ctx):
    return HandlerResult(outputs=["ok"], workflow_updates={"when": dt.date(2026, 12, 3)})


def check(ctx):
    assert ctx.state.workflow["when"] == dt.date(2026, 12, 3)
    return HandlerResult(outputs=[], workflow_updates={"checked": {1, 2}})


HANDLERS = {"put": put, "check": check}
"""


def test_the_cli_resumes_a_codec_run_with_codec_and_refuses_it_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    (tmp_path / "flow.json").write_text(json.dumps(paused_flow()), encoding="utf-8")
    (tmp_path / "codec_cli_handlers.py").write_text(CLI_MODULE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("codec_cli_handlers", None)
    import codec_cli_handlers  # type: ignore[import-not-found]

    store = JsonFileWorkflowStore(tmp_path / "runs")
    engine = WorkflowEngine(
        paused_flow(), codec_cli_handlers.HANDLERS, store=store, codec=codec_cli_handlers.CODEC
    )
    assert engine.run({}, "r1").waiting
    base = ["runs", "resume", "r1", "--store", "runs", "--workflow", "flow.json"]
    base += ["--handlers", "codec_cli_handlers:HANDLERS", "--input", '{"ok": true}']
    assert main(base) == 1
    assert "written with a codec" in capsys.readouterr().err
    assert main([*base, "--codec", "codec_cli_handlers:NOT_A_CODEC"]) == 1
    assert "must be a zeroflow.codecs.Codec" in capsys.readouterr().err
    assert main([*base, "--codec", "codec_cli_handlers:CODEC"]) == 0
    assert store.load_snapshot("r1").status == "succeeded"
    assert main(["runs", "show", "r1", "--store", "runs"]) == 0
    assert "checked: set[1, 2]" in capsys.readouterr().out
