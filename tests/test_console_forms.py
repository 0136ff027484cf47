"""Resume forms: which schemas get one field per property, and how a form becomes a payload."""

from __future__ import annotations

from typing import Any

import pytest

from zeroflow.console._forms import FormError, read_payload, resume_fields, simple_fields
from zeroflow.console._html import Markup, esc, fill

FLAT: dict[str, Any] = {
    "type": "object",
    "required": ["ok"],
    "properties": {
        "ok": {"type": "boolean"},
        "who": {"type": "string"},
        "n": {"type": "integer"},
        "x": {"type": "number"},
        "pick": {"enum": ["a", 2, None]},
    },
}


@pytest.mark.parametrize(
    "schema",
    [
        None,
        {"type": "array"},
        {"type": "object"},
        {"type": "object", "properties": {}},
        {"type": "object", "properties": {"deep": {"type": "object"}}},
        {"type": "object", "properties": {"list": {"type": "array"}}},
        {"type": "object", "properties": {"e": {"enum": [{"a": 1}]}}},
        {"type": "object", "properties": {"e": {"enum": []}}},
    ],
)
def test_a_schema_that_is_not_flat_gets_a_json_box(schema: Any) -> None:
    assert simple_fields(schema) is None
    assert '<textarea name="payload"' in resume_fields(schema)


def test_a_flat_schema_gets_one_field_per_property() -> None:
    html = resume_fields(FLAT)
    for name in ("f.ok", "f.who", "f.n", "f.x", "f.pick"):
        assert f'name="{name}"' in html
    assert 'type="checkbox"' in html and 'step="1"' in html and "<select" in html
    assert '<option value="null">null</option>' in html


def test_a_form_becomes_typed_values_and_empty_optional_fields_are_left_out() -> None:
    form = {"fields": "1", "f.n": "12", "f.x": "1.5", "f.pick": "2", "f.who": ""}
    assert read_payload(FLAT, form) == {"ok": False, "n": 12, "x": 1.5, "pick": 2}
    assert read_payload(FLAT, {"fields": "1", "f.ok": "true"}) == {"ok": True}


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"f.n": "1.5"}, "not a whole number"),
        ({"f.n": "ten"}, "not a whole number"),
        ({"f.x": "nan"}, "not a finite number"),
        ({"f.x": "inf"}, "not a finite number"),
        ({"f.x": "x"}, "not a number"),
        ({"f.pick": "<b>"}, "not one of its choices"),
    ],
)
def test_a_field_that_cannot_be_read_names_itself(form: dict[str, str], message: str) -> None:
    with pytest.raises(FormError, match=message):
        read_payload(FLAT, {"fields": "1", **form})


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", None), ("  ", None), ('{"a": [1, "<x>"]}', {"a": [1, "<x>"]}), ("3", 3)],
)
def test_the_json_box_is_read_as_json(text: str, expected: Any) -> None:
    assert read_payload(None, {"payload": text}) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{nope", "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('"' + "x" * 1_000_001 + '"', "longer than"),
    ],
)
def test_a_json_box_that_is_not_json_is_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(FormError, match=message):
        read_payload(None, {"payload": text})


def test_escaping_turns_every_value_into_text_and_keeps_markup() -> None:
    assert esc('<a href="x">&\'') == "&lt;a href=&quot;x&quot;&gt;&amp;&#x27;"
    assert esc(None) == "" and esc(Markup("<b>")) == "<b>"
    assert fill("<p title={t}>{b}</p>", t='" onclick="x', b=Markup("<i>ok</i>")) == (
        "<p title=&quot; onclick=&quot;x><i>ok</i></p>"
    )
    assert fill("{x}", x="{y}") == "{y}"  # a value's braces are not a template
