"""Private views: a handler's own mutable state, copied level by level as it is read.

With ``state_isolation: "private"`` a handler receives ``PrivateDict`` and
``PrivateList``: real ``dict`` and ``list`` subclasses it may change freely,
whose changes never reach the engine (only returned updates do), as with
0.1.0's deep copies. Nothing is deep-copied: a view starts as a shallow copy of
one frozen container, whose child containers are still the engine's frozen
ones; the first read that hands a child out (``[]``, ``get``, iteration,
``values()``, ``pop``...) replaces it, in the view's own storage, by a view of
its own (a container with no container inside is simply copied into a plain
``dict`` or ``list``: nothing below it is left to copy, and its reads run at C
speed). So a handler pays for the levels it reads, not for the state, and the
storage always holds the right data for the C code that reads it directly
(``==``, ``json.dumps``, ``repr``, ``pickle``). ``PrivateState`` creates the
three top-level views on first access, and ``ctx.node_state`` without copying
``state.node``. The views are private while the handler runs; the engine's
frozen containers are never written by them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from typing import Any, SupportsIndex

from ._frozen import FrozenDict, FrozenList, register_views, thaw
from ._models import WorkflowContext, WorkflowState

__all__ = ["PrivateContext", "PrivateDict", "PrivateList", "PrivateState", "private"]

_MISSING: Any = object()
_dict_get = dict.get
_dict_getitem = dict.__getitem__
_dict_setitem = dict.__setitem__
_dict_items = dict.items
_dict_values = dict.values
_dict_iter = dict.__iter__
_list_getitem = list.__getitem__
_list_setitem = list.__setitem__
_list_iter = list.__iter__
_FROZEN = frozenset({FrozenDict, FrozenList})


def private(value: Any) -> Any:
    """``value`` itself, or a private copy of it if it is a frozen container.

    A container holding no container is copied whole into a plain ``dict`` or
    ``list`` (nothing below it to copy later, and reads run at C speed); one
    that nests others becomes a view (``PrivateDict`` / ``PrivateList``).
    """
    tp = type(value)
    if tp is FrozenDict:
        if _FROZEN.isdisjoint(map(type, _dict_values(value))):
            return dict(value)
        return PrivateDict(value)
    if tp is FrozenList:
        if _FROZEN.isdisjoint(map(type, value)):
            return list(value)
        return PrivateList(value)
    return value


class PrivateDict(dict[str, Any]):
    """A ``dict`` whose frozen child containers become private views when read."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        value = _dict_getitem(self, key)
        if type(value) in _FROZEN:
            value = private(value)
            _dict_setitem(self, key, value)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        value = _dict_get(self, key, _MISSING)
        if value is _MISSING:
            return default
        if type(value) in _FROZEN:
            value = private(value)
            _dict_setitem(self, key, value)
        return value

    def __iter__(self) -> Iterator[str]:
        # Overridden so that ``dict(x)``, ``{**x}`` and ``d.update(x)`` read through
        # ``keys()`` and ``__getitem__`` instead of copying the storage (frozen children).
        return _dict_iter(self)

    def _own_all(self) -> None:
        """Make every child container private (before handing all values out)."""
        if _FROZEN.isdisjoint(map(type, _dict_values(self))):
            return
        for key, value in list(_dict_items(self)):
            if type(value) in _FROZEN:
                _dict_setitem(self, key, private(value))

    def values(self) -> Any:
        self._own_all()
        return _dict_values(self)

    def items(self) -> Any:
        self._own_all()
        return _dict_items(self)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key in self:
            return self[key]
        _dict_setitem(self, key, default)
        return default

    def pop(self, key: str, *default: Any) -> Any:
        return private(dict.pop(self, key, *default))

    def popitem(self) -> tuple[str, Any]:
        key, value = dict.popitem(self)
        return key, private(value)

    def copy(self) -> dict[str, Any]:
        """A plain shallow copy, sharing this view's (now private) children, as ``dict.copy``."""
        self._own_all()
        return dict(_dict_items(self))

    def __copy__(self) -> dict[str, Any]:
        return self.copy()

    def __or__(self, other: Any) -> Any:
        if not isinstance(other, dict):
            return NotImplemented
        out = self.copy()
        out.update(other)
        return out

    def __ror__(self, other: Any) -> Any:
        if not isinstance(other, dict):
            return NotImplemented
        out = dict(other)
        out.update(self)
        return out

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        memo[id(self)] = out
        for key, value in _dict_items(self):
            out[key] = copy.deepcopy(value, memo)
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (thaw(self),))


