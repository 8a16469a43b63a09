"""The project's imports, read from the source (ast): dependencies run helpdesk → chat → knowledge → inference, never
back, and
no module waits for another to finish importing except across the documented task boundary.

The task boundary: services import `<app>.tasks` to enqueue work, and each task body imports the logic it runs
(which calls services back). Those imports inside task bodies are the only import cycle allowed. Apart from them, a
project module is imported inside a function only where it must be: AppConfig.ready (apps.py) and the Celery app
module (celery.py), both loaded before Django's models are.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Lowest first: an app may import only those before it. knowledge sits beside inference, below chat; it uses
# inference's one language normaliser and nothing else of it.
APPS = ("inference", "knowledge", "chat", "helpdesk")
LAZY_IMPORTS_ALLOWED = {"chat.tasks", "helpdesk.tasks", "helpdesk.apps", "helpdesk.celery"}
TASK_MODULES = {"chat.tasks", "helpdesk.tasks"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    """Every module of the three apps, without their tests and migrations."""
    modules = {}
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if {"tests", "migrations"} & set(path.relative_to(ROOT).parts):
                continue
            modules[_module_name(path)] = path
    return modules


def _imported_names(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative: resolve against this module's package
        package = module.split(".") if is_package else module.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    # `from chat import services` imports the module chat.services; `from chat.models import X`, chat.models.
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]


def imports_of(module: str, path: Path, known: set[str]) -> list[tuple[str, bool]]:
    """(imported project module, whether the import is inside a function) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                for name in _imported_names(child, module, path.name == "__init__.py", known):
                    # The longest known module the name starts with: chat.services.replies, not chat.
                    while name and name not in known:
                        name = name.rpartition(".")[0]
                    if name and name != module:
                        found.append((name, in_function))
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            visit(child, nested)

    visit(tree, False)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, list[tuple[str, bool]]]:
    modules = project_modules()
    known = set(modules) | set(APPS)
    return {module: imports_of(module, path, known) for module, path in modules.items()}


def _app(module: str) -> str:
    return module.split(".")[0]


def test_dependencies_run_helpdesk_to_chat_to_knowledge_to_inference(graph):
    against = [
        f"{module} imports {target}"
        for module, targets in graph.items()
        for target, _lazy in targets
        if APPS.index(_app(target)) > APPS.index(_app(module))
    ]
    assert against == []


def test_project_imports_inside_functions_only_at_the_documented_places(graph):
    hidden = [
        f"{module} imports {target} inside a function"
        for module, targets in graph.items()
        for target, lazy in targets
        if lazy and module not in LAZY_IMPORTS_ALLOWED
    ]
    assert hidden == []


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of modules around it, or None."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == "open":
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycle_except_through_the_task_boundary(graph):
    edges = {
        module: {target for target, lazy in targets if not (lazy and module in TASK_MODULES)}
        for module, targets in graph.items()
    }
    assert find_cycle(edges) is None


def test_the_cycle_finder_finds_a_cycle_and_the_task_boundary_is_the_one_in_the_project(graph):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
    # With every import counted, the tasks' lazy imports close a cycle (services → tasks → reply → services).
    everything = {module: {target for target, _lazy in targets} for module, targets in graph.items()}
    cycle = find_cycle(everything)
    assert cycle is not None and TASK_MODULES & set(cycle), cycle


def test_the_import_reader_sees_the_kinds_of_import_the_project_uses(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text(
        "import chat.models\nfrom chat import services\nfrom . import selectors\n"
        "def f():\n    from helpdesk.models import Ticket\n"
    )
    known = {"chat", "chat.models", "chat.services", "chat.selectors", "helpdesk", "helpdesk.models"}
    assert imports_of("chat.sample", source, known) == [
        ("chat.models", False),
        ("chat.services", False),
        ("chat.selectors", False),
        ("helpdesk.models", True),
    ]


def _called_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
    return names


def _importers(module: str, name: str) -> list[str]:
    """Project modules that import `name` from `module`."""
    return sorted(
        importer
        for importer, path in project_modules().items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ImportFrom) and node.module == module and name in {a.name for a in node.names}
    )


def test_one_fallback_one_deferral_site_one_language_normaliser():
    modules = project_modules()
    assert [m for m, path in modules.items() if "rule_answer" in _called_names(path)] == ["chat.generation"]
    assert [m for m, path in modules.items() if "DeferralFilter" in _called_names(path)] == ["chat.generation"]
    # Every bot output is one of the pipeline's thin callers.
    assert _importers("chat.generation", "generate") == ["chat.assist", "chat.completions", "chat.reply"]
    # Language tags are reduced to their base language in one function (inference.language.language_base).
    handmade = [
        m for m, path in modules.items() if 'split("-")[0]' in path.read_text() or '.startswith("zh' in path.read_text()
    ]
    assert handmade == []


def test_knowledge_uses_only_the_language_normaliser_of_inference(graph):
    used = {target for module, targets in graph.items() if _app(module) == "knowledge" for target, _ in targets}
    assert {t for t in used if _app(t) == "inference"} == {"inference.language"}
    assert {t for t in used if _app(t) in ("chat", "helpdesk")} == set()
