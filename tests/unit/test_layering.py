"""Architecture rules, checked from the source: layering and import weight."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_core_never_imports_plugins():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "hierfl").rglob("*.py")
        if any(n.split(".")[0] in ("strategies", "scenarios") for n in _imports(p))
    ]
    assert offenders == []


def test_flower_imports_stay_in_the_app_adapters():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "hierfl").rglob("*.py")
        if "app" not in p.relative_to(ROOT / "hierfl").parts
        and any(n.split(".")[0] == "flwr" for n in _imports(p))
    ]
    assert offenders == []


def test_importing_hierfl_and_its_config_is_light():
    code = (
        "import sys, hierfl, hierfl.config, hierfl.cli, hierfl.plugins\n"
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
    imports = "hierfl.app.edge_handlers, hierfl.app.edge_worker"
    assert _loaded_after(imports, ("avalanche", "torchvision", "sklearn")) == []


def test_the_client_app_imports_only_flower():
    """Flower starts it per message; torch is imported once, in the node's edge worker."""
    heavy = ("torch", "avalanche", "torchvision", "sklearn")
    assert _loaded_after("hierfl.app.client_app", heavy) == []
