"""Architecture rules, checked from the source: layering, import weight, where Flower lives.

Every import in ``hierfl/`` counts: module level, inside functions and under
``TYPE_CHECKING`` alike. docs/architecture.md draws the same rules.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "hierfl"

# Each room of hierfl/ (a folder, or a top-level module) and its rank: a room imports only rooms
# of a lower rank (and itself). Rooms of one rank never import each other.
RANKS = {
    "errors": 0,
    "util": 1,
    "options": 1,
    "codecs": 1,
    "boundary": 1,
    "registry": 2,
    "models": 3,
    "modes": 4,
    "config": 5,
    "resolve": 6,
    "data": 6,
    "analysis": 6,
    "results": 7,
    "train": 8,
    "edge": 9,
    "cloud": 9,
    "app": 10,
    "deploy": 11,
    "preflight": 12,
    "reference": 12,
    "api": 13,
    "cli_tools": 13,
    "plugins": 13,
    "cli": 14,
    "server_app": 14,
    "client_app": 14,
    "__init__": 15,
    "testing": 15,
}
FRONT_DOORS = {"__init__", "api", "cli", "cli_tools", "plugins"}
TOP = {"cli", "server_app", "client_app", "__init__", "testing", *FRONT_DOORS}
ENGINES = {"train", "edge", "cloud", "app", "deploy"}
# Flower is spoken by its adapters, the processes that run it, its two entry modules, and the
# test doubles of its pieces (a strategy, hostile replies).
FLOWER_ROOMS = {"app", "deploy", "server_app", "client_app", "testing"}


@dataclass(frozen=True)
class Import:
    source: Path  # the importing file
    line: int
    target: str  # the imported module, dotted

    def __str__(self) -> str:
        return f"{self.source.relative_to(ROOT)}:{self.line} imports {self.target}"


def room(path: Path) -> str:
    """The room of a file of hierfl/: its folder, or its own name at the top."""
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else path.stem


def module_file(dotted: str) -> Path | None:
    """The file a dotted ``hierfl...`` name is: a module, or a package's ``__init__``."""
    base = ROOT.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports(path: Path) -> Iterator[Import]:
    """Every import in ``path``, wherever it stands; ``from X import y`` names ``X.y`` when
    ``y`` is a module."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (Import(path, node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                is_module = sub.startswith("hierfl.") and module_file(sub) is not None
                yield Import(path, node.lineno, sub if is_module else node.module)


def all_imports() -> list[Import]:
    return [i for path in sorted(PACKAGE.rglob("*.py")) for i in imports(path)]


def project_imports() -> list[tuple[Import, str, str]]:
    """Imports of one room by another: (import, importing room, imported room)."""
    found = []
    for i in all_imports():
        if i.target.split(".")[0] != "hierfl" or i.target == "hierfl":
            continue
        target = module_file(i.target)
        assert target is not None, f"{i}: no such module"
        found.append((i, room(i.source), room(target)))
    return [(i, a, b) for i, a, b in found if a != b]


def test_every_room_has_a_rank_and_every_folder_says_its_role():
    rooms = {room(p) for p in PACKAGE.rglob("*.py")}
    assert rooms == set(RANKS)
    for folder in (p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc and len(doc.splitlines()[0]) < 100, f"{folder.name}/ needs a one-line role"


def test_the_architecture_page_draws_these_ranks():
    """docs/architecture.md's rank table is this test's RANKS."""
    rows = [
        line.split("|")[1:3]
        for line in (ROOT / "docs" / "architecture.md").read_text().splitlines()
        if line.startswith("| ") and line.split("|")[1].strip().isdigit()
    ]
    drawn = {
        name.strip(" `"): int(rank)
        for rank, rooms in rows
        for name in rooms.split("(")[0].split(",")
    }
    assert drawn == RANKS


def test_hierfl_has_at_most_15_top_level_modules():
    assert len(list(PACKAGE.glob("*.py"))) <= 15


def test_a_room_imports_only_rooms_of_a_lower_rank():
    upward = [
        f"{i} ({a} {RANKS[a]} -> {b} {RANKS[b]})"
        for i, a, b in project_imports()
        if RANKS[b] >= RANKS[a]
    ]
    assert upward == []


def test_edge_and_cloud_never_import_each_other():
    crossing = [str(i) for i, a, b in project_imports() if {a, b} == {"edge", "cloud"}]
    assert crossing == []


def test_analysis_never_imports_the_engines():
    assert [str(i) for i, a, b in project_imports() if a == "analysis" and b in ENGINES] == []


def test_the_registry_imports_only_options_and_errors():
    found = {b for _, a, b in project_imports() if a == "registry"}
    assert found <= {"options", "errors"}


def test_nothing_below_the_top_imports_a_front_door():
    assert [str(i) for i, a, b in project_imports() if b in FRONT_DOORS and a not in TOP] == []


def test_no_import_cycle_counting_function_level_imports():
    graph: dict[Path, set[Path]] = {p: set() for p in PACKAGE.rglob("*.py")}
    for i in all_imports():
        if i.target.startswith("hierfl.") and (target := module_file(i.target)) is not None:
            if target != i.source:
                graph[i.source].add(target)
    cycles = [c for c in _strongly_connected(graph) if len(c) > 1]
    assert [sorted(str(p.relative_to(ROOT)) for p in c) for c in cycles] == []


def _strongly_connected(graph: dict[Path, set[Path]]) -> list[list[Path]]:
    """Tarjan's algorithm: the graph's strongly connected components."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on_stack: set[Path] = set()
    out: list[list[Path]] = []

    def visit(v: Path) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(component)

    for v in graph:
        if v not in index:
            visit(v)
    return out


