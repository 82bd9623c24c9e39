"""The rooms stay layered and acyclic (DESIGN.md, "Rooms"): import-linter's contracts in
`.importlinter` are checked on every run, and the checks are shown to catch what they forbid."""

import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Lowest first, as in DESIGN.md: core < tenants < audit < access < directory, identity, regions,
# usage < copilot < compliance, platform.
LAYERS = [
    {"copilot_admin.platform", "copilot_admin.compliance"},
    {"copilot_admin.copilot"},
    {"copilot_admin.directory", "copilot_admin.regions", "copilot_admin.usage"},
    {"copilot_admin.access"},
    {"copilot_admin.audit"},
    {"tenants"},
    {"copilot_admin.core"},
]


@pytest.fixture(scope="module")
def graph():
    return grimp.build_graph("copilot_admin", "tenants", cache_dir=None)


def test_import_contracts_are_kept():
    """`lint-imports` (run it by hand the same way): layers, no simulator in production code, no
    cycle inside a room. Its report is shown on failure."""
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", ".importlinter"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "Contracts: 3 kept, 0 broken." in lint.stdout, lint.stdout


def _illegal(graph) -> set:
    return graph.find_illegal_dependencies_for_layers(
        layers=[grimp.Layer(*sorted(layer), independent=True) for layer in LAYERS]
    )


def test_the_layer_check_catches_an_upward_import(graph):
    assert not _illegal(graph)
    graph.add_import(importer="copilot_admin.core.errors", imported="copilot_admin.usage.services")
    assert {(d.importer, d.imported) for d in _illegal(graph)} == {("copilot_admin.core", "copilot_admin.usage")}


def test_the_layer_check_catches_a_cycle_between_siblings(graph):
    graph.add_import(importer="copilot_admin.regions.services", imported="copilot_admin.usage.services")
    graph.add_import(importer="copilot_admin.usage.services", imported="copilot_admin.regions.models")
    pairs = {(d.importer, d.imported) for d in _illegal(graph)}
    assert ("copilot_admin.regions", "copilot_admin.usage") in pairs
    assert ("copilot_admin.usage", "copilot_admin.regions") in pairs


def test_the_simulator_is_not_loaded_by_production_code(graph):
    importers = graph.find_upstream_modules("copilot_admin.simulator", as_package=True)
    assert importers <= {"copilot_admin.urls"}, importers
