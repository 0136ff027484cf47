"""Rich types in workflow state: a codec stores them as tagged JSON and gives them back.

``WorkflowEngine(..., codec=zeroflow.codecs.standard())`` lets state hold
``datetime``, ``date``, ``time``, ``timedelta``, ``UUID``, ``Decimal``,
``bytes``, ``bytearray``, ``set``, ``frozenset`` and ``tuple`` values, and
registered ``Enum`` classes, dataclasses, models (``model_dump`` and
``model_validate``, as pydantic's) and any class with an encode and decode
function. Each is stored as a JSON object with the reserved key ``$zf``,
``{"$zf": "datetime", "v": "2026-12-03T10:00:00+00:00"}``, and decoded to
the same type; a plain dict key ``$zf`` (or ``$$zf``, ...) is stored with one
``$`` more. Decoding never imports anything named by stored data: a tag names
a builtin type or one registered on the codec.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import json
from collections.abc import Callable
from decimal import Decimal
from enum import Enum
from typing import Any, Protocol, runtime_checkable
from uuid import UUID

from ._constants import MAX_DEPTH
from ._errors import CodecError
from ._frozen import (
    FrozenDict,
    FrozenList,
    FrozenTag,
    NotJSONError,
    _checked_int,
    _collision,
    _json_key,
    _scalar,
    too_deep,
)
from ._tagged import FORMAT, TAG, VALUE, is_reserved, make_tag

__all__ = ["FORMAT", "TAG", "Codec", "CodecError", "SupportsModel", "standard"]

Encode = Callable[[Any], Any]
Decode = Callable[[Any], Any]


@runtime_checkable
class SupportsModel(Protocol):
    """A model in pydantic's style: ``model_dump()`` gives its data, ``model_validate`` rebuilds it.

    ``Codec.register(cls)`` finds these by duck typing (both names on the
    class), so pydantic is never imported; ``model_validate`` is a classmethod.
    """

    def model_dump(self) -> Any: ...


_JSON_TYPES = (str, int, float, bool, type(None), dict, list)
_set = dict.__setitem__
_append = list.append


def _canonical(value: Any) -> str:
    """The sort key of a set's encoded member: its JSON text with sorted keys."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _b64(value: bytes | bytearray) -> str:
    return base64.b64encode(value).decode("ascii")


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise ValueError("base64 text expected")
    return base64.b64decode(text.encode("ascii"), validate=True)


def _timedelta(parts: Any) -> _dt.timedelta:
    if not (isinstance(parts, list) and len(parts) == 3 and all(type(p) is int for p in parts)):
        raise ValueError("[days, seconds, microseconds] expected")
    return _dt.timedelta(days=parts[0], seconds=parts[1], microseconds=parts[2])


def _text(parse: Callable[[str], Any]) -> Decode:
    def decode(value: Any) -> Any:
        if not isinstance(value, str):
            raise ValueError("text expected")
        return parse(value)

    return decode


