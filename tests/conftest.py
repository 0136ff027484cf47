"""Session fixtures for the contrib integration tests: throwaway PostgreSQL and Redis.

Locally a test that needs a server is skipped, with the reason, when the
server is not installed. With ``CI=true`` it is never skipped: a missing or
broken server fails the test loudly.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from _servers import ServerUnavailable, postgres_server, redis_server
from _support import IN_CI, integration, make_store


def _serve(server: AbstractContextManager[str], what: str) -> Iterator[str]:
    try:
        address = server.__enter__()
    except ServerUnavailable as exc:
        if IN_CI:
            pytest.fail(f"{what} is required in CI but unavailable: {exc}", pytrace=False)
        pytest.skip(f"{what} unavailable: {exc}")
    except Exception as exc:
        pytest.fail(f"{what} is installed but failed to start: {exc}", pytrace=False)
    try:
        yield address
    finally:
        server.__exit__(None, None, None)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """The conninfo of a throwaway PostgreSQL cluster shared by the session."""
    yield from _serve(postgres_server(), "PostgreSQL")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a throwaway Redis shared by the session."""
    yield from _serve(redis_server(), "Redis")


@pytest.fixture
def store_of(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``store_of(kind, schema=None)``: a fresh memory, json, sqlite or postgres store.

    The file stores live in ``tmp_path``; a ``postgres`` store gets a schema of its
    own on the session's test server (or ``schema``, to open a second instance on
    the same one), dropped at the end.
    """
    made: list[Any] = []

    def make(kind: str, schema: str | None = None) -> Any:
        if kind != "postgres":
            return make_store(kind, tmp_path)
        integration("psycopg")
        from zeroflow.contrib.postgres import PostgresWorkflowStore

        dsn = request.getfixturevalue("postgres_dsn")
        store = PostgresWorkflowStore(dsn, schema=schema or f"t_{uuid.uuid4().hex[:12]}")
        made.append(store)
        return store

    yield make
    dropped: set[str] = set()
    for store in made:
        if store.schema not in dropped:
            store.drop_schema()
            dropped.add(store.schema)
        store.close()
