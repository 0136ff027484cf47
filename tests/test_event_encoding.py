"""Stored event lines are byte for byte what 0.1.0 wrote: json.dumps with sorted keys."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from zeroflow import Event
from zeroflow.stores._common import encode_event

TEXT = st.text(max_size=6)
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=10,
)


@settings(max_examples=600, deadline=None)
@given(
    st.builds(
        Event,
        run_id=TEXT,
        step=st.integers(0, 10**6),
        wave=st.integers(1, 10**4),
        node=st.none() | TEXT,
        kind=st.sampled_from(["node:start", "node:end", "wf:end", "my:event", "store:saved"]),
        ts=TEXT,
        data=st.dictionaries(TEXT, JSONISH, max_size=4)
        # the shapes written without the encoder, and their near misses
        | st.fixed_dictionaries({"node": JSONISH})
        | st.fixed_dictionaries({"step": JSONISH})
        | st.fixed_dictionaries({"run_id": JSONISH, "status": JSONISH})
        | st.fixed_dictionaries({"run_id": TEXT, "status": TEXT})
        | st.fixed_dictionaries({"node": TEXT}, optional={"step": st.integers()})
        | st.fixed_dictionaries({"node": TEXT, "outputs": st.lists(TEXT, max_size=3)})
        | st.fixed_dictionaries({"node": JSONISH, "outputs": JSONISH})
        | st.fixed_dictionaries({"outputs": st.lists(TEXT, max_size=2), "node": TEXT}),
    )
)
def test_an_event_line_equals_json_dumps_with_sorted_keys(event: Event) -> None:
    expected: dict[str, Any] = {
        "data": event.data,
        "kind": event.kind,
        "node": event.node,
        "run_id": event.run_id,
        "step": event.step,
        "ts": event.ts,
        "wave": event.wave,
    }
    assert encode_event(event) == json.dumps(expected, sort_keys=True)


def test_a_checkpoint_event_line_keeps_only_its_step() -> None:
    event = Event("r", 7, 2, "a", "checkpoint", "t", {"state": {"huge": list(range(100))}})
    assert json.loads(encode_event(event))["data"] == {"step": 7}
