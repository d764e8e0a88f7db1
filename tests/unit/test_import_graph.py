"""The package graph (tools/import_graph.py): no cycle between packages, and the export step a leaf that only the
outermost shells import."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The shells that call both the library and the export step (svp's commands, the demo).
SHELLS = {"sensevoice_pipeline.demo.run", "sensevoice_pipeline.ui.cli", "sensevoice_pipeline.ui.cli_models"}


def import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_cycle_between_packages():
    graph = import_graph()
    assert graph.cycles(graph.package_graph(ROOT)) == []


def test_only_the_shells_import_the_export_step():
    assert set(import_graph().importers_of(ROOT, "sensevoice_export")) <= SHELLS


def test_the_cycle_finder_finds_a_cycle():
    graph = import_graph()
    assert graph.cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert graph.cycles({"a": {"b"}, "b": set()}) == []
