"""``freeze`` refuses an int Python cannot write as text, on both sides of zero, and keeps the rest.

The bound it tests first is a constant on both sides (``-_BIG`` written in the
test would build a 1.7 KB int for every int checked); these tests pin what the
bound decides, exactly at the digit limit.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from zeroflow import HandlerResult, WorkflowEngine
from zeroflow._frozen import NotJSONError, freeze

LIMIT = sys.get_int_max_str_digits()
LOOP: dict[str, Any] = {
    "workflow_name": "ints",
    "default_entry_node": "a",
    "nodes": {"a": {"handler": "h", "outputs": {"done": []}}},
}


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("digits", [1, 18, 3999, 4001, LIMIT])
def test_an_int_python_can_write_is_kept_as_it_is(sign: int, digits: int) -> None:
    value = sign * (10 ** (digits - 1))
    frozen = freeze({"n": value, "nested": [value]})
    assert frozen["n"] == value and frozen["nested"][0] == value
    assert freeze(value) == value


@pytest.mark.parametrize("sign", [1, -1])
def test_an_int_past_the_digit_limit_is_refused_with_the_fix(sign: int) -> None:
    value = sign * (10**LIMIT)  # LIMIT + 1 digits
    for shape in (value, {"n": value}, [value], {"deep": [{"n": value}]}):
        with pytest.raises(NotJSONError, match="more than Python converts to text"):
            freeze(shape)


@pytest.mark.parametrize("sign", [1, -1])
def test_a_handler_returning_such_an_int_fails_its_node_and_loses_no_state(sign: int) -> None:
    def handler(ctx: Any) -> HandlerResult:
        return HandlerResult(["done"], workflow_updates={"ok": 1, "n": sign * 10**LIMIT})

    result = WorkflowEngine(LOOP, {"h": handler}).run({"kept": True})
    assert not result.success
    assert result.error is not None and result.error.code == "STATE_SERIALIZATION"
    assert "more than Python converts to text" in result.error.details["reason"]
    assert result.state.input == {"kept": True}
    assert "ok" not in result.state.workflow  # nothing of the refused update was merged
