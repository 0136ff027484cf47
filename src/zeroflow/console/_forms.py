"""Resume forms: fields built from a wait's ``resume_schema``, and the payload read back.

A schema of an object whose properties are all simple (string, integer,
number, boolean, or an ``enum`` of plain values) becomes one field per
property; anything else, or no schema, is a JSON text box. The engine still
checks the payload against the schema when the run resumes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ._html import Markup, fill, join

__all__ = ["FormError", "simple_fields", "resume_fields", "read_payload"]

SIMPLE_TYPES = ("string", "integer", "number", "boolean")
FIELD_PREFIX = "f."
MAX_PAYLOAD_CHARS = 1_000_000


class FormError(ValueError):
    """A submitted form cannot be read as a payload; the message says which field and why."""


def simple_fields(schema: Any) -> list[tuple[str, Mapping[str, Any], bool]] | None:
    """``(name, property schema, required)`` per property when the form can have fields."""
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        return None
    props = schema.get("properties")
    if not isinstance(props, Mapping) or not props:
        return None
    required = schema.get("required") or []
    out = []
    for name, prop in props.items():
        if not isinstance(prop, Mapping):
            return None
        enum = prop.get("enum")
        if enum is not None:
            if (
                not isinstance(enum, list)
                or not enum
                or not all(v is None or isinstance(v, (str, int, float, bool)) for v in enum)
            ):
                return None
        elif prop.get("type") not in SIMPLE_TYPES:
            return None
        out.append((str(name), prop, name in required))
    return out


def _field(name: str, prop: Mapping[str, Any], required: bool) -> Markup:
    key = FIELD_PREFIX + name
    star = Markup(' <span class="muted">(required)</span>') if required else Markup("")
    title = prop.get("title") or name
    hint = prop.get("description")
    hint_html = fill('<span class="muted">{h}</span>', h=hint) if hint else Markup("")
    enum = prop.get("enum")
    if enum is not None:
        options = join(
            fill(
                '<option value="{v}">{label}</option>',
                v=json.dumps(v),
                label=v if isinstance(v, str) else json.dumps(v),
            )
            for v in enum
        )
        control = fill('<select name="{key}">{options}</select>', key=key, options=options)
    elif prop.get("type") == "boolean":
        return fill(
            '<label class="check"><span><input type="checkbox" name="{key}" value="true"> '
            "{title}</span>{hint}</label>",
            key=key,
            title=title,
            hint=hint_html,
        )
    else:
        kind = "number" if prop.get("type") in ("integer", "number") else "text"
        step = ' step="1"' if prop.get("type") == "integer" else ' step="any"'
        control = fill(
            '<input type="{kind}" name="{key}"{step}{req}>',
            kind=kind,
            key=key,
            step=Markup(step if kind == "number" else ""),
            req=Markup(" required" if required else ""),
        )
    return fill(
        "<label><span>{title}{star}</span>{control}{hint}</label>",
        title=title,
        star=star,
        control=control,
        hint=hint_html,
    )


def resume_fields(schema: Any) -> Markup:
    """The payload part of a resume form for a wait with ``schema`` (None: a JSON box)."""
    fields = simple_fields(schema)
    if fields is None:
        described = (
            fill(
                "<details><summary>resume_schema</summary><pre>{s}</pre></details>",
                s=json.dumps(schema, indent=2, ensure_ascii=False),
            )
            if schema is not None
            else Markup("")
        )
        return fill(
            '<label>Payload (JSON; empty for none)<textarea name="payload" '
            'spellcheck="false"></textarea></label>{described}',
            described=described,
        )
    return Markup(
        '<input type="hidden" name="fields" value="1">'
        + join(_field(name, prop, req) for name, prop, req in fields)
    )


def read_payload(schema: Any, form: Mapping[str, str]) -> Any:
    """The resume payload a submitted form describes; ``FormError`` when it cannot be read."""
    fields = simple_fields(schema)
    if fields is None or form.get("fields") != "1":
        text = form.get("payload", "")
        if len(text) > MAX_PAYLOAD_CHARS:
            raise FormError(f"the payload is longer than {MAX_PAYLOAD_CHARS} characters")
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise FormError(
                f"the payload is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
            ) from None
        except RecursionError:
            raise FormError("the payload is nested too deeply") from None
    payload: dict[str, Any] = {}
    for name, prop, _required in fields:
        raw = form.get(FIELD_PREFIX + name)
        if prop.get("enum") is not None:
            if raw is None:
                continue
            try:
                value = json.loads(raw)
            except json.JSONDecodeError:
                raise FormError(f"field '{name}': {raw!r} is not one of its choices") from None
            payload[name] = value
        elif prop.get("type") == "boolean":
            payload[name] = raw == "true"
        elif raw is None or raw == "":
            continue  # left empty: the schema's "required" decides whether that is allowed
        elif prop.get("type") == "integer":
            try:
                payload[name] = int(raw)
            except ValueError:
                raise FormError(f"field '{name}': {raw!r} is not a whole number") from None
        elif prop.get("type") == "number":
            try:
                number = float(raw)
            except ValueError:
                raise FormError(f"field '{name}': {raw!r} is not a number") from None
            if number != number or number in (float("inf"), float("-inf")):
                raise FormError(f"field '{name}': {raw!r} is not a finite number")
            payload[name] = number
        else:
            payload[name] = raw
    return payload
