"""The shape of the code, checked from its syntax trees (nothing is imported).

- no import cycle between modules of platform/ or bench/, function-level imports included;
- no comparison on a tenant config's `task` outside the task registry (one module per task);
- no module over 400 lines (the tenant schema, config.py, may be longer if it holds only the schema);
- docs/architecture.md names every package of platform/mlplatform/ in "Where things live".
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TREES = {"mlplatform": ROOT / "platform" / "mlplatform", "bench": ROOT / "bench"}
MAX_LINES = 400
LONGER_ALLOWED = {"mlplatform.config"}  # the tenant schema: typed fields and their validators only
TASK_REGISTRY = "mlplatform.tasks"


def modules(top: str) -> dict[str, Path]:
    """Dotted module name -> file, for every module of a top-level package."""
    base = TREES[top]
    out = {}
    for path in sorted(base.rglob("*.py")):
        parts = (top, *path.relative_to(base).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


ALL = modules("mlplatform") | modules("bench")


def imports_of(name: str, path: Path) -> set[str]:
    """The project modules a module imports, at any depth of its body (function-level included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` imports the module pkg.mod when there is one
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in ALL else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in ALL:  # a name inside a module: the module itself
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of module names (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def package_of(name: str) -> set[str]:
    """A package's __init__ runs before any of its modules: importing a.b.c imports a and a.b."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in ALL}


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("top", sorted(TREES))
def test_no_import_cycle(top):
    graph = {name: {m for m in imports_of(name, path) if m.startswith(top)}
             for name, path in ALL.items() if name.startswith(top)}
    # a package's __init__ importing its own modules is not a cycle with them
    graph = {name: {m for m in deps if m not in package_of(name)} for name, deps in graph.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def task_comparisons(tree: ast.AST) -> list[int]:
    """Lines comparing something's `.task` attribute (`x.task == "ranking"`, `!=`, `in`)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(s, ast.Attribute) and s.attr == "task" for s in sides):
                lines.append(node.lineno)
    return lines


def test_the_task_finder_finds_a_comparison():
    assert task_comparisons(ast.parse("if cfg.task == 'ranking': pass")) == [1]
    assert task_comparisons(ast.parse("ok = self.task in ('a',)")) == [1]
    assert task_comparisons(ast.parse("task_for(cfg).train(cfg)")) == []


def test_no_branch_on_the_task_outside_the_task_registry():
    found = {f"{path.relative_to(ROOT)}:{line}"
             for name, path in ALL.items()
             if not (name == TASK_REGISTRY or name.startswith(TASK_REGISTRY + ".")) and name != "mlplatform.config"
             for line in task_comparisons(ast.parse(path.read_text()))}
    assert not found, f"branches on `task` outside {TASK_REGISTRY} (add to a task module instead): {sorted(found)}"


def test_no_module_is_over_400_lines():
    long = {str(path.relative_to(ROOT)): n for name, path in ALL.items()
            if (n := len(path.read_text().splitlines())) > MAX_LINES and name not in LONGER_ALLOWED}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def test_config_holds_only_the_schema():
    """config.py may be long because it is the tenant schema: no query templates or logic tables."""
    text = (TREES["mlplatform"] / "config.py").read_text()
    assert "PromQL templates" not in text and "histogram_quantile" not in text, \
        "rollout queries belong to the rollout package"


def test_architecture_doc_names_every_package():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    section = doc.split("## Where things live", 1)
    assert len(section) == 2, 'docs/architecture.md needs a "## Where things live" section'
    listed = section[1].split("\n## ", 1)[0]
    packages = sorted(p.relative_to(TREES["mlplatform"].parent).as_posix()
                      for p in TREES["mlplatform"].rglob("__init__.py"))
    missing = [p.removesuffix("/__init__.py") for p in packages if p.removesuffix("/__init__.py") + "/" not in listed]
    assert not missing, f'packages missing from "Where things live" in docs/architecture.md: {missing}'


def test_no_two_test_modules_share_a_name():
    # tests/ has no __init__.py files: pytest imports each test module by its basename, so a second
    # tests/<dir>/test_x.py stops the whole collection ("import file mismatch")
    names: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        names.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert not {n: p for n, p in names.items() if len(p) > 1}
