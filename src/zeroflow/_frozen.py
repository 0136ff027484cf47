"""Read-only JSON containers, and the copy functions that move data in and out.

The engine keeps the run's state in ``FrozenDict`` / ``FrozenList``: real
``dict`` and ``list`` subclasses whose mutating methods raise ``TypeError``.
With ``state_isolation: "readonly"`` handlers receive these objects themselves
(no copy), so ``isinstance``, ``==``, ``json.dumps`` and ``{**x}`` all work,
while a mutation fails loudly; with ``"private"`` they receive views copied
from them level by level as they are read (``_private``). Only the engine
writes into them, through the base-class methods, between two handler calls.

``freeze`` copies a handler's update into frozen containers and checks that it
is JSON data, no deeper than ``MAX_DEPTH``, in the same walk; ``thaw`` turns
frozen data back into plain, independent ``dict`` / ``list`` data for results,
checkpoints and stores.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from typing import Any, NoReturn, SupportsIndex

from ._constants import MAX_DEPTH

__all__ = [
    "READ_ONLY_MESSAGE",
    "STORED_DEPTH",
    "FrozenDict",
    "FrozenList",
    "FrozenTag",
    "NotJSONError",
    "deeper_than",
    "freeze",
    "too_deep",
    "thaw",
    "deep_merge",
    "register_views",
]

READ_ONLY_MESSAGE = (
    "workflow state is read-only inside a handler: return changes through "
    "HandlerResult(workflow_updates=..., node_updates=...), or set "
    'engine_policy.state_isolation to "private" to let each handler change its own view'
)


def _read_only(*_args: Any, **_kwargs: Any) -> NoReturn:
    raise TypeError(READ_ONLY_MESSAGE)


class FrozenDict(dict[str, Any]):
    """A ``dict`` that refuses every mutation; the engine's state is made of these."""

    __slots__ = ()

    def __setitem__(self, key: str, value: Any) -> NoReturn:
        _read_only()

    def __delitem__(self, key: str) -> NoReturn:
        _read_only()

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]  # refusing |= is the point
        _read_only()

    def clear(self) -> NoReturn:
        _read_only()

    def pop(self, *args: Any) -> NoReturn:
        _read_only()

    def popitem(self) -> NoReturn:
        _read_only()

    def setdefault(self, *args: Any) -> NoReturn:
        _read_only()

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        _read_only()

    def __copy__(self) -> dict[str, Any]:
        return dict(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return thaw(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore_dict, (dict(self),))


class FrozenList(list[Any]):
    """A ``list`` that refuses every mutation."""

    __slots__ = ()

    def __setitem__(self, index: Any, value: Any) -> NoReturn:
        _read_only()

    def __delitem__(self, index: Any) -> NoReturn:
        _read_only()

    def __iadd__(self, other: Iterable[Any]) -> NoReturn:  # type: ignore[misc]  # refusing += is the point
        _read_only()

    def __imul__(self, n: SupportsIndex) -> NoReturn:
        _read_only()

    def append(self, value: Any) -> NoReturn:
        _read_only()

    def extend(self, values: Iterable[Any]) -> NoReturn:
        _read_only()

    def insert(self, index: SupportsIndex, value: Any) -> NoReturn:
        _read_only()

    def pop(self, index: SupportsIndex = -1) -> NoReturn:
        _read_only()

    def remove(self, value: Any) -> NoReturn:
        _read_only()

    def clear(self) -> NoReturn:
        _read_only()

    def sort(self, *args: Any, **kwargs: Any) -> NoReturn:
        _read_only()

    def reverse(self) -> NoReturn:
        _read_only()

    def __copy__(self) -> list[Any]:
        return list(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return thaw(self)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore_list, (list(self),))


class FrozenTag(FrozenDict):
    """A codec's tagged value (``{"$zf": tag, "v": ...}``): frozen, and one value to the engine.

    ``freeze`` and ``thaw`` keep it as it is (it is frozen to the bottom) and
    ``deep_merge`` replaces it whole, as it replaces any value that is not a
    plain dict: a datetime merged over a dict, or a dict over a datetime,
    is the new value, never a blend of the two.
    """

    __slots__ = ()


_VIEW_DICTS: set[type] = set()
_VIEW_LISTS: set[type] = set()
_dict_items = dict.items
_list_iter = list.__iter__


def register_views(dict_type: type, list_type: type) -> None:
    """Declare ``dict`` / ``list`` subclasses whose storage holds their data (private views).

    ``freeze`` and ``thaw`` read such containers' storage directly, so that
    reading them never triggers their copy-on-read.
    """
    _VIEW_DICTS.add(dict_type)
    _VIEW_LISTS.add(list_type)


def _restore_dict(data: dict[str, Any]) -> FrozenDict:
    out = FrozenDict()
    dict.update(out, data)
    return out


def _restore_list(data: list[Any]) -> FrozenList:
    out = FrozenList()
    list.extend(out, data)
    return out


class NotJSONError(TypeError):
    """A value cannot be stored in workflow state because JSON cannot hold it."""

    def __init__(self, path: str, value: object, why: str | None = None) -> None:
        super().__init__(
            f"value at '{path}' is not JSON-serializable: "
            + (why or f"{type(value).__name__} (use dict, list, str, int, float, bool or None)")
        )
        self.path = path
        self.type_name = type(value).__name__


_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})
_NOT_INT = frozenset({str, float, bool, type(None)})  # scalars that need no further look
_BIG = 10**4000  # below this an int is certainly within Python's int/str digit limit
_LOW = -_BIG  # a constant: ``-_BIG`` written in a test would build a 1.7 KB int every time


