"""The package's layers: every module imports only from its own folder or folders below it,
so the pipeline reads bottom-up and no import circle can form between folders."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import monai_slo

PACKAGE = Path(monai_slo.__file__).parent
# Bottom to top; the leaves (tiers, durations, periods, yaml_source, safe_text) sit below them all.
LAYERS = ("checks", "config", "slo", "history", "outputs", "testing", "daemon", "commands", "cli")
LEAVES = frozenset(
    {"__init__", "__version__", "tiers", "durations", "periods", "yaml_source", "safe_text"}
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    if top in LEAVES:
        return 0
    if top == "__main__":
        top = "cli"
    return 1 + LAYERS.index(top)


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "monai_slo":
                found += [(node.lineno, f"monai_slo.{alias.name}") for alias in node.names]
            elif node.module.startswith("monai_slo."):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("monai_slo.")]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=[_module_name(p) for p in MODULES])
def test_imports_point_down(path: Path) -> None:
    """No module imports from a folder above its own."""
    module = _module_name(path)
    upward = [
        f"line {line}: {target}"
        for line, target in _imports(path)
        if _layer(target) > _layer(module)
    ]
    assert not upward, f"{module} imports from a higher layer: {upward}"


def test_every_module_imports_on_its_own() -> None:
    """Each module imports cleanly when it is the first one imported (no circle hidden by
    the order in which other modules happened to load)."""
    names = [_module_name(p) for p in MODULES if p.name != "__main__.py"]
    script = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    for loaded in [m for m in sys.modules if m.startswith('monai_slo')]:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module(name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
