"""``import zeroflow`` loads what a run needs, not what an unused backend or command needs.

Speed is measured in ``benchmarks/cold_start.py``, never asserted here: these
tests pin which modules a fresh interpreter loads (and who imports them).
"""

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


# What ``import zeroflow`` must not load: each is imported where it is used.
NOT_AT_IMPORT = {
    "sqlite3": "only the SQLite store",
    "logging": "only a store's report of a damaged run",
    "socket": "only a lease's holder record (the host name)",
    "asyncio": "only an async handler or arun()",
    "concurrent.futures": "only a parallel batch",
    "uuid": "run ids come from os.urandom",
    "random": "only a jittered retry",
    "hmac": "only an engine with a checkpoint_key",
    "hashlib": "the first compiled definition (its hash)",
    "datetime": "the first timestamp",
    "json": "the first compiled definition, a store, the CLI",
    "pathlib": "only files: from_files, the JSON store, the CLI",
    "urllib.parse": "pathlib's import (Python 3.11)",
    "difflib": "only a 'did you mean' hint",
    "zeroflow.stores": "only a store",
    "zeroflow._lint": "only lint()",
    "zeroflow._convert": "only convert()",
    "zeroflow._schema": "only schema()",
    "zeroflow._upgrade": "only migrate(), check_upgrade() and a loaded checkpoint",
    "zeroflow.console": "only the run console (zeroflow ui)",
    "http.server": "only the run console",
}

# Imported lazily by ``zeroflow/__init__.py``: name -> the module that defines it.
LAZY_EXPORTS = {
    "convert": "zeroflow._convert",
    "Conversion": "zeroflow._convert",
    "ConversionLoss": "zeroflow._convert",
    "lint": "zeroflow._lint",
    "LintFinding": "zeroflow._lint",
    "LINT_CODES": "zeroflow._lint",
    "schema": "zeroflow._schema",
    "UpgradeReport": "zeroflow._upgrade",
    "UpgradeVerdict": "zeroflow._upgrade",
    "InMemoryWorkflowStore": "zeroflow.stores.memory",
    "JsonFileWorkflowStore": "zeroflow.stores.jsonfile",
    "SqliteWorkflowStore": "zeroflow.stores.sqlite",
}

# Every import statement runs ``builtins.__import__``, even for a module already
# loaded: the spy records which modules' import statements name a watched module.
IMPORTERS_PROBE = """
import builtins, sys
WATCH = {watch!r}
seen = {{}}
real_import = builtins.__import__


def spy(name, globals=None, locals=None, fromlist=(), level=0):
    if level == 0:
        for watched in WATCH:
            if name == watched or name.startswith(watched + "."):
                importer = (globals or {{}}).get("__name__", "?")
                seen.setdefault(watched, set()).add(importer)
    return real_import(name, globals, locals, fromlist, level)


builtins.__import__ = spy
{code}
builtins.__import__ = real_import
for name, importers in sorted(seen.items()):
    print(name, " ".join(sorted(importers)))
"""


def importers_of(watch: set[str], code: str = "import zeroflow") -> dict[str, set[str]]:
    """``{module: the modules whose import statements named it}`` while running ``code``."""
    probe = IMPORTERS_PROBE.format(watch=sorted(watch), code=code)
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return {
        name: set(importers.split())
        for name, importers in (line.split(" ", 1) for line in done.stdout.splitlines())
    }


def test_import_zeroflow_does_not_load_what_only_some_calls_need() -> None:
    loaded = modules_after("import zeroflow")
    assert "zeroflow.stores.sqlite" not in loaded
    unexpected = {name: why for name, why in NOT_AT_IMPORT.items() if name in loaded}
    assert not unexpected, f"import zeroflow loaded what only some calls need: {unexpected}"


def test_our_modules_never_import_the_heavy_stdlib_at_import_time() -> None:
    """No zeroflow import statement that runs at import names a watched module.

    Python 3.11's ``dataclasses`` imports ``inspect`` itself (and ``pathlib``
    imports ``urllib.parse``): that cannot vanish while our public models are
    dataclasses, so what is pinned here is that the import is never ours.
    """
    watch = {*NOT_AT_IMPORT, "inspect", "urllib"}
    found = importers_of(watch)
    ours = {
        name: sorted(by for by in importers if by == "zeroflow" or by.startswith("zeroflow."))
        for name, importers in found.items()
    }
    ours = {name: by for name, by in ours.items() if by}
    assert not ours, f"zeroflow modules import these at import time: {ours}"


def test_the_spy_sees_every_importer() -> None:
    """The probe names the importing modules, also of a module already loaded."""
    found = importers_of(
        {"inspect", "difflib"},
        "import dataclasses, inspect\nimport zeroflow._grammar as g\ng._hint('x', ['y'])",
    )
    assert found["difflib"] == {"zeroflow._grammar"}, found
    assert {"__main__", "dataclasses"} <= found["inspect"], found


@pytest.mark.skipif(
    sys.version_info < (3, 13),
    reason="on Python 3.11 and 3.12 dataclasses imports inspect itself; "
    "test_our_modules_never_import_the_heavy_stdlib_at_import_time checks that we do not",
)
def test_import_zeroflow_loads_no_inspect_on_newer_pythons() -> None:
    if "inspect" in modules_after("import dataclasses, typing, json, threading, copy"):
        pytest.skip("this Python's dataclasses (or typing) imports inspect itself")
    loaded = modules_after("import zeroflow")
    assert "inspect" not in loaded and "urllib.parse" not in loaded


def test_zeroflow_help_loads_no_command_s_modules() -> None:
    loaded = modules_after(
        "import contextlib, io\n"
        "from zeroflow.__main__ import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    assert main(['--help']) == 0\n"
        "assert 'validate' in out.getvalue()"
    )
    for name in (
        "zeroflow._lint",
        "zeroflow._convert",
        "zeroflow._schema",
        "zeroflow._upgrade",
        "zeroflow.stores",
        "zeroflow.viz",
        "zeroflow.console",
        "sqlite3",
        "pathlib",
        "json",
        "hashlib",
    ):
        assert name not in loaded, f"zeroflow --help loaded {name}"


def test_every_lazily_exported_name_is_importable_and_the_same_object() -> None:
    checks = "".join(
        f"from zeroflow import {name}\n"
        f"assert {name} is zeroflow.{name} is sys.modules[{module!r}].{name}, {name!r}\n"
        for name, module in LAZY_EXPORTS.items()
    )
    modules_after(
        "import sys, zeroflow\n"
        f"{checks}"
        "missing = [n for n in zeroflow.__all__ if not hasattr(zeroflow, n)]\n"
        "assert not missing, missing\n"
        "assert set(zeroflow.__all__) <= set(dir(zeroflow))"
    )
    assert set(LAZY_EXPORTS) <= set(zeroflow.__all__)


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
