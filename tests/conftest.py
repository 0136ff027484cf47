"""Session fixtures for the contrib integration tests: throwaway PostgreSQL and Redis.

Locally a test that needs a server is skipped, with the reason, when the
server is not installed. With ``CI=true`` it is never skipped: a missing or
broken server fails the test loudly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest

from _servers import ServerUnavailable, postgres_server, redis_server

IN_CI = os.environ.get("CI", "").lower() == "true"


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
