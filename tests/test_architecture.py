"""Architecture checks (issue 13 §2): no import loops, domain packages apart, every module imports alone.

The import graph is read with :mod:`ast` from the source of every module under ``dpsynth/``:

* a *top-level* import runs when the module is imported (module body, class bodies, ``try`` /
  ``if`` blocks at module level); imports under ``if TYPE_CHECKING:`` never run and are ignored;
* a *function-level* import runs when a function is called. A function-level import of a module
  that (directly or not) imports the caller back is a loop hidden inside a function.

Importing ``a.b.c`` first runs the ``__init__`` of ``a`` and ``a.b``, so an edge to a module also
counts as an edge to its parent packages (except the importer's own ancestors, which are already
being initialised when it runs).
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "dpsynth"
#: The three domain packages: each depends on the shared layers (accounting, card, release ...),
#: never on another domain package.
DOMAIN_PACKAGES = ("dpsynth.tabular", "dpsynth.text", "dpsynth.evaluate")


def _module_files() -> dict[str, Path]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _module_files()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative import
        package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join(package + ([node.module] if node.module else []))
    names = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        names.append(candidate if candidate in MODULES else base)
    return names


def _collect(module: str, body: list[ast.stmt], top: bool, top_level: list[str], in_functions: list[str]) -> None:
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            (top_level if top else in_functions).extend(_imported_names(module, node))
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            _collect(module, node.orelse, top, top_level, in_functions)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _collect(module, node.body, False, top_level, in_functions)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                block = getattr(node, field, None)
                if isinstance(block, list):
                    _collect(module, block, top, top_level, in_functions)


def _dpsynth_targets(module: str, names: list[str]) -> set[str]:
    """The dpsynth modules (and their parent packages) that importing ``names`` runs."""
    targets = set()
    for name in names:
        if name.split(".")[0] != "dpsynth":
            continue
        while name not in MODULES and "." in name:
            name = name.rsplit(".", 1)[0]
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            ancestor = ".".join(parts[:i])
            own_ancestor = module == ancestor or module.startswith(ancestor + ".")
            if ancestor in MODULES and not own_ancestor:
                targets.add(ancestor)
    return targets


def _graphs() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(top-level edges, function-level edges) between dpsynth modules."""
    top, functions = {}, {}
    for module, path in MODULES.items():
        top_level: list[str] = []
        in_functions: list[str] = []
        _collect(module, ast.parse(path.read_text(encoding="utf-8")).body, True, top_level, in_functions)
        top[module] = _dpsynth_targets(module, top_level)
        functions[module] = _dpsynth_targets(module, in_functions) - top[module]
    return top, functions


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


# ------------------------------------------------------------------------------------------
# The checker itself is checked on tiny graphs (so a passing test is not a vacuous one)
# ------------------------------------------------------------------------------------------


def test_cycle_finder_finds_loops_and_only_loops() -> None:
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}) is None  # a diamond is fine


def test_graph_reader_sees_the_package_and_ignores_type_checking_imports() -> None:
    top, functions = _graphs()
    assert len(MODULES) > 40 and "dpsynth.evaluate.api" in MODULES
    # known edges in both directions of the layering
    assert "dpsynth.evaluate.decision" in top["dpsynth.evaluate.api"]
    assert "dpsynth.tabular.methods._dpsgd" in top["dpsynth.tabular.methods.dpsgd_vae"]
    assert "dpsynth.tabular.methods" not in top["dpsynth.tabular.methods.dpsgd_vae"]  # own package: skipped
    assert "dpsynth.accounting" in top["dpsynth.tabular.methods._dpsgd"]  # parent package of a target counts
    # an import under `if TYPE_CHECKING:` is no edge; one inside a function is a function-level edge
    probe = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import dpsynth.card\n"
                      "def f():\n    import dpsynth.release\n")
    top_level: list[str] = []
    in_functions: list[str] = []
    _collect("dpsynth.evaluate.api", probe.body, True, top_level, in_functions)
    assert top_level == ["typing"] and in_functions == ["dpsynth.release"]


# ------------------------------------------------------------------------------------------
# The checks
# ------------------------------------------------------------------------------------------


def test_top_level_imports_form_no_cycle() -> None:
    top, _ = _graphs()
    cycle = _find_cycle(top)
    assert cycle is None, "import loop at module level: " + " -> ".join(cycle or [])


def test_no_function_level_import_closes_a_cycle() -> None:
    """An import hidden in a function must not be the back edge of a loop: dependencies run one way."""
    top, functions = _graphs()
    loops = []
    full = {m: top[m] | functions[m] for m in MODULES}
    for module in sorted(functions):
        for target in sorted(functions[module]):
            if module in _reachable(full, target):
                loops.append(f"{module} imports {target} inside a function, and {target} imports {module} back")
    assert not loops, "\n".join(loops)
    assert _find_cycle(full) is None


def test_domain_packages_never_import_each_other() -> None:
    top, functions = _graphs()
    crossings = []
    for module in sorted(MODULES):
        home = next((p for p in DOMAIN_PACKAGES if module == p or module.startswith(p + ".")), None)
        if home is None:
            continue
        for target in sorted(top[module] | functions[module]):
            other = next((p for p in DOMAIN_PACKAGES if target == p or target.startswith(p + ".")), None)
            if other is not None and other != home:
                crossings.append(f"{module} -> {target}")
    assert not crossings, "domain packages import each other:\n" + "\n".join(crossings)


_IMPORT_EACH = r"""
import importlib, json, os, sys
modules, preload, workers = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
# Preload the third-party libraries dpsynth imports at module level, once; every dpsynth module is
# then imported first, alone, in a forked child whose sys.modules holds no dpsynth module at all.
for name in preload:
    try:
        importlib.import_module(name)
    except Exception:
        pass
assert not any(m == "dpsynth" or m.startswith("dpsynth.") for m in sys.modules)


def start(module):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            message = ""
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            message = f"{type(exc).__name__}: {exc}"
        os.write(write, message.encode()[:4000])
        os._exit(0)
    os.close(write)
    return pid, read


failures, running, todo = {}, {}, list(modules)
while todo or running:
    while todo and len(running) < workers:
        module = todo.pop()
        running[module] = start(module)
    module, (pid, read) = next(iter(running.items()))
    with os.fdopen(read) as fh:
        message = fh.read()
    _, status = os.waitpid(pid, 0)
    del running[module]
    if message or status:
        failures[module] = message or f"child exited with status {status}"
print(json.dumps(failures))
"""


def _third_party_roots() -> list[str]:
    """Top-level packages (not dpsynth, not the standard library) that dpsynth imports at module level."""
    roots = set()
    for module, path in MODULES.items():
        top_level: list[str] = []
        _collect(module, ast.parse(path.read_text(encoding="utf-8")).body, True, top_level, [])
        roots.update(name.split(".")[0] for name in top_level)
    return sorted(r for r in roots if r and r != "dpsynth" and r not in sys.stdlib_module_names)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """Each module imported first (nothing of dpsynth loaded before it) succeeds: no order-dependent loop."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu"}
    workers = str(max(1, min(4, os.cpu_count() or 1)))
    done = subprocess.run([sys.executable, "-c", _IMPORT_EACH, json.dumps(sorted(MODULES)),
                           json.dumps(_third_party_roots()), workers],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    failures = json.loads(done.stdout.strip().splitlines()[-1])
    assert not failures, "\n".join(f"{m}: {e}" for m, e in failures.items())