def _checked_int(value: int, path: str) -> int:
    """``value`` if Python can write it as JSON text (its int/str digit limit), else an error."""
    if _LOW < value < _BIG:
        return value
    limit = sys.get_int_max_str_digits()
    try:
        int.__repr__(value)
    except ValueError:
        raise NotJSONError(
            path,
            value,
            f"an int of more than {limit} digits, more than Python converts to text "
            "(store it as a string, or raise sys.set_int_max_str_digits)",
        ) from None
    return value


_set_item = dict.__setitem__
_append = list.append


def _json_key(key: object, path: str) -> str:
    """Turn a dict key into the string JSON would write for it, as ``json.dumps`` does."""
    if isinstance(key, str):
        return str(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(_checked_int(int(key), f"{path}.<key>"))
    if isinstance(key, float):
        if math.isnan(key):
            return "NaN"
        if math.isinf(key):
            return "Infinity" if key > 0 else "-Infinity"
        return float.__repr__(key)
    raise NotJSONError(f"{path}.<key>", key)


def _scalar(value: Any, path: str) -> Any:
    """Normalise a scalar subclass (an ``IntEnum``, a ``str`` enum) to its JSON base type."""
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return _checked_int(int(value), path)
    if isinstance(value, float):
        return float(value)
    raise NotJSONError(path, value)


STORED_DEPTH = -(MAX_DEPTH // 2)
"""``freeze``'s ``depth`` for state loaded from a store or checkpoint, not handed over now.

Stored state may sit a level or two deeper than what entered (a node's entry
below ``state.node``, the resume payload below ``state.workflow``), or come from
an older version: it gets half the limit again as headroom, so a run accepted
once is never refused when it is loaded.
"""


def _short(path: str) -> str:
    """A JSON path short enough for a message (a deep one is thousands of characters)."""
    return path if len(path) <= 80 else f"{path[:40]}...{path[-30:]}"


def too_deep(path: str, value: object) -> NotJSONError:
    """The error for a container nested deeper than ``MAX_DEPTH`` levels, at ``path``."""
    return NotJSONError(
        _short(path),
        value,
        f"it nests deeper than {MAX_DEPTH} levels of dicts and lists (the limit, "
        "zeroflow.MAX_DEPTH, keeps every stored run loadable); flatten the data, or "
        "store the deep part as a JSON string",
    )


def _collision(value: Any, path: str) -> NotJSONError:
    """The error for a dict whose keys name the same JSON key twice (``{1: .., "1": ..}``)."""
    seen: dict[str, Any] = {}
    for k in value:
        text = k if type(k) is str else _json_key(k, path)
        if text in seen:
            return NotJSONError(
                f"{_short(path)}.<key>",
                k,
                f"keys {seen[text]!r} and {k!r} both become the JSON key {text!r}, so one "
                "would silently replace the other; use distinct string keys",
            )
        seen[text] = k
    raise AssertionError("no colliding keys")  # pragma: no cover - called after a collision


def freeze(value: Any, path: str = "$", depth: int = 0) -> Any:
    """Return a frozen deep copy of JSON-shaped ``value``; raise ``NotJSONError`` otherwise.

    Tuples become lists and non-string keys become the strings ``json.dumps``
    writes, so the result equals what a JSON round trip would give; two keys
    that would become the same string are refused, as is nesting deeper than
    ``MAX_DEPTH`` containers (``depth``: how many enclose ``value`` already).
    """
    tp = type(value)
    if tp in _NOT_INT:
        return value
    if tp is int:
        return _checked_int(value, path)
    if tp is dict or tp is FrozenDict or tp in _VIEW_DICTS:
        if depth >= MAX_DEPTH:
            raise too_deep(path, value)
        inner = depth + 1
        out = FrozenDict()
        renamed = False
        for k, v in _dict_items(value):
            if type(k) is not str:
                k = _json_key(k, path)
                renamed = True
            vt = type(v)
            if vt in _NOT_INT or (vt is int and _LOW < v < _BIG):
                _set_item(out, k, v)
            else:
                _set_item(out, k, freeze(v, f"{path}.{k}", inner))
        if renamed and len(out) != len(value):
            raise _collision(value, path)
        return out
    if tp is list or tp is FrozenList or tp is tuple or tp in _VIEW_LISTS:
        if depth >= MAX_DEPTH:
            raise too_deep(path, value)
        inner = depth + 1
        lst = FrozenList()
        for i, v in enumerate(_list_iter(value) if tp in _VIEW_LISTS else value):
            vt = type(v)
            if vt in _NOT_INT or (vt is int and _LOW < v < _BIG):
                _append(lst, v)
            else:
                _append(lst, freeze(v, f"{path}[{i}]", inner))
        return lst
    if tp is FrozenTag:
        return value  # frozen to the bottom by the codec that made it
    if isinstance(value, dict):
        return freeze(dict(value), path, depth)
    if isinstance(value, list | tuple):
        return freeze(list(value), path, depth)
    return _scalar(value, path)


def deeper_than(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True if ``value`` nests more than ``limit`` dicts and lists (any mapping or sequence).

    For data that is not frozen (a definition): the walk stops at ``limit``, so
    it never recurses deeper than that however deep ``value`` is.
    """
    if isinstance(value, dict | list | tuple):
        if limit <= 0:
            return True
        items = value.values() if isinstance(value, dict) else value
        return any(deeper_than(v, limit - 1) for v in items if isinstance(v, dict | list | tuple))
    return False


def thaw(value: Any) -> Any:
    """Return a plain, independent ``dict`` / ``list`` deep copy of JSON-shaped data."""
    tp = type(value)
    if tp is FrozenDict or tp is dict:
        return {k: (v if type(v) in _SCALAR_TYPES else thaw(v)) for k, v in value.items()}
    if tp is FrozenList or tp is list:
        return [v if type(v) in _SCALAR_TYPES else thaw(v) for v in value]
    if tp in _VIEW_DICTS:
        return {k: (v if type(v) in _SCALAR_TYPES else thaw(v)) for k, v in _dict_items(value)}
    if tp in _VIEW_LISTS:
        return [v if type(v) in _SCALAR_TYPES else thaw(v) for v in _list_iter(value)]
    return value


def deep_merge(target: FrozenDict, update: FrozenDict) -> None:
    """Merge frozen ``update`` into frozen ``target`` in place, as 0.1.0 merged state.

    A dict value merges key by key into an existing dict; any other value
    replaces. Only the engine calls this, between handler calls.
    """
    for k, v in update.items():
        if type(v) is FrozenDict:
            cur = target.get(k)
            if type(cur) is FrozenDict:
                deep_merge(cur, v)
                continue
        _set_item(target, k, v)
