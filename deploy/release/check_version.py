"""Print the package version that pyproject.toml declares; with --tag, fail unless the tag names it.

    python3 deploy/release/check_version.py               # 0.1.0
    python3 deploy/release/check_version.py --tag v0.1.0  # 0.1.0, or exit 1 with the mismatch

The version is dynamic ([tool.setuptools.dynamic] version = {attr = ...}): it is read from the
module's source, as setuptools reads it, without importing the package.
"""

from __future__ import annotations

import argparse
import ast
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def declared_version(root: Path = ROOT) -> str:
    """[project] version, or the string its [tool.setuptools.dynamic] attr names."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    project = pyproject["project"]
    if "version" in project:
        return str(project["version"])
    attr = pyproject["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    module, _, name = attr.rpartition(".")
    path = root.joinpath(*module.split("."))
    source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    for node in ast.parse(source.read_text()).body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            return node.value.value
    raise SystemExit(f"{source}: no string assignment to {name}")


def main(argv: list[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", help="the release tag, v<version>")
    args = parser.parse_args(argv)
    version = declared_version(root)
    if args.tag is not None and args.tag != f"v{version}":
        print(
            f"tag {args.tag!r} does not name the version in pyproject.toml ({version}):"
            f" tag v{version}, or change the version first",
            file=sys.stderr,
        )
        return 1
    print(version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
