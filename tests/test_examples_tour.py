"""The guided tour runs seven workflows and writes one offline page for each."""

from __future__ import annotations

import importlib.util
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

import zeroflow

TOUR = Path(__file__).resolve().parent.parent / "examples" / "tour.py"

pytestmark = pytest.mark.skipif(
    not hasattr(zeroflow, "WorkflowEngine"), reason="zeroflow.WorkflowEngine is not built yet"
)


def _tour() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_tour", TOUR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _statuses(page: Path) -> dict[str, str]:
    text = page.read_text(encoding="utf-8")
    svg = ET.fromstring(text[text.index("<svg") : text.index("</svg>") + len("</svg>")])
    return {
        g.attrib["data-id"]: g.attrib["data-status"]
        for g in svg.iter("{http://www.w3.org/2000/svg}g")
        if g.get("class") == "node"
    }


def test_the_tour_has_workflows_of_the_promised_sizes() -> None:
    sizes = [len(defn["nodes"]) for defn in _tour().workflows()]
    assert sizes == [2, 3, 5, 7, 10, 15, 30]


def test_the_thirty_node_tour_workflow_lays_out_in_under_a_second() -> None:
    from zeroflow.viz import workflow_to_svg

    biggest = _tour().workflows()[-1]
    start = time.perf_counter()
    workflow_to_svg(biggest)
    assert time.perf_counter() - start < 1.0


def test_the_tour_writes_one_page_per_workflow_with_its_run_overlay(tmp_path: Path) -> None:
    tour = _tour()
    pages = tour.run_tour(tmp_path / "out")
    assert [p.name for p in pages] == [f"tour_{d['workflow_name']}.html" for d in tour.workflows()]
    for page in pages:
        assert page.parent == tmp_path / "out"
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text and len(text.encode()) < 80_000
    review = _statuses(pages[2])
    assert review["draft"] == review["review"] == review["publish"] == "succeeded"
    assert review["handle_error"] == "not_reached"
    order = _statuses(pages[4])
    assert order["manager_approval"] == "waiting"
    assert order["charge_card"] == "not_reached"
    etl = _statuses(pages[5])
    assert etl["load_warehouse"] == "failed"
    assert etl["handle_error"] == etl["alert_oncall"] == "succeeded"
    assert etl["refresh_dashboards"] == "not_reached"
    agent = _statuses(pages[6])
    assert agent["verify_fix"] == agent["tone_check"] == "succeeded"
    assert agent["billing_lookup"] == "not_reached"


def test_main_takes_the_output_folder_as_its_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _tour().main([str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("tour_*.html"))) == 7
    assert "07_support_agent" in capsys.readouterr().out
