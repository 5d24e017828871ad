"""The package follows the pipeline: each layer imports only the layers below it, and no module cycle exists.

Read from the source (every ``import``, inside functions and ``TYPE_CHECKING`` blocks too), so a lazy
import cannot hide an upward dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nemo_resume"

# From the bottom: a module may import its own unit and any unit of a lower layer, nothing above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "constants"),
    ("schedules",),
    ("apply", "checkpoint"),
    ("inspection",),
    ("planning",),
    ("check",),
    ("audit", "environment"),  # what a run did (its logs) and the machine it runs on
    ("callback", "save_from_checkpoint", "peft_base"),
    ("smoke",),
    ("hf",),  # Hugging Face models in (--model) and adapters out (export), through NeMo's connectors
    ("recipes",),
    ("cli",),
    ("__main__", "inspect", "plan"),  # the `python -m` entry points
)
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every nemo_resume module ``name`` imports (``from pkg import submodule`` counts as the submodule)."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + is_package]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            subs = {f"{module}.{a.name}" for a in node.names} & known
            found |= subs or {module}
    return {m for m in found if m == "nemo_resume" or m.startswith("nemo_resume.")}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_every_unit_of_the_package_has_a_layer():
    units = {_unit(m) for m in _modules()} - {"__init__"}
    assert units <= set(RANK), f"place these in LAYERS: {sorted(units - set(RANK))}"


def test_no_module_imports_a_higher_layer_or_the_tests():
    upward = []
    for module, imported in _graph().items():
        unit = _unit(module)
        if unit == "__init__":  # the package root: NemoResumeError and the version only
            continue
        for target in imported:
            other = _unit(target)
            if other == "__init__" or other == unit:
                continue
            if RANK[other] >= RANK.get(unit, 0):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports against the pipeline's layers:\n" + "\n".join(sorted(upward))
    tooling = [str(p) for p in PACKAGE.rglob("*.py") if "tests." in p.read_text() and "import tests" in p.read_text()]
    assert not tooling, tooling


def test_no_import_cycle_between_modules():
    graph = _graph()
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt == node or nxt not in graph:
                continue
            if state.get(nxt) == "open":
                cycles.append(" -> ".join([*stack[stack.index(nxt):], nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    # A package's __init__ re-exporting its submodules is not a cycle unless a submodule imports the package back.
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_wheel_ships_no_test_tooling():
    names = {p.name for p in PACKAGE.rglob("*.py")}
    assert not names & {"fuzz.py", "kill_harness.py", "megatron_ckpt.py", "hf_reference.py", "megatron_groups.py"}
    assert not (PACKAGE / "testing").exists()
