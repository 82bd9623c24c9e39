"""usage's inside: one module per concern, no import cycle between them and no function-level
import hiding one, and other rooms come in through `services` (changes) and `selectors`
(reads), never through the modules that do the work."""

import ast
from pathlib import Path

import copilot_admin

PROJECT = Path(copilot_admin.__file__).resolve().parent.parent
USAGE = "copilot_admin.usage"
# The modules that do usage's work; other rooms call services/selectors instead.
INTERNALS = frozenset({"limits", "admission", "abuse", "alerts", "counters", "rollups", "tasks",
                       "webhooks", "webhook_delivery", "webhook_http"})
# The one accepted function-level import: a service enqueuing its own task.
ACCEPTED_LAZY = frozenset({("alerts", "tasks"), ("webhooks", "tasks")})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """Every project module `path` imports, and whether the import is inside a function."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    lazy = {id(node) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found += [(name, id(node) in lazy) for name in names]
    return found


def _sources(*packages: str):
    for package in packages:
        for path in sorted((PROJECT / package.replace(".", "/")).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _usage_module(name: str) -> str | None:
    """The usage module (`limits`, ...) an imported name lies in, if any."""
    if not name.startswith(USAGE + "."):
        return None
    return name[len(USAGE) + 1:].split(".")[0]


def _usage_graph() -> tuple[dict[str, set[str]], set[tuple[str, str]]]:
    """usage's module-level imports between its own modules, and its function-level ones."""
    edges: dict[str, set[str]] = {}
    lazy: set[tuple[str, str]] = set()
    for path in _sources(USAGE):
        source = _usage_module(_module_name(path)) or "__init__"
        for name, inside_function in _imports(path):
            target = _usage_module(name)
            if target is None or target == source:
                continue
            if inside_function:
                # AppConfig.ready() is where Django wants registration imports; they hide no cycle.
                if source != "apps":
                    lazy.add((source, target))
            else:
                edges.setdefault(source, set()).add(target)
    return edges, lazy


def _cycle(edges: dict[str, set[str]]) -> list[str]:
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str]:
        if node in visiting:
            return [*visiting[visiting.index(node):], node]
        if node in done:
            return []
        visiting.append(node)
        for target in sorted(edges.get(node, ())):
            if cycle := visit(target):
                return cycle
        visiting.pop()
        done.add(node)
        return []

    for node in sorted(edges):
        if cycle := visit(node):
            return cycle
    return []


def test_usage_modules_import_each_other_without_a_cycle():
    edges, _ = _usage_graph()
    assert {"limits", "admission", "abuse", "alerts"} <= edges["services"]
    assert _cycle(edges) == []


def test_no_function_level_import_hides_a_cycle_inside_usage():
    _, lazy = _usage_graph()
    assert lazy <= ACCEPTED_LAZY


def test_the_cycle_check_finds_a_cycle():
    edges = {"abuse": {"limits"}, "limits": {"alerts"}, "alerts": {"abuse"}}
    assert _cycle(edges) == ["abuse", "limits", "alerts", "abuse"]


def test_other_rooms_use_services_and_selectors_not_the_internals():
    reaching_in = sorted(
        f"{_module_name(path)} -> {name}"
        for path in _sources("copilot_admin", "tenants")
        if not _module_name(path).startswith(USAGE)
        for name, _ in _imports(path)
        if _usage_module(name) in INTERNALS
    )
    assert reaching_in == []
