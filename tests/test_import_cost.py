"""``import zeroflow`` loads what a run needs, not what an unused backend needs."""

from __future__ import annotations

import subprocess
import sys

import pytest

import zeroflow


def modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(done.stdout.split())


def test_import_zeroflow_does_not_load_what_only_some_calls_need() -> None:
    loaded = modules_after("import zeroflow")
    assert "sqlite3" not in loaded and "zeroflow.stores.sqlite" not in loaded
    assert "logging" not in loaded  # only a store's report of a damaged run logs
    assert "socket" not in loaded  # only a lease's holder record names the host


def test_the_sqlite_store_is_still_importable_every_documented_way() -> None:
    loaded = modules_after(
        "import zeroflow\n"
        "from zeroflow import SqliteWorkflowStore\n"
        "from zeroflow.stores import SqliteWorkflowStore as S2\n"
        "assert SqliteWorkflowStore is S2 is zeroflow.SqliteWorkflowStore\n"
        "from zeroflow import *\n"
        "assert SqliteWorkflowStore.__name__ == 'SqliteWorkflowStore'"
    )
    assert "sqlite3" in loaded


def test_an_unknown_attribute_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        zeroflow.Nope  # noqa: B018


def test_the_postgres_store_without_its_extra_says_which_extra_to_install() -> None:
    probe = (
        "import sys\n"
        "sys.modules['psycopg'] = None  # as if psycopg were not installed\n"
        "try:\n"
        "    import zeroflow.contrib.postgres\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert "pip install 'zeroflow[postgres]'" in done.stdout
