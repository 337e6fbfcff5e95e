"""The package's house rules, checked on its source: stages import only downward, no module
grows past 400 lines, and every error class lives in the one error tree."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "github_org_backup"

# Bottom to top: a module may import from its own stage or from one below it.
STAGES = (
    "errors",
    "base",
    "model",
    "output",
    "stores",
    "github",
    "plan",
    "copy",
    "history",
    "repos",
    "metadata",
    "settings",
    "commands",
    "cli",
    "__main__",
)
MAX_LINES = 400
NOT_ERRORS = {"Exception", "RuntimeError", "ValueError"}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found.append((".".join(parts), path))
    return found


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every package module ``path`` imports, at any depth (imports inside functions too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
    return [(line, name) for line, name in names if name.startswith("github_org_backup.")]


def test_every_stage_imports_only_downward() -> None:
    upward = []
    for module, path in _modules():
        stage = _stage(module)
        if stage == "__init__":
            continue
        for line, target in _imports(path):
            other = _stage(target)
            if other != "__init__" and STAGES.index(other) > STAGES.index(stage):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {target}")
    assert not upward, "imports that run up the stages:\n" + "\n".join(upward)


def test_every_module_stays_under_400_lines() -> None:
    long = {
        str(path.relative_to(PACKAGE.parent)): lines
        for _, path in _modules()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"split these by job: {long}"


def test_every_stage_is_a_known_one() -> None:
    stages = {_stage(module) for module, _ in _modules()} - {"__init__"}
    assert stages <= set(STAGES), stages - set(STAGES)


def test_every_error_class_is_in_the_error_tree() -> None:
    outside = []
    for module, path in _modules():
        if module == "github_org_backup.errors":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            bases = {getattr(base, "id", getattr(base, "attr", "")) for base in node.bases}
            if bases & NOT_ERRORS or any(b.endswith("Error") for b in bases):
                outside.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name}")
    assert not outside, "error classes outside errors.py:\n" + "\n".join(outside)
