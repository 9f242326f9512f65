"""The package's structure, checked from its source (AST only: no import, no Ray, fast).

- No import cycle among itwinai_ray's modules, imports inside functions included.
- Every module that imports Ray is in ``itwinai_ray/backends/ray/``, and at least half of
  that package's modules import Ray.
- The trainer layer (``itwinai_ray/trainer/``) imports neither the HPO core
  (``itwinai_ray.tuning``) nor a backend (``itwinai_ray.backends``).
- The HPO core (``itwinai_ray/tuning/``) reaches a backend through one module only,
  ``tuning/backend.py``: it produces neutral specs, the backend translates them.
- No function over 60 lines (``LONG_FUNCTIONS``: known exceptions; a list that only shrinks).

``if TYPE_CHECKING:`` imports do not run, so they do not count.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "itwinai_ray"
BACKEND = "itwinai_ray.backends.ray"
TRAINER = "itwinai_ray.trainer"
#: What the trainer layer never imports (RayTorchTrainer, which drives HPO, is an integration).
ABOVE_THE_TRAINER = ("itwinai_ray.tuning", "itwinai_ray.backends")
BACKENDS = "itwinai_ray.backends"
CORE = "itwinai_ray.tuning"
#: The one module of the HPO core that calls a backend.
CORE_GATEWAY = "itwinai_ray.tuning.backend"
MAX_FUNCTION_LINES = 60

#: (module, function) -> why it is still longer. Remove an entry once the function is short;
#: never add one. Empty since the functions of issue 16 were split.
LONG_FUNCTIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under ``node``, at any depth, but not under TYPE_CHECKING."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for other in child.orelse:
                yield from _import_nodes(ast.Module(body=[other], type_ignores=[]))
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        yield from _import_nodes(child)


def imported(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The modules a module imports (``from pkg import mod`` names ``pkg.mod``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
            continue
        if node.level:
            base = package.split(".")[:len(package.split(".")) - node.level + 1]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        for alias in node.names:
            full = f"{source}.{alias.name}"
            yield full if full in known else source


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {name: {m for m in imported(name, path, known) if m in known and m != name}
            for name, path in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def trainer_imports_above(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """Modules of the trainer layer that import the HPO core or a backend, and what."""
    out = {}
    for name, deps in graph.items():
        bad = sorted(d for d in deps if any(_within(d, p) for p in ABOVE_THE_TRAINER))
        if _within(name, TRAINER) and bad:
            out[name] = bad
    return out


def ray_importers() -> set[str]:
    mods = modules()
    known = set(mods)
    return {name for name, path in mods.items()
            if any(m == "ray" or m.startswith("ray.") for m in imported(name, path, known))}


def long_functions() -> dict[tuple[str, str], int]:
    out = {}
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    out[(name, node.name)] = lines
    return out


# ---------------------------------------------------------------------------- the rules
def test_the_checks_see_the_package() -> None:
    graph = import_graph()
    assert "itwinai_ray.trainer.torch_trainer" in graph
    assert "itwinai_ray.backends.ray.entry" in graph[CORE_GATEWAY]
    assert "itwinai_ray.backends.ray.trial" in ray_importers()


def test_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert not found, "Import cycles (each a set of modules that import each other):\n" + (
        "\n".join(" <-> ".join(c) for c in found))


def test_the_trainer_imports_no_tuning_and_no_backend() -> None:
    found = trainer_imports_above(import_graph())
    assert not found, (f"The trainer layer ({TRAINER}) imports {' or '.join(ABOVE_THE_TRAINER)}"
                       f" (imports inside functions included): {found}. A trainer reaches a "
                       f"tuner through _trial_session; HPO driving lives in integrations/.")


def test_the_trainer_rule_sees_an_import_inside_a_function(tmp_path) -> None:
    source = tmp_path / "ray_trainer.py"
    source.write_text("def f():\n    from ..tuning.trial import apply_trial_values\n")
    graph = import_graph()
    known = set(graph) | {"itwinai_ray.tuning.trial"}
    graph[f"{TRAINER}.ray_trainer"] = set(imported(f"{TRAINER}.ray_trainer", source, known))
    found = trainer_imports_above(graph)
    assert found[f"{TRAINER}.ray_trainer"] == ["itwinai_ray.tuning.trial"]


def test_only_the_ray_backend_imports_ray() -> None:
    outside = sorted(m for m in ray_importers() if not m.startswith(BACKEND))
    assert not outside, (f"These modules import Ray outside {BACKEND}: {outside}. Move the "
                         f"Ray part into the backend (e.g. backends/ray/translate.py).")


def backend_importers(graph: dict[str, set[str]]) -> set[str]:
    """The modules of the HPO core that import a backend module (inside functions too)."""
    return {name for name, deps in graph.items() if (name == CORE or name.startswith(CORE + "."))
            and any(d == BACKENDS or d.startswith(BACKENDS + ".") for d in deps)}


def test_the_core_reaches_the_backend_through_one_module() -> None:
    outside = sorted(backend_importers(import_graph()) - {CORE_GATEWAY})
    assert not outside, (
        f"These modules of {CORE} import {BACKENDS}: {outside}. The core hands neutral specs "
        f"to the backend; call it through {CORE_GATEWAY} (add a function there and in "
        f"backends/ray/entry.py).")


def test_the_core_rule_fails_when_broken() -> None:
    graph = import_graph()
    graph["itwinai_ray.tuning.search_space"] = {"itwinai_ray.backends.ray.translate"}
    assert backend_importers(graph) - {CORE_GATEWAY} == {"itwinai_ray.tuning.search_space"}


def test_most_of_the_ray_backend_imports_ray() -> None:
    backend = [m for m in modules() if m == BACKEND or m.startswith(BACKEND + ".")]
    using = [m for m in backend if m in ray_importers()]
    assert 2 * len(using) >= len(backend), (
        f"Only {len(using)} of the {len(backend)} modules of {BACKEND} import Ray: a module "
        f"without Ray belongs in the HPO core. Without Ray: "
        f"{sorted(set(backend) - set(using))}")


def test_no_long_function() -> None:
    found = long_functions()
    new = {k: v for k, v in found.items() if k not in LONG_FUNCTIONS}
    assert not new, (f"Functions over {MAX_FUNCTION_LINES} lines: "
                     + ", ".join(f"{m}.{f} ({n})" for (m, f), n in sorted(new.items())))


def test_the_long_function_exceptions_only_shrink() -> None:
    gone = sorted(k for k in LONG_FUNCTIONS if k not in long_functions())
    assert not gone, (f"Now at most {MAX_FUNCTION_LINES} lines (remove them from "
                      f"LONG_FUNCTIONS): {gone}")