@pytest.mark.parametrize(
    "make_upward",
    [
        ("edge/node.py", "from hierfl.cloud.trainer import CloudTrainer\n"),
        ("registry/lookup.py", "def f():\n    from hierfl.config import HierConfig\n"),
        (
            "modes.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import hierfl.api\n",
        ),
    ],
    ids=["edge-to-cloud", "function-level", "type-checking"],
)
def test_the_rules_catch_an_added_upward_import(make_upward, monkeypatch, tmp_path):
    """A deliberately added upward import fails the rank check (the rules are not vacuous)."""
    relative, text = make_upward
    original = imports

    def with_extra(path: Path) -> Iterator[Import]:
        yield from original(path)
        if path == PACKAGE / relative:
            probe = tmp_path / "probe.py"
            probe.write_text(text)
            yield from (Import(path, i.line, i.target) for i in original(probe))

    monkeypatch.setattr(sys.modules[__name__], "imports", with_extra)
    with pytest.raises(AssertionError):
        test_a_room_imports_only_rooms_of_a_lower_rank()


def test_core_never_imports_plugins():
    offenders = [
        str(i) for i in all_imports() if i.target.split(".")[0] in ("strategies", "scenarios")
    ]
    assert offenders == []


def test_flower_imports_stay_in_the_adapters_deployment_and_entry_modules():
    offenders = [
        str(i)
        for i in all_imports()
        if i.target.split(".")[0] == "flwr" and room(i.source) not in FLOWER_ROOMS
    ]
    assert offenders == []


def test_flowers_private_parts_are_touched_in_one_module():
    private = [
        i for i in all_imports() if i.target.startswith(("flwr.supernode", "flwr.supercore"))
    ]
    assert {i.source.relative_to(PACKAGE).as_posix() for i in private} == {
        "app/flower_internals.py"
    }


def test_importing_hierfl_its_config_cli_and_registry_is_light():
    code = (
        "import sys, hierfl, hierfl.config, hierfl.cli, hierfl.registry, hierfl.resolve\n"
        "heavy = [m for m in ('torch', 'avalanche', 'flwr', 'torchvision', 'ray', 'wandb') "
        "if m in sys.modules]\nprint(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _loaded_after(imports: str, heavy: tuple[str, ...]) -> list[str]:
    """Which of ``heavy`` a fresh interpreter has loaded after ``import <imports>``."""
    code = f"import sys, {imports}\nprint([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return ast.literal_eval(out.stdout)


def test_edge_message_path_does_not_import_avalanche():
    imports = "hierfl.app.edge_handlers, hierfl.deploy.edge_worker"
    assert _loaded_after(imports, ("avalanche", "torchvision", "sklearn")) == []


def test_the_client_app_imports_only_flower():
    """Flower starts it per message; torch is imported once, in the node's edge worker."""
    heavy = ("torch", "avalanche", "torchvision", "sklearn")
    assert _loaded_after("hierfl.client_app", heavy) == []
