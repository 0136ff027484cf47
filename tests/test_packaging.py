"""What a user sees of the package: the README as the PyPI page, and the metadata."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
BASE = PROJECT["urls"]["Repository"]
LINK = re.compile(r"(!?)\[[^\]]*\]\(([^)\s]+)\)")


def test_the_first_screen_holds_the_two_commands() -> None:
    first_screen = "\n".join(README.splitlines()[:20])
    block = re.search(r"```bash\n(.*?)```", first_screen, re.DOTALL)
    assert block is not None
    assert block.group(1).splitlines() == [
        "uv run python examples/01_quickstart.py",
        "uv run pytest",
    ]


def test_every_readme_link_is_absolute_and_points_at_a_file_of_this_repository() -> None:
    links = LINK.findall(README)
    assert len(links) > 10
    for bang, target in links:
        assert target.startswith(("https://", "#")), f"relative link {target!r} breaks on PyPI"
        if bang:
            prefix = BASE.replace("github.com", "raw.githubusercontent.com") + "/main/"
        else:
            prefix = None
            for kind in ("blob", "tree"):
                if target.startswith(f"{BASE}/{kind}/main/"):
                    prefix = f"{BASE}/{kind}/main/"
        if prefix is None or not target.startswith(prefix):
            continue  # another site (e.g. a standard), not a file of ours
        assert (ROOT / target.removeprefix(prefix)).exists(), target


def test_the_documentation_table_lists_every_document() -> None:
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{doc.name}" in README, f"README's docs table misses {doc.name}"


def test_the_metadata_says_what_the_package_is() -> None:
    assert PROJECT["dependencies"] == []
    assert {"Homepage", "Repository", "Documentation", "Changelog"} <= set(PROJECT["urls"])
    assert PROJECT["authors"] and PROJECT["keywords"]
    assert any(c.startswith("Development Status ::") for c in PROJECT["classifiers"])
    assert set(PROJECT["optional-dependencies"]) == {"otel", "postgres", "celery"}
    for extra in PROJECT["optional-dependencies"]:
        assert f"zeroflow[{extra}]" in README


def test_a_fresh_clone_installs_only_what_the_tests_need() -> None:
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "dependency-groups"
    ]
    names = {re.split(r"[<>=\[ ]", spec, maxsplit=1)[0] for spec in groups["dev"]}
    assert names == {"pytest", "hypothesis"}
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "uv sync --quiet --all-groups" in ci  # CI installs the checkers and integrations
