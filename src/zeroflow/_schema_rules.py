"""Which JSON Schemas zeroflow's checker honours in full, and why another one is refused.

A definition's own schemas (``wait.resume_schema``, ``state_contract.writes_schema``,
the workflow's ``state_contract.input_schema``) are checked by ``_schema.check_instance``
at run time; ``schema_problem`` refuses at compile time every schema that checker
would misread or crash on: an unsupported keyword, a keyword with a value of the
wrong shape (an unknown type name, a pattern that does not compile), a ``$ref``
that is not local or resolves to nothing, and ``$ref``/``allOf``/... chains that
loop without descending into the value. It returns the first problem, with a JSON
pointer relative to the schema.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._grammar import pointer

__all__ = ["KEYWORDS", "TYPE_NAMES", "schema_problem"]

KEYWORDS = frozenset(
    {
        "type", "const", "enum", "properties", "required", "additionalProperties",
        "minProperties", "items", "minItems", "minLength", "pattern", "minimum",
        "exclusiveMinimum", "$ref", "$defs", "definitions", "allOf", "anyOf", "oneOf",
        "if", "then", "else", "title", "description", "default", "examples", "$schema",
    }
)  # fmt: skip
TYPE_NAMES = ("object", "array", "string", "boolean", "null", "integer", "number")
_LISTS = ("allOf", "anyOf", "oneOf")
_ONE = ("items", "if", "then", "else", "additionalProperties")
_MAPS = ("properties", "$defs", "definitions")
_COUNTS = ("minProperties", "minItems", "minLength")
_BOUNDS = ("minimum", "exclusiveMinimum")
_SAME_VALUE = (*_LISTS, "if", "then", "else")
"""Keywords whose sub-schemas check the same value (a loop through them never ends)."""

Problem = tuple[str, str]


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def schema_problem(schema_: Any) -> Problem | None:
    """The first reason ``schema_`` cannot be honoured, as ``(pointer, message)``; else None."""
    found = _walk(schema_, schema_, ())
    if found is not None:
        return found
    return _loop(schema_)


def _keyword(key: str, value: Any, root: Any, at: tuple[str | int, ...]) -> Problem | None:
    """A problem of one keyword's value (sub-schemas are walked by the caller)."""
    where = pointer(*at, key)
    if key == "type":
        names = value if isinstance(value, list) else [value]
        if not names or any(not isinstance(n, str) or n not in TYPE_NAMES for n in names):
            return where, f"'type' must be one of {', '.join(TYPE_NAMES)} (or a list of them)"
    elif key == "required":
        if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
            return where, "'required' must be a list of key names (strings)"
    elif key == "enum":
        if not isinstance(value, list):
            return where, "'enum' must be a list of the allowed values"
    elif key in _COUNTS:
        if not _is_count(value):
            return where, f"'{key}' must be an integer >= 0"
    elif key in _BOUNDS:
        if not _is_number(value):
            return where, f"'{key}' must be a number"
    elif key == "pattern":
        if not isinstance(value, str):
            return where, "'pattern' must be a regular expression (a string)"
        try:
            re.compile(value)
        except re.error as exc:
            return where, f"'pattern' does not compile as a regular expression: {exc}"
    elif key == "$ref":
        if not isinstance(value, str) or not (value == "#" or value.startswith("#/")):
            return where, "'$ref' must be a local reference such as '#/$defs/name'"
        if _resolve(root, value) is None:
            return where, f"'$ref' {value!r} points at nothing in this schema"
    elif key in _LISTS:
        if not isinstance(value, list) or not value:
            return where, f"'{key}' must be a non-empty list of schemas"
    elif key in _MAPS:
        if not isinstance(value, Mapping):
            return where, f"'{key}' must be an object of name -> schema"
    elif key == "items" and isinstance(value, list):
        return where, "'items' must be one schema (the list form is not supported)"
    return None


def _walk(s: Any, root: Any, at: tuple[str | int, ...]) -> Problem | None:
    if isinstance(s, bool):
        return None
    if not isinstance(s, Mapping):
        return pointer(*at), "a schema must be a JSON object (or true / false)"
    for key, value in s.items():
        if key not in KEYWORDS:
            return (
                pointer(*at, str(key)),
                f"uses '{key}', which zeroflow's schema checker does not support "
                f"(supported: {', '.join(sorted(KEYWORDS))})",
            )
        found = _keyword(key, value, root, at)
        if found is not None:
            return found
        subs: list[tuple[tuple[str | int, ...], Any]] = []
        if key in _LISTS:
            subs = [((*at, key, i), sub) for i, sub in enumerate(value)]
        elif key in _ONE:
            subs = [((*at, key), value)]
        elif key in _MAPS:
            subs = [((*at, key, str(name)), sub) for name, sub in value.items()]
        for where, sub in subs:
            found = _walk(sub, root, where)
            if found is not None:
                return found
    return None


def _resolve(root: Any, ref: str) -> Any:
    """The sub-schema a local ``$ref`` names, or None."""
    node = root
    for part in ref[2:].split("/") if ref != "#" else ():
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return None
    return node if isinstance(node, Mapping | bool) else None


def _same_value_subs(root: Any, s: Mapping[str, Any]) -> list[Any]:
    """The schemas that check the same value as ``s``: its ``$ref`` target and combinators."""
    out: list[Any] = []
    ref = s.get("$ref")
    if isinstance(ref, str):
        out.append(_resolve(root, ref))
    for key in _SAME_VALUE:
        value = s.get(key)
        out += value if isinstance(value, list) else [value]
    return [sub for sub in out if isinstance(sub, Mapping)]


def _all_schemas(root: Any) -> list[tuple[tuple[str | int, ...], Mapping[str, Any]]]:
    """Every object sub-schema of ``root`` with its position, in document order."""
    out: list[tuple[tuple[str | int, ...], Mapping[str, Any]]] = []
    todo: list[tuple[tuple[str | int, ...], Any]] = [((), root)]
    while todo:
        at, s = todo.pop()
        if not isinstance(s, Mapping):
            continue
        out.append((at, s))
        for key, value in s.items():
            if key in _LISTS:
                todo += [((*at, key, i), sub) for i, sub in enumerate(value)]
            elif key in _ONE:
                todo.append(((*at, key), value))
            elif key in _MAPS:
                todo += [((*at, key, str(name)), sub) for name, sub in value.items()]
    return out


def _loop(root: Any) -> Problem | None:
    """A ``$ref`` (or combinator) chain that comes back to a schema before the value is
    descended into: the checker would never end. A depth-first search, linear in size."""
    grey, black = 1, 2
    colour: dict[int, int] = {}
    for at, start in _all_schemas(root):
        if id(start) in colour:
            continue
        colour[id(start)] = grey
        stack = [(id(start), iter(_same_value_subs(root, start)))]
        while stack:
            nxt = next(stack[-1][1], None)
            if nxt is None:
                colour[stack.pop()[0]] = black  # all it leads to is done: no loop through it
                continue
            seen = colour.get(id(nxt))
            if seen == grey:
                return (
                    pointer(*at),
                    "a '$ref' here leads back to a schema it came from without descending "
                    "into the value, so checking would never end",
                )
            if seen is None:
                colour[id(nxt)] = grey
                stack.append((id(nxt), iter(_same_value_subs(root, nxt))))
    return None
