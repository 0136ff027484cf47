"""Every shipped store passes the conformance kit of ``zeroflow.testing``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zeroflow.stores import InMemoryWorkflowStore, JsonFileWorkflowStore, SqliteWorkflowStore
from zeroflow.testing import STORE_CHECKS, check_lease_expiry

Clock = Callable[[], float]


def _kw(clock: Clock | None) -> dict[str, Any]:
    return {} if clock is None else {"clock": clock}


FACTORIES: dict[str, Callable[[Path, Clock | None], Any]] = {
    "memory": lambda tmp, clock: InMemoryWorkflowStore(**_kw(clock)),
    "json": lambda tmp, clock: JsonFileWorkflowStore(tmp / "json", **_kw(clock)),
    "sqlite-file": lambda tmp, clock: SqliteWorkflowStore(tmp / "runs.db", **_kw(clock)),
    "sqlite-memory": lambda tmp, clock: SqliteWorkflowStore(":memory:", **_kw(clock)),
}


@pytest.mark.parametrize("kind", sorted(FACTORIES))
@pytest.mark.parametrize("check", STORE_CHECKS, ids=lambda c: c.__name__)
def test_shipped_store_passes_check(
    kind: str, check: Callable[[Callable[[], Any]], None], tmp_path: Path
) -> None:
    counter = iter(range(1000))
    check(lambda: FACTORIES[kind](tmp_path / str(next(counter)), None))


@pytest.mark.parametrize("kind", sorted(FACTORIES))
def test_shipped_store_lets_an_unrenewed_lease_lapse(kind: str, tmp_path: Path) -> None:
    check_lease_expiry(lambda clock: FACTORIES[kind](tmp_path, clock))
