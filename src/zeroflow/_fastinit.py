"""A faster ``__init__`` for frozen, slotted dataclasses on the per-node path.

A frozen dataclass assigns each field through ``object.__setattr__``, which
costs about 0.15 µs a field; a context, a step record and a handler result
are built for every node. ``install`` replaces the generated ``__init__`` with
an equivalent one (same parameters, defaults and default factories) that
stores fields through the slots' own descriptors, three times faster. The
class stays a frozen dataclass: ``replace``, ``fields``, ``==`` and the
``FrozenInstanceError`` on assignment are unchanged.

``maker`` goes further for the engine's own hot spots: a plain function taking
every field positionally that fills a twin of the class (same slots, no frozen
``__setattr__``) and then gives the object the class's identity, skipping the
class call and its ``__init__`` altogether (about ten times cheaper).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["install", "maker"]

T = TypeVar("T")

_NO_FACTORY = object()


def install(cls: type[T]) -> type[T]:
    """Give frozen slotted dataclass ``cls`` the fast ``__init__``; returns ``cls``."""
    params: list[str] = []
    body: list[str] = []
    namespace: dict[str, Any] = {"_NO_FACTORY": _NO_FACTORY}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # callers pass dataclasses
        if not f.init:
            raise TypeError(f"{cls.__name__}.{f.name}: init=False fields are not supported")
        namespace[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        value = f.name
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_NO_FACTORY")
            value = f"_factory_{f.name}() if {f.name} is _NO_FACTORY else {f.name}"
        else:
            params.append(f.name)
        body.append(f"    _set_{f.name}(self, {value})")
    source = f"def __init__(self, {', '.join(params)}):\n" + "\n".join(body) + "\n"
    exec(source, namespace)  # the same technique dataclasses uses to build __init__
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]  # replacing __init__ is the point
    return cls


def _twin(cls: type) -> type:
    """A class with ``cls``'s slot layout and none of its methods (``__class__`` may be swapped)."""
    bases = [b for b in cls.__mro__[1:] if "__slots__" in b.__dict__]
    twin: type = object
    for base in reversed(bases):
        twin = type(f"_{base.__name__}Twin", (twin,), {"__slots__": base.__dict__["__slots__"]})
    return type(f"_{cls.__name__}Twin", (twin,), {"__slots__": cls.__dict__["__slots__"]})


def maker(cls: type[T]) -> Callable[..., T]:
    """A function ``(field, ...) -> cls`` (every dataclass field, positionally, in order)
    that builds an instance without calling ``cls`` or its ``__init__``.

    Only for slotted dataclasses whose ``__init__`` does nothing but store the
    fields; slots that are not fields stay unset, as with the class call.
    """
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} checks its fields in __post_init__: build it by its class")
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]  # a dataclass
    twin = _twin(cls)
    probe: Any = object.__new__(twin)
    probe.__class__ = cls  # refuses here, at import, if the layouts differ
    body = "".join(f"    o.{n} = {n}\n" for n in names)
    source = (
        f"def make({', '.join(names)}):\n    o = _new(_twin)\n{body}    o.__class__ = _cls\n"
        "    return o\n"
    )
    namespace: dict[str, Any] = {"_new": object.__new__, "_twin": twin, "_cls": cls}
    exec(source, namespace)
    make: Callable[..., T] = namespace["make"]
    make.__qualname__ = f"make_{cls.__name__}"
    return make
