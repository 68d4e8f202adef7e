"""The project files a module runs: itself plus every `stages` module it imports, directly or not.

One computation serves two checks: the test that dvc.yaml lists each stage's code as deps, and the train
stage's checkpoint key (a resumed run must run the same code). Imports inside functions count too.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

PACKAGE = "stages"
ROOT = Path(__file__).resolve().parents[2]  # the project root, where stages/ lives


def module_file(module: str) -> Path | None:
    """stages.a.b -> stages/a/b.py or stages/a/b/__init__.py (relative to the project root), if it exists."""
    parts = module.split(".")
    for candidate in (Path(*parts).with_suffix(".py"), Path(*parts, "__init__.py")):
        if (ROOT / candidate).is_file():
            return candidate
    return None


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse((ROOT / path).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from stages.evaluation import plots` imports the module stages.evaluation.plots
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


@lru_cache(maxsize=None)
def code_files(module: str) -> tuple[str, ...]:
    """Sorted POSIX paths of the project files that running `module` (e.g. 'stages.train') may execute."""
    seen: set[Path] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        # importing stages.a.b runs stages/__init__.py and stages/a/__init__.py first
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                pending.extend(_imported_modules(path))
    return tuple(sorted(p.as_posix() for p in seen))
