"""The dependency rule (DESIGN.md §3), enforced: ``lint-imports`` checks the contracts in pyproject.toml
(catalog imports nothing of ours, security only catalog, adapters never node, no circles between the
modules of any package), and a copy of the tree with one forbidden import shows that it would notice."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
PACKAGES = ("catalog", "security", "adapters", "node")


def lint(directory: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=directory, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(directory), "PATH": "/usr/bin:/bin"})


def test_the_tree_keeps_every_dependency_contract():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout or "broken" not in result.stdout.split("Contracts:")[-1]


def test_a_forbidden_import_or_a_circle_breaks_the_lint(tmp_path: Path):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / "catalog" / "codes.py").open("a", encoding="utf-8") as module:
        module.write("\nimport adapters.platforms  # noqa: E402,F401\n")
    with (tmp_path / "node" / "config.py").open("a", encoding="utf-8") as module:
        module.write("\nimport node.bootstrap  # noqa: E402,F401\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "catalog is the domain: it imports nothing of ours BROKEN" in result.stdout, result.stdout[-3000:]
    assert "no circles between the modules of a package BROKEN" in result.stdout


def test_every_import_of_our_packages_resolves_including_those_inside_functions():
    """Lazy imports (benchmarks, the dispatcher process, CLI commands) run only on their path; a module
    that moved would fail there first. Every ``from X import Y`` of our packages must resolve."""
    import ast
    import importlib

    unresolved = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for found in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not (isinstance(found, ast.ImportFrom) and found.module
                        and found.module.split(".")[0] in PACKAGES):
                    continue
                module = importlib.import_module(found.module)
                for alias in found.names:
                    if not hasattr(module, alias.name):
                        try:
                            importlib.import_module(f"{found.module}.{alias.name}")
                        except ImportError:
                            unresolved.append(f"{path.relative_to(ROOT)}:{found.lineno}: {found.module}.{alias.name}")
    assert not unresolved, "imports that do not resolve:\n" + "\n".join(unresolved)
