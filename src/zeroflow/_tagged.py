"""Tagged values inside the engine, without the codec: the mark, re-tagging, journal ops.

A codec (``zeroflow.codecs``) stores a rich value as a JSON object with the
reserved key ``$zf``: ``{"$zf": "<tag>", "v": <payload>}``. Inside the engine
such a value is a ``FrozenTag``, which merges as one value. This module is
what the engine needs of tagged state at no import cost: the checkpoint's
mark (``snapshot.extra["codec"]``), turning loaded tag dicts back into
``FrozenTag`` leaves, finding plain keys that would read as tags, and the
journal operations that replay a tagged merge exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._errors import CodecError
from ._frozen import STORED_DEPTH, FrozenDict, FrozenTag, freeze, thaw
from ._journal import StateOp

__all__ = [
    "CODEC_MARK",
    "FORMAT",
    "TAG",
    "VALUE",
    "is_reserved",
    "make_tag",
    "readable",
    "reserved_key",
    "retag",
    "tag_safe_ops",
]

TAG = "$zf"
"""The reserved key of a tagged value; a plain key ``$``...``$zf`` is stored with one ``$`` more."""
VALUE = "v"
"""The key of a tagged value's payload."""
CODEC_MARK = "codec"
"""``snapshot.extra`` key of a checkpoint written with a codec: ``{"format", "types"}``."""
FORMAT = "zeroflow.codec/1"
"""The tag format this version writes and reads."""

_set = dict.__setitem__


def is_reserved(key: str) -> bool:
    """Whether a dict key is ``$zf``, ``$$zf``, ...: one or more ``$`` then ``zf``."""
    return key[-2:] == "zf" and len(key) > 2 and not key[:-2].strip("$")


def make_tag(name: str, payload: Any) -> FrozenTag:
    """A tagged value; ``payload`` must be frozen already (or a scalar)."""
    tag = FrozenTag()
    _set(tag, TAG, name)
    _set(tag, VALUE, payload)
    return tag


def retag(value: Any, known: Callable[[str, str], None], path: str = "$") -> Any:
    """A copy of loaded JSON data whose tag dicts are ``FrozenTag`` leaves again.

    ``known(name, path)`` raises for a tag the codec cannot decode; a tag
    object with other keys than ``$zf`` and ``v`` is a ``CodecError``.
    """
    if isinstance(value, dict):
        if TAG in value:
            name = value[TAG]
            if type(name) is not str or len(value) != 2 or VALUE not in value:
                raise CodecError(
                    f"the tagged value at '{path}' is malformed: a '{TAG}' object holds exactly "
                    f"'{TAG}' (the type's name) and '{VALUE}'; got keys {sorted(value)}"
                )
            known(name, path)
            payload = freeze(retag(value[VALUE], known, f"{path}.{name}"), path, STORED_DEPTH)
            return make_tag(name, payload)
        return {k: retag(v, known, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [retag(v, known, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def reserved_key(value: Any, path: str = "$") -> str | None:
    """The path of the first dict key in ``value`` that would read as a tag, or None."""
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and is_reserved(k):
                return f"{path}.{k}"
            found = reserved_key(v, f"{path}.{k}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = reserved_key(v, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def tag_safe_ops(ops: Iterable[StateOp], sources: tuple[FrozenDict, ...]) -> list[StateOp]:
    """``ops`` with each state merge written as sets of the merged keys' values now.

    A store replays a merge by merging every dict, a tag's too; the engine
    replaces a tag whole. Setting each key a merge touched to its current value
    replays the same state (merges are idempotent, and a later op that removed
    a key says so itself). Only runs of a codec's checkpoints pay for this.
    """
    sections: Mapping[str, Any] = {"input": sources[0], "workflow": sources[1], "node": sources[2]}
    out: list[StateOp] = []
    for kind, path, value in ops:
        section = sections.get(path[0])
        if kind != "merge" or section is None:
            out.append((kind, path, value))
            continue
        target: Any = section
        for key in path[1:]:
            target = target.get(key) if type(target) is FrozenDict else None
        if type(target) is not FrozenDict:
            continue  # replaced or removed since: the op that did it follows
        out.append(("merge", path, {}))  # the entry exists (a node's first update)
        for k in value:
            if k in target:
                out.append(("set", (*path, k), thaw(target[k])))
    return out


def readable(value: Any) -> str:
    """Tagged JSON as one line for people: ``datetime(2026-12-03T10:00:00+00:00)``, ``set[1, 2]``.

    Plain data reads as JSON; a tagged value as its type's name and its payload.
    """
    import json

    if isinstance(value, dict):
        if TAG in value and len(value) == 2 and VALUE in value:
            payload = value[VALUE]
            if isinstance(payload, str):
                return f"{value[TAG]}({payload})"
            if isinstance(payload, list):
                return f"{value[TAG]}[{', '.join(readable(v) for v in payload)}]"
            return f"{value[TAG]}({readable(payload)})"
        items = ", ".join(
            f"{json.dumps(k[1:] if is_reserved(k) else k)}: {readable(v)}" for k, v in value.items()
        )
        return "{" + items + "}"
    if isinstance(value, list):
        return "[" + ", ".join(readable(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)
