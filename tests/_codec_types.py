"""Rich types for the codec tests: registered classes, and a codec that knows them all."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
from decimal import Decimal
from typing import Any

from zeroflow import codecs


@dataclasses.dataclass
class Point:
    x: int
    when: dt.datetime


@dataclasses.dataclass(frozen=True)
class Pair:
    left: Any
    right: Any


class Color(enum.Enum):
    RED = "red"
    BLUE = (0, 0, 255)


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Money:
    """A user type with its own encode / decode pair."""

    def __init__(self, amount: Decimal, currency: str) -> None:
        self.amount, self.currency = amount, currency

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Money)
            and (self.amount, self.currency) == (other.amount, other.currency)
            and str(self.amount) == str(other.amount)
        )

    def __hash__(self) -> int:
        return hash((self.amount, self.currency))


class Model:
    """A model in pydantic's style (``model_dump`` / ``model_validate``), without pydantic."""

    def __init__(self, name: str, tags: set[str]) -> None:
        self.name, self.tags = name, tags

    def model_dump(self) -> dict[str, Any]:
        return {"name": self.name, "tags": set(self.tags)}

    @classmethod
    def model_validate(cls, data: Any) -> Model:
        return cls(data["name"], set(data["tags"]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Model) and (self.name, self.tags) == (other.name, other.tags)

    __hash__ = None  # type: ignore[assignment]


def money_encode(m: Money) -> dict[str, Any]:
    return {"amount": m.amount, "currency": m.currency}


def money_decode(data: dict[str, Any]) -> Money:
    return Money(data["amount"], data["currency"])


def full_codec() -> codecs.Codec:
    """A fresh standard codec with every test type registered."""
    codec = codecs.standard()
    codec.register(Point)
    codec.register(Pair)
    codec.register(Color)
    codec.register(Level)
    codec.register(Model)
    codec.register(Money, money_encode, money_decode)
    return codec


def same(a: Any, b: Any) -> bool:
    """``a`` and ``b`` are equal and of the same types all the way down (NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, set | frozenset):
        return a == b
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, Decimal):
        return a.compare_total(b) == 0
    if isinstance(a, dt.datetime | dt.time):
        return a == b and a.utcoffset() == b.utcoffset() and str(a) == str(b)
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    if isinstance(a, Model):
        return same(a.name, b.name) and same(a.tags, b.tags)
    return bool(a == b)