# Types stored as one scalar payload: tag name, encode, decode.
_SCALARS: dict[type, tuple[str, Encode, Decode]] = {
    _dt.datetime: ("datetime", _dt.datetime.isoformat, _text(_dt.datetime.fromisoformat)),
    _dt.date: ("date", _dt.date.isoformat, _text(_dt.date.fromisoformat)),
    _dt.time: ("time", _dt.time.isoformat, _text(_dt.time.fromisoformat)),
    _dt.timedelta: (
        "timedelta",
        lambda d: FrozenList([d.days, d.seconds, d.microseconds]),
        _timedelta,
    ),
    UUID: ("uuid", str, _text(UUID)),
    Decimal: ("decimal", str, _text(Decimal)),
    bytes: ("bytes", _b64, _unb64),
    bytearray: ("bytearray", _b64, lambda t: bytearray(_unb64(t))),
}
_DECODERS: dict[str, Decode] = {name: decode for name, _, decode in _SCALARS.values()}
_COLLECTIONS: dict[type, str] = {set: "set", frozenset: "frozenset", tuple: "tuple"}
BUILTIN_TAGS = frozenset({*(name for name, _, _ in _SCALARS.values()), *_COLLECTIONS.values()})
"""The tag names of the builtin types; a registered type may not use one."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Rule:
    """How one registered type is stored: its tag name and its encode / decode pair."""

    name: str
    encode: Encode
    decode: Decode


class Codec:
    """Stores rich values in state as tagged JSON, and decodes them to the same types.

    A fresh codec knows the builtin types (see the module); ``register`` adds
    one of yours by name. ``encode`` gives JSON-shaped data (tagged values
    are frozen ``dict`` objects), ``decode`` gives the values back;
    ``encode(decode(encode(x)))`` writes the same JSON as ``encode(x)``.
    """

    __slots__ = ("_by_name", "_by_type")

    def __init__(self) -> None:
        self._by_type: dict[type, _Rule] = {}
        self._by_name: dict[str, _Rule] = {}

    def __repr__(self) -> str:
        return f"Codec(types={list(self._by_name)!r})"

    # ------------------------------------------------------------------ registry

    @property
    def names(self) -> tuple[str, ...]:
        """The names of the registered types, in registration order."""
        return tuple(self._by_name)

    @property
    def format(self) -> str:
        """The tag format this codec writes (``"zeroflow.codec/1"``)."""
        return FORMAT

    def register(
        self,
        cls: type,
        encode: Encode | None = None,
        decode: Decode | None = None,
        name: str | None = None,
    ) -> None:
        """Store instances of ``cls`` as ``{"$zf": name, "v": encode(value)}``.

        ``encode`` turns a value into data the codec can store (JSON, or other
        types it knows), ``decode`` turns that data back into a ``cls``. An
        ``Enum`` (by value), a dataclass (its fields, restored without calling
        ``__init__``) or a model with ``model_dump`` / ``model_validate``
        needs neither. ``name`` defaults to ``cls.__qualname__``; it is what
        checkpoints hold, so keep it stable. A name or class registered already
        is a ``CodecError``; so is a class the codec cannot store without the pair.
        """
        if not isinstance(cls, type):
            raise CodecError(f"register() takes a class, got {type(cls).__name__}")
        if cls in _JSON_TYPES or cls in _SCALARS or cls in _COLLECTIONS:
            raise CodecError(f"{cls.__qualname__} is stored already, it cannot be registered")
        if (encode is None) != (decode is None):
            raise CodecError(
                f"register({cls.__qualname__}, ...): pass both encode and decode, or neither "
                "(for an Enum, a dataclass or a model with model_dump/model_validate)"
            )
        label = cls.__qualname__ if name is None else name
        if not isinstance(label, str) or not label:
            raise CodecError(f"a codec type name must be a non-empty string, got {label!r}")
        if label in BUILTIN_TAGS or label in self._by_name:
            raise CodecError(
                f"the codec name {label!r} is taken already (by a builtin type or a registered "
                "one); pass name=... to register this class under another"
            )
        if cls in self._by_type:
            raise CodecError(
                f"{cls.__qualname__} is registered already (as {self._by_type[cls].name!r})"
            )
        if encode is not None and decode is not None:
            if not callable(encode) or not callable(decode):
                raise CodecError("encode and decode must be callables")
            rule = _Rule(label, encode, decode)
        elif issubclass(cls, Enum):
            rule = _Rule(label, _enum_value, cls)
        elif dataclasses.is_dataclass(cls):
            rule = _Rule(label, _fields_of, _restorer(cls))
        elif hasattr(cls, "model_dump") and hasattr(cls, "model_validate"):
            rule = _Rule(label, _model_dump, cls.model_validate)
        else:
            raise CodecError(
                f"{cls.__qualname__} is not an Enum, a dataclass or a model with "
                "model_dump/model_validate: pass encode and decode functions, "
                f"codec.register({cls.__qualname__}, encode, decode)"
            )
        self._by_type[cls] = rule
        self._by_name[label] = rule

    def knows(self, name: str) -> bool:
        """Whether this codec decodes the tag ``name`` (builtin or registered)."""
        return name in BUILTIN_TAGS or name in self._by_name

    # ------------------------------------------------------------------ encoding

    def encode(self, value: Any, path: str = "$") -> Any:
        """``value`` as JSON-shaped data, its rich values tagged (frozen containers).

        A value the codec cannot store raises ``NotJSONError`` (a ``TypeError``)
        naming its path and type; so does nesting deeper than ``MAX_DEPTH``
        containers, counted as stored (a set is two: its tag and its list).
        """
        return self._enc(value, path, 0)

    def _enc(self, value: Any, path: str, depth: int) -> Any:
        tp = type(value)
        if tp is str or tp is float or tp is bool or value is None:
            return value
        if tp is int:
            return _checked_int(value, path)
        if tp is dict or tp is FrozenDict:
            return self._dict(value, path, depth)
        if tp is list or tp is FrozenList:
            return self._list(value, path, depth)
        if tp is FrozenTag:
            return value
        scalar = _SCALARS.get(tp)
        if scalar is not None:
            payload = scalar[1](value)
            _room(path, value, depth + (type(payload) is FrozenList))
            return make_tag(scalar[0], payload)
        collection = _COLLECTIONS.get(tp)
        if collection is not None:
            _room(path, value, depth + 1)
            items = self._list(value, path, depth + 1)
            if collection != "tuple":
                items = FrozenList(sorted(items, key=_canonical))
            return make_tag(collection, items)
        rule = self._by_type.get(tp)
        if rule is not None:
            _room(path, value, depth)  # its payload's containers count themselves
            try:
                data = rule.encode(value)
            except Exception as exc:
                raise NotJSONError(
                    path, value, f"the codec's encode for {rule.name!r} raised {exc!r}"
                ) from exc
            return make_tag(rule.name, self._enc(data, f"{path}.{rule.name}", depth + 1))
        if isinstance(value, dict):
            return self._dict(value, path, depth)  # a dict subclass: a dict, as without a codec
        if isinstance(value, list | tuple):
            return self._list(value, path, depth)  # a namedtuple: a list, as without a codec
        if isinstance(value, str | int | float) and not _plain_enum(value):
            return _scalar(value, path)  # an IntEnum / StrEnum: its value, as without a codec
        raise NotJSONError(path, value, _unknown(tp))

    def _dict(self, value: Any, path: str, depth: int) -> FrozenDict:
        if depth >= MAX_DEPTH:
            raise too_deep(path, value)
        out = FrozenDict()
        inner = depth + 1
        for k, v in value.items():
            if type(k) is not str:
                k = _json_key(k, path)
            key = "$" + k if is_reserved(k) else k
            _set(out, key, self._enc(v, f"{path}.{k}", inner))
        if len(out) != len(value):
            raise _collision(value, path)
        return out

    def _list(self, value: Any, path: str, depth: int) -> FrozenList:
        if depth >= MAX_DEPTH:
            raise too_deep(path, value)
        out = FrozenList()
        inner = depth + 1
        for i, v in enumerate(value):
            _append(out, self._enc(v, f"{path}[{i}]", inner))
        return out

    # ------------------------------------------------------------------ decoding

    def decode(self, data: Any, path: str = "$") -> Any:
        """The values ``encode`` stored as ``data``, as plain dicts and lists and rich types.

        A tag this codec does not know, or a malformed tagged value, is a
        ``CodecError`` naming its path; nothing is imported to decode.
        """
        if isinstance(data, dict):
            if TAG in data:
                return self._tag(data, path)
            return {
                (k[1:] if isinstance(k, str) and is_reserved(k) else k): self.decode(
                    v, f"{path}.{k}"
                )
                for k, v in data.items()
            }
        if isinstance(data, list):
            return [self.decode(v, f"{path}[{i}]") for i, v in enumerate(data)]
        return data

    def _tag(self, data: dict[str, Any], path: str) -> Any:
        name = data[TAG]
        if type(name) is not str or len(data) != 2 or VALUE not in data:
            raise CodecError(
                f"the tagged value at '{path}' is malformed: a '{TAG}' object holds exactly "
                f"'{TAG}' (the type's name) and '{VALUE}'"
            )
        payload = data[VALUE]
        try:
            scalar = _DECODERS.get(name)
            if scalar is not None:
                return scalar(payload)
            if name in ("set", "frozenset", "tuple"):
                if not isinstance(payload, list):
                    raise ValueError("a list expected")
                items = [self.decode(v, f"{path}[{i}]") for i, v in enumerate(payload)]
                if name == "tuple":
                    return tuple(items)
                return set(items) if name == "set" else frozenset(items)
            rule = self._by_name.get(name)
            if rule is None:
                raise CodecError(_missing(name, path))
            return rule.decode(self.decode(payload, f"{path}.{name}"))
        except CodecError:
            raise
        except Exception as exc:
            raise CodecError(
                f"the tagged {name} value at '{path}' cannot be decoded: {exc}"
            ) from exc

    # ------------------------------------------------------------------ text

    def dumps(self, value: Any) -> str:
        """``value`` encoded, as JSON text (keys in order, as stores write them)."""
        return json.dumps(self.encode(value), ensure_ascii=False)

    def loads(self, text: str) -> Any:
        """The values of JSON text ``dumps`` wrote."""
        return self.decode(json.loads(text))


def standard() -> Codec:
    """A fresh codec of the builtin types; what you ``register`` on it stays on it."""
    return Codec()


# ---------------------------------------------------------------------- helpers


def _room(path: str, value: Any, depth: int) -> None:
    """Refuse a tagged value whose innermost stored container would sit at ``depth`` too deep."""
    if depth >= MAX_DEPTH:
        raise too_deep(path, value)


def _plain_enum(value: Any) -> bool:
    """An Enum member that is not also an int or str (an IntEnum, a StrEnum)."""
    return isinstance(value, Enum) and not isinstance(value, int | str)


def _unknown(tp: type) -> str:
    label = tp.__qualname__
    if issubclass(tp, Enum) or dataclasses.is_dataclass(tp):
        how = f"codec.register({label})"
    else:
        how = f"codec.register({label}, encode, decode)"
    return f"{tp.__module__}.{label} is not a type the codec stores; register it: {how}"


def _missing(name: str, path: str) -> str:
    return (
        f"the value at '{path}' is a {name!r}, a type this codec does not know; register it "
        f"on the codec before loading, codec.register(<the class>, ..., name={name!r})"
    )


def _enum_value(member: Any) -> Any:
    return member.value


def _model_dump(model: Any) -> Any:
    return model.model_dump()


def _fields_of(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _restorer(cls: Any) -> Decode:
    """Rebuild a dataclass from its fields without calling ``__init__`` (as pickle does)."""
    names = frozenset(f.name for f in dataclasses.fields(cls))

    def restore(data: Any) -> Any:
        if not isinstance(data, dict) or set(data) != names:
            raise ValueError(f"the fields {sorted(names)} expected")
        obj = cls.__new__(cls)
        for key, value in data.items():
            object.__setattr__(obj, key, value)
        return obj

    return restore