class PrivateList(list[Any]):
    """A ``list`` whose frozen element containers become private views when read."""

    __slots__ = ()

    def __getitem__(self, index: Any) -> Any:
        if type(index) is slice:
            for i in range(*index.indices(len(self))):
                self._own(i)
            return _list_getitem(self, index)
        return self._own(index)

    def _own(self, index: SupportsIndex) -> Any:
        value = _list_getitem(self, index)
        if type(value) in _FROZEN:
            value = private(value)
            _list_setitem(self, index, value)
        return value

    def _own_all(self) -> None:
        """Make every element container private (before handing all elements out)."""
        if _FROZEN.isdisjoint(map(type, _list_iter(self))):
            return
        for i, value in enumerate(_list_iter(self)):
            if type(value) in _FROZEN:
                _list_setitem(self, i, private(value))

    def __iter__(self) -> Iterator[Any]:
        self._own_all()
        return _list_iter(self)

    def __reversed__(self) -> Iterator[Any]:
        self._own_all()
        return list.__reversed__(self)

    def pop(self, index: SupportsIndex = -1) -> Any:
        return private(list.pop(self, index))

    def sort(self, *, key: Any = None, reverse: bool = False) -> None:
        if key is not None:
            self._own_all()  # the key function receives the elements
        list.sort(self, key=key, reverse=reverse)

    def copy(self) -> list[Any]:
        """A plain shallow copy, sharing this view's (now private) elements, as ``list.copy``."""
        self._own_all()
        return list.copy(self)

    def __copy__(self) -> list[Any]:
        return self.copy()

    def __add__(self, other: Any) -> Any:
        if not isinstance(other, list):
            return NotImplemented
        self._own_all()
        if isinstance(other, PrivateList):
            other._own_all()
        return list.__add__(self, other)

    def __radd__(self, other: Any) -> Any:
        if not isinstance(other, list):
            return NotImplemented
        self._own_all()
        return list.__add__(other, self)

    def __iadd__(self, other: Iterable[Any]) -> PrivateList:  # type: ignore[misc]
        if isinstance(other, PrivateList):
            other._own_all()
        list.extend(self, other)
        return self

    def __mul__(self, n: SupportsIndex) -> list[Any]:
        self._own_all()  # the copies share the elements: make them private first
        return list.__mul__(self, n)

    __rmul__ = __mul__

    def __imul__(self, n: SupportsIndex) -> PrivateList:
        self._own_all()
        list.__imul__(self, n)
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        out: list[Any] = []
        memo[id(self)] = out
        out.extend(copy.deepcopy(value, memo) for value in _list_iter(self))
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        return (list, (thaw(self),))


register_views(PrivateDict, PrivateList)


class PrivateState(WorkflowState):
    """``ctx.state`` of private isolation: each section becomes a private view on first access.

    The sections may be reassigned, as in 0.1.0. ``_node_state`` gives
    ``ctx.node_state`` its node's entry without copying the whole of ``state.node``.
    """

    __slots__ = ("_entries", "_input", "_node", "_sources", "_workflow")

    _sources: tuple[FrozenDict, FrozenDict, FrozenDict]
    _input: dict[str, Any] | None
    _workflow: dict[str, Any] | None
    _node: dict[str, Any] | None
    _entries: dict[str, PrivateDict] | None

    @classmethod
    def over(cls, sources: tuple[FrozenDict, FrozenDict, FrozenDict]) -> PrivateState:
        """A view of the engine's ``(input, workflow, node)`` frozen sections."""
        view = object.__new__(cls)
        view._sources = sources
        view._input = view._workflow = view._node = view._entries = None
        return view

    @property
    def input(self) -> dict[str, Any]:
        found = self._input
        if found is None:
            found = self._input = private(self._sources[0])
        return found

    @input.setter
    def input(self, value: dict[str, Any]) -> None:
        self._input = value

    @property
    def workflow(self) -> dict[str, Any]:
        found = self._workflow
        if found is None:
            found = self._workflow = private(self._sources[1])
        return found

    @workflow.setter
    def workflow(self, value: dict[str, Any]) -> None:
        self._workflow = value

    @property
    def node(self) -> dict[str, Any]:
        found = self._node
        if found is None:
            source = self._sources[2]
            found = self._node = PrivateDict(source)
            if self._entries:
                # Entries ctx.node_state already made private are the same objects here.
                for name, entry in self._entries.items():
                    if type(_dict_get(source, name)) is FrozenDict:
                        _dict_setitem(found, name, entry)
        return found

    @node.setter
    def node(self, value: dict[str, Any]) -> None:
        self._node = value

    def node_entry(self, node: str) -> dict[str, Any] | None:
        """The private ``state.node[node]`` (None if absent), copying only that entry."""
        if self._node is not None:
            found = self._node.get(node)
            return found if isinstance(found, dict) else None
        entries = self._entries
        if entries is None:
            entries = self._entries = {}
        else:
            cached = entries.get(node)
            if cached is not None:
                return cached
        source = _dict_get(self._sources[2], node)
        if type(source) is not FrozenDict:
            return None
        entry = entries[node] = PrivateDict(source)
        return entry

    def _node_state(self, node: str) -> dict[str, Any]:
        """``ctx.node_state``: a fresh shallow copy of the entry, a plain ``dict`` as 0.1.0's
        ``dict(...)`` (its nested values the private views ``state.node[node]`` holds)."""
        if self._node is None and (self._entries is None or node not in self._entries):
            source = _dict_get(self._sources[2], node)
            if source is None:
                return {}
            if type(source) is FrozenDict and _FROZEN.isdisjoint(map(type, _dict_values(source))):
                # Nothing nested that ctx.state.node[node] could share with it: one copy.
                return dict(source)
        entry = self.node_entry(node)
        if entry is None:
            return {}
        if type(entry) is PrivateDict:
            entry._own_all()  # the copy shares the entry's children, as dict() did in 0.1.0
            return dict(_dict_items(entry))
        return dict(entry)

    def __reduce__(self) -> tuple[Any, ...]:
        return (WorkflowState, (thaw(self.input), thaw(self.workflow), thaw(self.node)))


_config_slot = WorkflowContext.__dict__["node_config"]


class PrivateContext(WorkflowContext):
    """The ``ctx`` of private isolation: ``node_config`` becomes a private view when first read.

    Built with the frozen config in the ``node_config`` field; most handlers
    never read their config, so most nodes never copy it.
    """

    __slots__ = ()  # the twin of WorkflowContext's layout: ``_fastinit.maker`` builds it

    @property
    def node_config(self) -> dict[str, Any]:
        found: Any = _config_slot.__get__(self)
        if type(found) is FrozenDict:  # the first read: the field becomes the private view
            found = private(found)
            _config_slot.__set__(self, found)
        return found  # type: ignore[no-any-return]  # a view, or what replace() passed
