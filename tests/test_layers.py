"""Layers stay clean (architecture.md): checked on the import graph and at run time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "badgetui"

# layer -> module prefixes it must never import
FORBIDDEN = {
    "domain": ("textual", "rich", "peewee", "playhouse", "httpx", "badgetui.store",
               "badgetui.services", "badgetui.providers", "badgetui.tui", "badgetui.cli"),
    "store": ("textual", "rich", "httpx", "badgetui.services", "badgetui.providers",
              "badgetui.tui", "badgetui.cli"),
    "providers": ("textual", "rich", "peewee", "playhouse", "badgetui.store",
                  "badgetui.services", "badgetui.tui", "badgetui.cli"),
    "services": ("textual", "rich", "badgetui.tui", "badgetui.cli"),
    "sandbox": ("textual", "peewee", "playhouse", "badgetui.store", "badgetui.services",
                "badgetui.tui"),
    "tui": ("peewee", "playhouse", "httpx", "badgetui.store", "badgetui.providers"),
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def layer_files() -> list[tuple[str, Path]]:
    return [
        (layer, path)
        for layer in FORBIDDEN
        for path in sorted((PACKAGE / layer).rglob("*.py"))
    ]


@pytest.mark.parametrize(("layer", "path"), layer_files(), ids=lambda v: str(v))
def test_static_imports_respect_layers(layer: str, path: Path) -> None:
    bad = sorted(
        name for name in imports_of(path)
        if any(name == p or name.startswith(p + ".") for p in FORBIDDEN[layer])
    )
    assert not bad, f"{path.relative_to(PACKAGE.parent)} ({layer}) imports {bad}"


def test_checker_sees_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "x.py"
    sample.write_text("import textual.app\nfrom peewee import Model\n")
    assert imports_of(sample) == {"textual.app", "peewee"}


def test_headless_modules_do_not_load_textual_at_run_time() -> None:
    # (rich may appear: httpx imports it for its own command line when it is installed)
    code = (
        "import sys, badgetui.cli, badgetui.services, badgetui.services.queries;"
        "badgetui.cli.build_parser();"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
