"""``_fastinit.maker``: records built without their class call are the same records."""

from __future__ import annotations

import dataclasses

import pytest

from zeroflow import HandlerResult, WorkflowEngine
from zeroflow._fastinit import maker
from zeroflow._journal import StepDelta
from zeroflow._models import Event, StepRecord, WorkflowContext
from zeroflow._private import PrivateContext
from zeroflow._store import CheckpointWrite


def _args(cls: type) -> list[object]:
    return [f"v{i}" for i, _ in enumerate(dataclasses.fields(cls))]


@pytest.mark.parametrize(
    "cls", [StepRecord, Event, StepDelta, CheckpointWrite, WorkflowContext, PrivateContext]
)
def test_a_made_record_equals_the_one_its_class_builds_and_stays_frozen(cls: type) -> None:
    args = _args(cls)
    made = maker(cls)(*args)
    assert type(made) is cls
    assert made == cls(*args)
    assert dataclasses.replace(made) == made
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, dataclasses.fields(cls)[0].name, "changed")
    assert made == cls(*args)


def test_a_record_that_checks_its_fields_cannot_be_made() -> None:
    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        n: int

        def __post_init__(self) -> None:
            if self.n < 0:
                raise ValueError("negative")

    with pytest.raises(TypeError, match="__post_init__"):
        maker(Checked)


def test_a_private_context_config_view_is_made_once_and_private() -> None:
    seen: list[dict[str, object]] = []

    def handler(ctx: WorkflowContext) -> HandlerResult:
        first = ctx.node_config
        assert ctx.node_config is first  # one view per call
        first["limit"] = 99  # the handler's own copy
        seen.append(dict(ctx.node_config))
        return HandlerResult(outputs=["again"] if len(seen) < 2 else ["done"])

    wf = {
        "workflow_name": "cfg",
        "default_entry_node": "a",
        "nodes": {
            "a": {
                "handler": "h",
                "config": {"limit": 3},
                "outputs": {"again": [{"target_node": "a", "is_loopback": True}], "done": []},
            }
        },
    }
    assert WorkflowEngine(wf, {"h": handler}).run().success
    assert seen == [{"limit": 99}, {"limit": 99}]
    # ...and the definition's config was never touched: the next visit saw a fresh view.
    assert wf["nodes"]["a"]["config"] == {"limit": 3}  # type: ignore[index]
